//! `dreamos run`, `dreamos check` and the entry to `dreamos repl`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::config::Config;
use crate::runtime::{self, ScriptError, StateOptions};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run this code instead of a file (`dreamos run -e 'print(1+1)'`).
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    pub eval: Option<String>,
    /// Grant a capability for this run (repeatable): fs:DIR, net:HOST, exec, env:VAR.
    #[arg(long = "allow", value_name = "GRANT")]
    pub allow: Vec<String>,
    /// Memory limit for this run, e.g. 64MiB (default: sandbox.memory_limit).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_bytes)]
    pub memory: Option<u64>,
    /// Wall-clock limit for this run, e.g. 30s (default: sandbox.timeout).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// The script (a path, or a name found on runtime.script_paths), then its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SCRIPT [ARGS]"
    )]
    pub script_and_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// Grant a capability for this session (repeatable).
    #[arg(long = "allow", value_name = "GRANT")]
    pub allow: Vec<String>,
    /// Neither read nor write the history file.
    #[arg(long)]
    pub no_history: bool,
    /// Open the REPL inside the running daemon (`dreamos serve`), with its agents at hand.
    #[arg(long)]
    pub attach: bool,
}

pub fn run(config: Arc<Config>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (script, source_path, script_args) = match (&args.eval, args.script_and_args.split_first())
    {
        (Some(_), _) => (
            "(command line)".to_string(),
            None,
            args.script_and_args.clone(),
        ),
        (None, Some((script, rest))) => {
            let path = find_script(&config, script)?;
            (script.clone(), Some(path), rest.to_vec())
        }
        (None, None) => {
            anyhow::bail!("dreamos run: give a script path or -e CODE (see dreamos run --help)")
        }
    };
    let _log = super::init_logging(&config)?;
    let opts = StateOptions {
        extra_allow: args.allow.clone(),
        memory_limit: args.memory,
        timeout: args.timeout,
        ..StateOptions::new(script.clone())
    };
    let lua = match runtime::new_state(config.clone(), opts) {
        Ok(lua) => lua,
        Err(e) => return Ok(report(Err(e))),
    };
    let outcome = runtime::block_on(async {
        match (&source_path, &args.eval) {
            (Some(path), _) => runtime::run_file(&lua, path, &script_args).await,
            (None, Some(code)) => {
                runtime::run_chunk(&lua, code.as_bytes(), "=(command line)", &script_args)
                    .await
                    .map(|_| ())
            }
            (None, None) => Ok(()),
        }
    })?;
    // The process is about to exit and the OS frees everything at once; tearing down the
    // Lua heap object by object would add a measurable slice to every cron-started script.
    std::mem::forget(lua);
    Ok(report(outcome))
}

/// Prints a script failure as `error: file:line: message` plus traceback; returns the status.
pub fn report(outcome: Result<(), ScriptError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(ScriptError::Exit(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A path as given, else `NAME` or `NAME.lua` on the script paths.
fn find_script(config: &Config, name: &str) -> anyhow::Result<PathBuf> {
    let direct = Path::new(name);
    if direct.is_file() {
        return Ok(direct.to_path_buf());
    }
    if !name.contains('/') {
        for dir in &config.runtime.script_paths {
            let dir = config.resolve(dir);
            for candidate in [dir.join(name), dir.join(format!("{name}.lua"))] {
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
    }
    if direct.exists() {
        anyhow::bail!("{name}: is not a file");
    }
    anyhow::bail!("{name}: no such script (looked at the path and on runtime.script_paths)")
}

/// `dreamos check`: compiles each file in text mode; prints every syntax error.
pub fn check(config: &Config, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let _ = config;
    let lua = mlua::Lua::new();
    let mut failed = 0;
    for file in files {
        let result = std::fs::read(file)
            .map_err(|e| format!("{}: {e}", file.display()))
            .and_then(|src| {
                lua.load(src)
                    .set_name(format!("@{}", file.display()))
                    .set_mode(mlua::chunk::ChunkMode::Text)
                    .into_function()
                    .map(|_| ())
                    .map_err(|e| match e {
                        mlua::Error::SyntaxError { message, .. } => message,
                        other => other.to_string(),
                    })
            });
        match result {
            Ok(()) => println!("{}: ok", file.display()),
            Err(message) => {
                failed += 1;
                eprintln!("{message}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} file(s) have errors", files.len());
        ExitCode::from(1)
    })
}

pub fn repl(config: Arc<Config>, args: ReplArgs) -> anyhow::Result<ExitCode> {
    crate::cli::repl::run(config, args)
}
