//! `dreamos store migrate|status`: the configured store (`[store]` in dreamos.toml), or the
//! one `--store sqlite:PATH|postgres:URL` names. Opening a store applies its pending
//! migrations (under a lock on PostgreSQL, so several nodes may start at once); `migrate`
//! does only that and says what it applied, so a deployment can migrate before it starts
//! nodes.
//!
//! `dreamos store copy` moves an embedded store into an empty PostgreSQL one
//! (`crate::store::copy`); this file parses its arguments and prints what it copied.

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
    /// Copy an embedded SQLite store, history included, into an empty PostgreSQL store.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The SQLite store to copy (default: the configured `[store] path`). Stop the nodes
    /// using it first.
    #[arg(long, value_name = "sqlite:PATH", value_parser = StoreTarget::parse)]
    pub from: Option<StoreTarget>,
    /// The PostgreSQL store to fill; it must hold no rows yet (default: the configured
    /// store, when `[store] backend = "postgres"`).
    #[arg(long, value_name = "postgres:URL", value_parser = StoreTarget::parse)]
    pub to: Option<StoreTarget>,
    /// The PostgreSQL schema to fill (default: `[store] schema` for the configured store,
    /// the URL's default schema for `--to`).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store to use instead of the configured one: `sqlite:PATH` or `postgres:URL`.
    #[arg(long, value_name = "BACKEND:WHERE", value_parser = StoreTarget::parse)]
    pub store: Option<StoreTarget>,
}

pub fn run(config: &Config, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    let (args, migrating) = match &cmd {
        StoreCommand::Migrate(a) => (a, true),
        StoreCommand::Status(a) => (a, false),
        StoreCommand::Copy(args) => return copy(config, args),
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
        if migrating {
            migrate(&store, &target, started).await
        } else {
            status(&store, &target).await
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

fn copy(config: &Config, args: &CopyArgs) -> anyhow::Result<ExitCode> {
    let from = match &args.from {
        Some(StoreTarget::Sqlite(path)) => path.clone(),
        Some(StoreTarget::Postgres { .. }) => {
            return Err(anyhow!(
                "--from must be a SQLite store (sqlite:PATH): store copy moves an embedded \
                 store to PostgreSQL, not the other way"
            ))
        }
        None => config.resolve(&config.store.path),
    };
    let target = match &args.to {
        Some(t) => t.clone(),
        None => match StoreTarget::from_config(config).map_err(|e| anyhow!(e))? {
            StoreTarget::Sqlite(_) => {
                return Err(anyhow!(
                    "store copy needs --to postgres:URL (the configured store is SQLite: \
                     store.backend is not \"postgres\")"
                ))
            }
            pg => pg,
        },
    };
    let StoreTarget::Postgres { url, schema } = target else {
        return Err(anyhow!(
            "--to must be a PostgreSQL store (postgres:URL): store copy only copies from \
             SQLite to PostgreSQL"
        ));
    };
    let schema = args.schema.clone().or(schema);
    let described = StoreTarget::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    }
    .describe();
    let source = format!("sqlite {}", from.display());
    let report = crate::runtime::block_on(async move {
        crate::store::copy::sqlite_to_postgres(&from, &url, schema).await
    })?
    .map_err(|e| {
        anyhow!("store copy from {source} to {described} failed, nothing was copied: {e:#}")
    })?;
    let mut out = format!(
        "copied {source} to {described}: schema version {}\n",
        report.version
    );
    let mut total = 0;
    for (table, rows) in &report.tables {
        let _ = writeln!(out, "{table:<19}{rows}");
        total += rows;
    }
    let _ = writeln!(
        out,
        "{:<19}{total} rows, each table's count checked",
        "total"
    );
    for (table, why) in &report.skipped {
        let _ = writeln!(out, "not copied: {table} ({why})");
    }
    for (sequence, last) in &report.sequences {
        let _ = writeln!(out, "sequence {sequence} continues after {last}");
    }
    print_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints `text`; a closed stdout (`| head`) ends the output quietly instead of panicking.
fn print_all(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
