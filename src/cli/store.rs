//! `dreamos store migrate|status`: the configured store (`[store]` in dreamos.toml), or the
//! one `--store sqlite:PATH|postgres:URL` names. Opening a store applies its pending
//! migrations (under a lock on PostgreSQL, so several nodes may start at once); `migrate`
//! does only that and says what it applied, so a deployment can migrate before it starts
//! nodes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::store::{AnyStore, StoreTarget};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the schema or bring it up to date, and say which migrations were applied.
    Migrate(StoreArgs),
    /// Backend, database, schema version and row counts.
    Status(StoreArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store to use instead of the configured one: `sqlite:PATH` or `postgres:URL`.
    #[arg(long, value_name = "BACKEND:WHERE", value_parser = StoreTarget::parse)]
    pub store: Option<StoreTarget>,
}

pub fn run(config: &Config, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    let args = match &cmd {
        StoreCommand::Migrate(a) | StoreCommand::Status(a) => a,
    };
    let target = match &args.store {
        Some(t) => t.clone(),
        None => StoreTarget::from_config(config).map_err(|e| anyhow!(e))?,
    };
    let started = chrono::Utc::now().timestamp_millis();
    crate::runtime::block_on(async move {
        let store = target
            .open()
            .await
            .map_err(|e| anyhow!("cannot open the store ({}): {e}", target.describe()))?;
        match cmd {
            StoreCommand::Migrate(_) => migrate(&store, &target, started).await,
            StoreCommand::Status(_) => status(&store, &target).await,
        }
    })??;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(store: &AnyStore, target: &StoreTarget, started: i64) -> anyhow::Result<()> {
    let applied = store.applied_since(started).await?;
    let (version, known) = store.schema_version().await?;
    let mut out = format!(
        "{}: schema version {version} of {known}\n",
        target.describe()
    );
    if applied.is_empty() {
        out.push_str("already up to date, nothing applied\n");
    }
    for (version, name) in applied {
        let _ = writeln!(out, "applied {version}: {name}");
    }
    print_all(&out)
}

async fn status(store: &AnyStore, target: &StoreTarget) -> anyhow::Result<()> {
    let (version, known) = store.schema_version().await?;
    let database = target.describe();
    let database = database.split_once(' ').map_or(&*database, |(_, db)| db);
    let mut out = String::new();
    let _ = writeln!(out, "{:<19}{}", "backend", store.backend());
    let _ = writeln!(out, "{:<19}{database}", "database");
    let _ = writeln!(
        out,
        "{:<19}{version} (this dreamos knows up to {known})",
        "schema version"
    );
    for (table, n) in store.table_counts().await? {
        let _ = writeln!(out, "{table:<19}{n}");
    }
    print_all(&out)
}

/// Prints `text`; a closed stdout (`| head`) ends the output quietly instead of panicking.
fn print_all(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
