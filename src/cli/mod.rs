//! The command line: one file per subcommand family, one enum that routes.
//!
//! `main.rs` parses [`Cli`] and calls [`dispatch`]; every command returns the process exit
//! status. Errors are printed once, here, as `error: ...`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub mod agent;
pub mod attach;
pub mod bench;
pub mod bench_agents;
pub mod bench_nodes;
pub mod bus;
pub mod dashboard;
pub mod init;
pub mod log;
pub mod repl;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod social;
pub mod store;
pub mod task;

/// Dream.OS: a scriptable automation runtime for Lua 5.4 agents, schedules and clients.
#[derive(Debug, Parser)]
#[command(name = "dreamos", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: $DREAMOS_CONFIG, then ./dreamos.toml, then built-in).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Lua script (or -e CODE); the script's arguments follow its path.
    Run(run::RunArgs),
    /// Check scripts for syntax errors without running them.
    Check {
        /// Lua files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Interactive Lua prompt with the dreamos modules loaded.
    Repl(crate::cli::run::ReplArgs),
    /// Write .luarc.json and the API stubs so lua-language-server completes the dreamos API.
    Init {
        /// Project directory (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// The message bus: send, tail, history, export, dead letters, stats.
    Bus {
        #[command(subcommand)]
        cmd: bus::BusCommand,
    },
    /// Tasks: add, list, show, claim, progress, done, fail, cancel, import, graph, watch.
    Task {
        #[command(subcommand)]
        cmd: task::TaskCommand,
    },
    /// Schedules: list, history, add, rm, pause, resume, run now, and `next` to preview times.
    Schedule {
        #[command(subcommand)]
        cmd: schedule::ScheduleCommand,
    },
    /// Run the daemon: the [[agents]] of dreamos.toml and the control API, until SIGTERM.
    Serve,
    /// Control the agents of the running daemon: list, status, start, stop, restart, ...
    Agent {
        #[command(subcommand)]
        cmd: agent::AgentCommand,
    },
    /// Benchmarks: `dreamos bench bus|tasks|scheduler|agents`, the figures in the README.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCommand,
    },
    /// Logs: `tail [--follow]` and `search QUERY` over the live and archived JSON-lines files.
    Log {
        #[command(subcommand)]
        cmd: log::LogCommand,
    },
    /// Print the dashboard's address and token, and open it in a browser where one exists.
    Dashboard {
        /// Only print; do not start a browser.
        #[arg(long)]
        no_open: bool,
    },
    /// Social posting: post, queue, retry, cancel, send, accounts, report.
    Social {
        #[command(subcommand)]
        cmd: social::SocialCommand,
    },
    /// Print the effective configuration (file, defaults and DREAMOS_* overrides) as TOML.
    Config,
    /// The store: `migrate` (create or update the schema), `status` (version, counts) and
    /// `copy` (move an embedded SQLite store to PostgreSQL).
    Store {
        #[command(subcommand)]
        cmd: store::StoreCommand,
    },
}

/// Runs the parsed command and returns the exit status.
pub fn dispatch(cli: Cli) -> ExitCode {
    let config = match Config::discover(cli.config.as_deref()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if prints_only(&cli.command) {
        restore_sigpipe();
    }
    let result = match cli.command {
        Command::Run(args) => run::run(config, args),
        Command::Check { files } => run::check(&config, &files),
        Command::Repl(args) => run::repl(config, args),
        Command::Init { dir } => init::init(&dir),
        Command::Config => print_config(&config),
        Command::Store { cmd } => store::run(&config, cmd),
        Command::Bench { cmd } => bench::run(config.clone(), cmd),
        Command::Schedule { cmd } => schedule::run(config.clone(), cmd),
        Command::Task { cmd } => with_store(&config, |store| {
            let config = config.clone();
            async move { task::run(cmd, store, &config).await }
        }),
        Command::Serve => serve::serve(config),
        Command::Social { cmd } => {
            let _log = init_logging(&config);
            with_store_code(&config, |store| {
                let config = config.clone();
                async move { social::run(cmd, store, config).await }
            })
        }
        Command::Agent { cmd } => agent::run(config, cmd),
        Command::Log { cmd } => log::run(&config, cmd),
        Command::Dashboard { no_open } => dashboard::run(&config, no_open),
        Command::Bus { cmd } => with_store(&config, |store| {
            let bus_config = config.bus.clone();
            async move { bus::run_with_config(cmd, store, bus_config).await }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Commands whose output is meant for a terminal or a pipe (`dreamos log tail | head`) and
/// that write to no pipe of their own (no child processes fed through stdin).
fn prints_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Config
            | Command::Store { .. }
            | Command::Task { .. }
            | Command::Social { .. }
            | Command::Log { .. }
            | Command::Bus { .. }
            | Command::Agent { .. }
    )
}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe panics ("failed printing to
/// stdout"). For commands that only print, the default disposition is what a user of
/// `| head` expects: the process ends quietly when the reader goes away. Sockets are not
/// affected (they are written with MSG_NOSIGNAL); commands that feed child processes
/// (`run`, `serve`, `repl`, `schedule`, `bench`) keep ignoring it and get EPIPE instead.
fn restore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL at start-up, before any thread is
    // spawned, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn print_config(config: &Config) -> anyhow::Result<ExitCode> {
    print!("{}", toml::to_string(config)?);
    Ok(ExitCode::SUCCESS)
}

/// Opens the configured store and runs `f` with it on a current-thread runtime.
fn with_store<F, Fut>(config: &Config, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(crate::store::SharedStore) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::runtime::block_on(async {
        let store = crate::store::open_configured(config)
            .await
            .map_err(anyhow::Error::msg)?;
        f(store).await
    })??;
    Ok(ExitCode::SUCCESS)
}

/// Like [`with_store`], for commands that choose their own exit status.
fn with_store_code<F, Fut>(config: &Config, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(crate::store::SharedStore) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    crate::runtime::block_on(async {
        let store = crate::store::open_configured(config)
            .await
            .map_err(anyhow::Error::msg)?;
        f(store).await
    })?
}

/// Starts logging as configured. Called by commands that run scripts; cheap, because the
/// log file opens on its first line.
pub fn init_logging(config: &Config) -> anyhow::Result<crate::logging::LogGuard> {
    let log = &config.log;
    let settings = crate::logging::LogSettings {
        level: log.level.clone(),
        file_level: log.file_level.clone(),
        dir: (!log.dir.as_os_str().is_empty()).then(|| config.resolve(&log.dir)),
        max_size: log.max_size,
        keep: log.keep,
        archive_after: log.archive_after,
        delete_after: log.delete_after,
        console: log.console.parse().map_err(anyhow::Error::msg)?,
    };
    crate::logging::init(&settings)
}
