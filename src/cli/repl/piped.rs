//! The scripted frontend, for stdin that is not a terminal (`echo 'print(1)' | dreamos
//! repl`): no banner, no prompts, the same evaluation and printing. Exits 1 if any
//! statement failed.
//!
//! Lines are read on a thread of their own, like the editor's, so the Lua state keeps
//! running spawned tasks while input is slow, and an `os.exit` does not wait for a read
//! that may never return.

use std::io::BufRead;

use tokio::sync::mpsc;

use super::eval::Evaluator;
use super::session::{write_err, Session, Step};

/// Lines buffered ahead of evaluation; bounded so huge input is not all held in memory.
const READ_AHEAD: usize = 64;

/// Runs every line of stdin; returns the exit status.
pub async fn run<E: Evaluator>(mut ev: E) -> i32 {
    let mut lines = read_stdin_lines();
    let mut session = Session::default();
    while let Some(line) = lines.recv().await {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                write_err(&format!("error: reading stdin: {e}"));
                session.failures += 1;
                break;
            }
        };
        match session.feed(&mut ev, &line).await {
            Step::Continue => {}
            Step::Quit => break,
            Step::Exit(code) => return code,
        }
    }
    if let Step::Exit(code) = session.finish(&mut ev).await {
        return code;
    }
    ev.settle().await;
    i32::from(session.failures > 0)
}

/// Lines of stdin without their `\n` (or `\r\n`), as raw bytes: scripts may hold any bytes.
fn read_stdin_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("repl-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut line = Vec::new();
                let item = match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if line.ends_with(b"\n") {
                            line.pop();
                            if line.ends_with(b"\r") {
                                line.pop();
                            }
                        }
                        Ok(line)
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread the receiver sees a closed channel: report it as a read error.
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Err(e));
        return rx;
    }
    rx
}
