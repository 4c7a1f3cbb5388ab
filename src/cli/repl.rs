//! `dreamos repl` (being written).
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;

pub fn run(_config: Arc<Config>, _args: super::run::ReplArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("dreamos repl is not available in this build yet")
}
