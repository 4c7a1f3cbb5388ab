//! The interactive frontend: prompts, the line editor, and Ctrl-C.
//!
//! Ctrl-C while a statement runs arrives as SIGINT (the terminal is in cooked mode then,
//! see [`super::editor`]) and has to stop two kinds of work:
//! - Lua code that never yields (`while true do end`): the main thread is busy inside
//!   Lua, so only a flag works. `signal_hook` sets it from the handler and the
//!   instruction hook raises "interrupted" when it sees it.
//! - A statement waiting on something async (`time.sleep(100)`): no Lua runs, so the
//!   hook never fires. tokio's signal stream wakes the main thread, which drops the
//!   statement's future.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::editor::{HistorySettings, Input, LineEditor};
use super::eval::{Chunk, Completion, Evaluator, Outcome};
use super::session::{write_out, Session, Step};

/// Runs the interactive session until Ctrl-D, `.exit` or `os.exit`; returns the status.
pub async fn run<E: Evaluator>(
    ev: E,
    interrupt: Arc<AtomicBool>,
    history: HistorySettings,
) -> anyhow::Result<i32> {
    let mut editor = LineEditor::start(history)?;
    take_over_sigint();
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupt.clone())?;
    let sigint = signal(SignalKind::interrupt())?;
    let mut ev = Interruptible {
        inner: ev,
        flag: interrupt,
        sigint,
    };
    write_out(
        format!(
            "Dream.OS {} (Lua 5.4). .help for help, Ctrl-D to exit.\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    let mut session = Session::default();
    let code = loop {
        editor.ask(if session.pending() { ">> " } else { "> " });
        let step = match next_input(&mut editor, &mut ev).await {
            Input::Line(text) => feed_lines(&mut session, &mut ev, &text).await,
            Input::Cancel => {
                session.clear();
                Step::Continue
            }
            // `next_input` answers completion requests itself; Complete never gets here.
            Input::Eof | Input::Complete { .. } => Step::Quit,
        };
        match step {
            Step::Continue => {}
            Step::Quit => break 0,
            Step::Exit(code) => break code,
        }
    };
    editor.stop();
    Ok(code)
}

/// Undoes the SIGINT handler rustyline installs when the editor is created.
///
/// Without its `signal-hook` feature, rustyline claims SIGINT with a raw `sigaction`, so
/// a Ctrl-C during a statement would only wake its next `readline` (which then reports a
/// spurious Ctrl-C). Resetting to the default before our first registration lets
/// signal-hook's registry install its handler with nothing to chain to. Needs the editor
/// to exist already and no other SIGINT registration in this process.
fn take_over_sigint() {
    // SAFETY: `signal` with SIG_DFL passes no pointers; the handlers registered right
    // after replace it before the user can type anything.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Waits for a line, answering completion requests meanwhile.
async fn next_input<E: Evaluator>(editor: &mut LineEditor, ev: &mut E) -> Input {
    loop {
        match editor.next().await {
            Input::Complete { line, pos, reply } => {
                let _ = reply.send(ev.complete(&line, pos).await);
            }
            other => return other,
        }
    }
}

/// A pasted block arrives as one "line" with newlines: feed it line by line, as if typed.
async fn feed_lines<E: Evaluator>(session: &mut Session, ev: &mut E, text: &str) -> Step {
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let step = session.feed(ev, line.as_bytes()).await;
        if step != Step::Continue {
            return step;
        }
    }
    Step::Continue
}

/// Wraps an evaluator so SIGINT cancels the running chunk (see the module docs).
struct Interruptible<E> {
    inner: E,
    /// Set by the SIGINT handler; cleared before each chunk, so a Ctrl-C that arrived
    /// between statements does not cancel the next one.
    flag: Arc<AtomicBool>,
    sigint: Signal,
}

impl<E: Evaluator> Evaluator for Interruptible<E> {
    async fn eval(&mut self, chunk: Chunk<'_>) -> Outcome {
        let Interruptible {
            inner,
            flag,
            sigint,
        } = self;
        flag.store(false, Ordering::SeqCst);
        let cancelled = async {
            loop {
                if sigint.recv().await.is_none() {
                    // No more signals can arrive; never cancel.
                    std::future::pending::<()>().await;
                }
                // The stream may report a signal that came before this chunk started;
                // only one that set the flag since the reset counts.
                if flag.load(Ordering::SeqCst) {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            biased;
            outcome = inner.eval(chunk) => outcome,
            () = cancelled => Outcome::Failed("interrupted".into()),
        };
        // Spawned tasks share the hook; they must not see this Ctrl-C.
        flag.store(false, Ordering::SeqCst);
        outcome
    }

    async fn complete(&mut self, line: &str, pos: usize) -> Completion {
        self.inner.complete(line, pos).await
    }

    fn preloaded(&self) -> Vec<String> {
        self.inner.preloaded()
    }

    async fn settle(&mut self) {
        self.inner.settle().await
    }
}
