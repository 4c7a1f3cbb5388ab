//! The line editor, on a thread of its own.
//!
//! rustyline's `readline` blocks its thread until Enter, but the Lua state must stay on
//! the main thread (it is `!Send`) and keep running: tasks started with `dreamos.spawn`
//! advance while the user types. So the editor thread reads lines and sends them over a
//! channel, and the main thread, idle while it awaits that channel, answers completion
//! requests over another one.
//!
//! The editor reads only when asked ([`LineEditor::ask`]), so nothing else is drawn while a
//! statement runs, and the terminal is out of raw mode then: Ctrl-C during a statement is a
//! real SIGINT, and Ctrl-C at the prompt is rustyline's `Interrupted`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::config::{CompletionType, Config as EditorConfig};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::eval::Completion;
use super::session::write_err;

/// How long Tab waits for the main thread. It answers at once when idle; the bound only
/// keeps the editor usable if it is ever busy.
const COMPLETION_WAIT: Duration = Duration::from_secs(2);

/// What the editor thread reports.
pub enum Input {
    /// A line the user entered; several lines when a block was pasted.
    Line(String),
    /// Ctrl-C at the prompt: drop the line and any unfinished chunk.
    Cancel,
    /// Ctrl-D on an empty line, or the terminal is gone.
    Eof,
    /// Tab: candidates for the word ending at `pos`, to be sent back over `reply`.
    Complete {
        line: String,
        pos: usize,
        reply: mpsc::Sender<Completion>,
    },
}

/// Where history lives and how much of it to keep.
pub struct HistorySettings {
    /// `None` disables history (`--no-history`, or no `$HOME`).
    pub file: Option<PathBuf>,
    pub size: usize,
}

/// The main thread's handle on the editor thread.
pub struct LineEditor {
    /// Prompts to read a line with; dropping it tells the thread to save history and end.
    prompts: Option<mpsc::Sender<String>>,
    /// Lines, interrupts and completion requests, in the order they happened.
    inputs: UnboundedReceiver<Input>,
    thread: Option<JoinHandle<()>>,
}

impl LineEditor {
    pub fn start(history: HistorySettings) -> anyhow::Result<LineEditor> {
        let config = EditorConfig::builder()
            .max_history_size(history.size)?
            .history_ignore_dups(true)?
            .auto_add_history(false)
            .completion_type(CompletionType::List)
            .build();
        let (input_tx, inputs) = unbounded_channel();
        let mut editor: Editor<ReplHelper, FileHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(ReplHelper {
            inputs: input_tx.clone(),
        }));
        if let Some(file) = &history.file {
            match editor.load_history(file) {
                Ok(()) => {}
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => write_err(&format!(
                    "warning: cannot read history {}: {e}",
                    file.display()
                )),
            }
        }
        let (prompts, prompt_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("repl-editor".into())
            .spawn(move || edit_lines(editor, prompt_rx, input_tx, history.file))?;
        Ok(LineEditor {
            prompts: Some(prompts),
            inputs,
            thread: Some(thread),
        })
    }

    /// Asks the thread to read one line with `prompt`; the answer comes from [`next`].
    ///
    /// [`next`]: LineEditor::next
    pub fn ask(&self, prompt: &str) {
        if let Some(p) = &self.prompts {
            // If the thread is gone, `next` reports Eof.
            let _ = p.send(prompt.to_string());
        }
    }

    /// The next input; `Eof` once the thread has ended.
    pub async fn next(&mut self) -> Input {
        self.inputs.recv().await.unwrap_or(Input::Eof)
    }

    /// Ends the thread after it saved the history. Call only when no line was asked for
    /// and not yet answered (the thread would still be blocked in `readline`).
    pub fn stop(mut self) {
        self.prompts = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn edit_lines(
    mut editor: Editor<ReplHelper, FileHistory>,
    prompts: mpsc::Receiver<String>,
    inputs: UnboundedSender<Input>,
    history: Option<PathBuf>,
) {
    while let Ok(prompt) = prompts.recv() {
        let input = match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Input::Line(line)
            }
            Err(ReadlineError::Interrupted) => Input::Cancel,
            Err(ReadlineError::Eof) => Input::Eof,
            // Bytes that are not UTF-8 spoil only the line they are in.
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                write_err("error: the line was not valid UTF-8 and was dropped");
                Input::Cancel
            }
            Err(e) => {
                write_err(&format!("error: line editor: {e}"));
                Input::Eof
            }
        };
        if inputs.send(input).is_err() {
            break;
        }
    }
    if let Some(file) = history {
        if let Err(e) = editor.save_history(&file) {
            write_err(&format!(
                "warning: cannot save history to {}: {e}",
                file.display()
            ));
        }
    }
}

/// Forwards completion to the main thread; everything else is rustyline's default.
struct ReplHelper {
    inputs: UnboundedSender<Input>,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (reply, answer) = mpsc::channel();
        let request = Input::Complete {
            line: line.to_string(),
            pos,
            reply,
        };
        if self.inputs.send(request).is_err() {
            return Ok((pos, Vec::new()));
        }
        let Ok(completion) = answer.recv_timeout(COMPLETION_WAIT) else {
            return Ok((pos, Vec::new()));
        };
        let pairs = completion
            .candidates
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((completion.start.min(pos), pairs))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}
