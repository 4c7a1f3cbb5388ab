//! The part of the REPL both frontends share: accumulating lines into chunks, the dot
//! commands, and printing outcomes (results to stdout, errors to stderr).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::eval::{Chunk, Evaluator, Mode, Outcome, STDIN_CHUNK};

/// What the frontend should do after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read the next line (on the `>>` prompt if [`Session::pending`]).
    Continue,
    /// `.exit`: end the session as end of input would.
    Quit,
    /// `os.exit(code)`: end the session with this exit status.
    Exit(i32),
}

/// Lines typed so far that do not yet form a complete chunk, and a count of failures for
/// the exit status of piped sessions.
#[derive(Default)]
pub struct Session {
    /// The unfinished chunk, lines joined with `\n`; empty between statements.
    buffer: Vec<u8>,
    /// Statements that failed; piped input exits 1 if any did.
    pub failures: usize,
}

impl Session {
    /// True while a chunk is unfinished (the next prompt is `>>`).
    pub fn pending(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Forgets the unfinished chunk (Ctrl-C at the prompt).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    /// Handles one line of input (without its newline).
    pub async fn feed<E: Evaluator>(&mut self, ev: &mut E, line: &[u8]) -> Step {
        if self.buffer.is_empty() {
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                return Step::Continue;
            }
            if let Some(command) = DotCommand::parse(trimmed) {
                return self.run_command(ev, command).await;
            }
        } else {
            self.buffer.push(b'\n');
        }
        self.buffer.extend_from_slice(line);
        self.eval_buffer(ev, Mode::Prompt).await
    }

    /// End of input: an unfinished chunk is now a syntax error, reported as such.
    pub async fn finish<E: Evaluator>(&mut self, ev: &mut E) -> Step {
        if self.buffer.is_empty() {
            return Step::Continue;
        }
        self.eval_buffer(ev, Mode::Final).await
    }

    async fn eval_buffer<E: Evaluator>(&mut self, ev: &mut E, mode: Mode) -> Step {
        let chunk = Chunk {
            source: &self.buffer,
            name: STDIN_CHUNK,
            mode,
        };
        let outcome = ev.eval(chunk).await;
        if outcome != Outcome::Incomplete {
            self.buffer.clear();
        }
        self.show(outcome)
    }

    /// Prints an outcome: results tab-separated on one line, errors on stderr.
    pub fn show(&mut self, outcome: Outcome) -> Step {
        match outcome {
            Outcome::Incomplete => Step::Continue,
            Outcome::Values(values) if values.is_empty() => Step::Continue,
            Outcome::Values(values) => {
                let mut line = values.join(&b'\t');
                line.push(b'\n');
                write_out(&line);
                Step::Continue
            }
            Outcome::Failed(message) => {
                self.failures += 1;
                write_err(&message);
                Step::Continue
            }
            Outcome::Exit(code) => Step::Exit(code),
        }
    }

    async fn run_command<E: Evaluator>(&mut self, ev: &mut E, command: DotCommand<'_>) -> Step {
        match command {
            DotCommand::Help => {
                print_help(&ev.preloaded());
                Step::Continue
            }
            DotCommand::Exit => Step::Quit,
            DotCommand::Load(path) => {
                let outcome = load_file(ev, path).await;
                self.show(outcome)
            }
            DotCommand::Unknown(name) => {
                self.failures += 1;
                write_err(&format!(
                    "unknown command .{}; .help lists the commands",
                    String::from_utf8_lossy(name)
                ));
                Step::Continue
            }
        }
    }
}

/// A line starting with `.name`. `.5` stays Lua (a number).
#[derive(Debug, PartialEq, Eq)]
enum DotCommand<'a> {
    Help,
    Exit,
    Load(&'a [u8]),
    Unknown(&'a [u8]),
}

impl<'a> DotCommand<'a> {
    fn parse(line: &'a [u8]) -> Option<DotCommand<'a>> {
        let rest = line.strip_prefix(b".")?;
        if !rest.first()?.is_ascii_alphabetic() {
            return None;
        }
        let end = rest
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let (name, arg) = (&rest[..end], rest[end..].trim_ascii());
        Some(match name {
            b"help" => DotCommand::Help,
            b"exit" | b"quit" => DotCommand::Exit,
            b"load" => DotCommand::Load(arg),
            other => DotCommand::Unknown(other),
        })
    }
}

/// `.load FILE`: runs the file in the session's state; errors point at `FILE:line`.
async fn load_file<E: Evaluator>(ev: &mut E, path: &[u8]) -> Outcome {
    if path.is_empty() {
        return Outcome::Failed(".load: give a file to run, e.g. .load script.lua".into());
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(path));
    let source = match std::fs::read(path) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!(".load: cannot read {}: {e}", path.display())),
    };
    let name = format!("@{}", path.display());
    let chunk = Chunk {
        source: &source,
        name: &name,
        mode: Mode::Script,
    };
    ev.eval(chunk).await
}

/// Writes to stdout and flushes. A closed stdout (`| head`) is not the statement's
/// failure and must not panic as `println!` would: errors are ignored.
pub fn write_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// Writes one line to stderr, ignoring errors for the same reason as [`write_out`].
pub fn write_err(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn print_help(preloaded: &[String]) {
    write_out(
        format!(
            "Commands:\n  \
         .help         this text\n  \
         .load FILE    run a Lua file in this session\n  \
         .exit         leave (Ctrl-D does too)\n\
         Keys: Tab completes names and fields, Up/Down walk the history, Ctrl-C cancels the\n\
         running statement or clears the line.\n\
         An expression prints its value; an unfinished statement continues on a >> prompt.\n\
         Preloaded modules: {}\n",
            preloaded.join(", ")
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dot_commands() {
        assert_eq!(DotCommand::parse(b".help"), Some(DotCommand::Help));
        assert_eq!(
            DotCommand::parse(b".load  a b.lua"),
            Some(DotCommand::Load(b"a b.lua"))
        );
        assert_eq!(
            DotCommand::parse(b".frob x"),
            Some(DotCommand::Unknown(b"frob"))
        );
        assert_eq!(DotCommand::parse(b".5 + 1"), None);
        assert_eq!(DotCommand::parse(b"."), None);
        assert_eq!(DotCommand::parse(b"x = 1"), None);
    }
}
