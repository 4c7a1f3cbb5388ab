//! `dreamos repl`: an interactive Lua prompt with the dreamos modules preloaded.
//!
//! How the pieces fit:
//! - [`eval`] defines the [`Evaluator`](eval::Evaluator) seam (run a chunk, complete a
//!   word) and [`LocalEvaluator`](eval::LocalEvaluator), a sandboxed state in this process.
//!   `repl --attach` will add an evaluator that talks to the daemon; nothing else changes.
//! - [`session`] turns lines into chunks (multi-line input), runs dot commands and prints
//!   outcomes. Both frontends use it.
//! - [`terminal`] is the interactive frontend: prompts, Ctrl-C, and [`editor`], the
//!   rustyline thread with history and Tab completion ([`complete`]).
//! - [`piped`] is the frontend for non-terminal stdin: no prompts, status 1 on any error.
//!
//! The Lua state, and every task it spawns, lives on the main thread in a tokio `LocalSet`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::runtime;

pub mod complete;
pub mod editor;
pub mod eval;
pub mod piped;
pub mod session;
pub mod terminal;

use editor::HistorySettings;
use eval::LocalEvaluator;

/// Runs `dreamos repl`; the status is 0, or 1 when piped input had an error, or the
/// code given to `os.exit`.
pub fn run(config: Arc<Config>, args: super::run::ReplArgs) -> anyhow::Result<ExitCode> {
    let _log = super::init_logging(&config)?;
    let interactive = std::io::stdin().is_terminal();
    let history = HistorySettings {
        file: (!args.no_history).then(|| history_file(&config)).flatten(),
        size: config.repl.history_size,
    };
    let code = runtime::block_on(async move {
        let interrupt = Arc::new(AtomicBool::new(false));
        if args.attach {
            let ev = crate::cli::attach::RemoteEvaluator::connect(&config).await?;
            return if interactive {
                terminal::run(ev, interrupt, history).await
            } else {
                Ok(piped::run(ev).await)
            };
        }
        let ev = LocalEvaluator::new(config, args.allow, interrupt.clone())?;
        if interactive {
            terminal::run(ev, interrupt, history).await
        } else {
            Ok(piped::run(ev).await)
        }
    })??;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `repl.history_file` (relative to the config file), else `$HOME/.dreamos_history`;
/// `None` when neither is known.
fn history_file(config: &Config) -> Option<PathBuf> {
    let configured = &config.repl.history_file;
    if !configured.as_os_str().is_empty() {
        return Some(config.resolve(configured));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".dreamos_history"))
}
