//! Persistence behind traits.
//!
//! Domain code (the bus, tasks, schedules) never writes SQL itself: it calls a trait defined
//! here, and a backend implements the trait. [`sqlite`] is the embedded default (one file,
//! WAL mode, no setup); [`postgres`] implements the same traits for several nodes sharing
//! one swarm, with the same migration numbering.
//!
//! - [`BusStore`]: durable queue state, history and dead letters of the message bus.
//! - [`KvStore`]: small durable key/value state per namespace (a script's `dreamos.kv`).
//! - [`TaskStore`]: tasks, their dependencies and their transition log (`crate::tasks`).
//! - [`LeaseStore`]: which node runs what when several share one database, and the nodes.
//! - [`AgentStore`], [`ScheduleStore`], [`SocialStore`], [`DiscordOutboxStore`]: the
//!   agent supervisor's log, the scheduler, and the social and Discord outboxes.
//! - [`StoreError`]: every failure says what was being done and in which database.
//!
//! The traits return boxed futures (rather than `async fn`) so that callers can hold an
//! `Arc<dyn BusStore>` without knowing the backend.
//!
//! Time is always passed in by the caller as milliseconds since the Unix epoch ([`Millis`]):
//! the bus owns the clock (tokio time, so tests can pause it), the store only records.

pub mod agent_types;
pub mod backend;
mod bus_store;
pub mod bus_types;
pub mod copy;
#[cfg(test)]
mod lease_tests;
pub mod lease_types;
pub mod outbox_types;
pub mod postgres;
mod schedule_store;
mod social_store;
pub mod sqlite;
mod task_store;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod throwaway_pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use agent_types::*;
pub use backend::{AnyStore, StoreTarget};
pub use bus_store::*;
pub use bus_types::*;
pub use lease_types::*;
pub use outbox_types::*;
pub use postgres::{PgOptions, PgStore};
pub use schedule_store::*;
pub use social_store::*;
pub use sqlite::SqliteStore;
pub use task_store::*;

/// Everything a running Dream.OS needs from its database: the union of the per-domain
/// traits, implemented by each backend. Commands and the daemon hold an `Arc<dyn Store>`
/// ([`SharedStore`]) and hand each service the trait it takes (`store.clone() as
/// Arc<dyn BusStore>`), so no code outside `store` knows which backend it runs on.
pub trait Store:
    BusStore
    + KvStore
    + TaskStore
    + AgentStore
    + ScheduleStore
    + SocialStore
    + DiscordOutboxStore
    + LeaseStore
{
    /// `sqlite` or `postgres`, for status lines and metrics.
    fn backend(&self) -> &'static str;

    /// The database file, when it is one: watchers of a local file can wake on its writes
    /// instead of polling.
    fn file(&self) -> Option<&Path> {
        None
    }
}

/// The opened store, shared by every service of a process.
pub type SharedStore = Arc<dyn Store>;

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn file(&self) -> Option<&Path> {
        Some(self.path())
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Milliseconds since the Unix epoch, as stored in every timestamp column.
pub type Millis = i64;

/// Opens (creating if needed) the embedded SQLite database at `path`: parent directories,
/// WAL mode, the group-commit writer thread and every pending migration. Fast enough to call
/// when a command first needs storage; callers decide when that is.
pub async fn open_sqlite(path: &Path) -> Result<Arc<SqliteStore>, StoreError> {
    SqliteStore::open(path).await.map(Arc::new)
}

/// Opens the store `[store]` configures, as every service takes it. The error says which
/// backend and database (password masked), and why.
pub async fn open_configured(config: &crate::config::Config) -> Result<SharedStore, String> {
    let target = StoreTarget::from_config(config)?;
    let opened = target
        .open()
        .await
        .map(|store| store.shared())
        .map_err(|e| format!("cannot open the store ({}): {e}", target.describe()))?;
    Ok(opened)
}

/// In tests only: keeps tokio's paused clock from jumping while a database round trip is
/// in flight. A paused clock advances to the next timer whenever the runtime is idle, and
/// waiting on a socket is idle, so a test's "wait up to 60 s" would time out during a
/// 1 ms query. Blocking-pool tasks hold the clock (SQLite's reads already run there), so
/// one waits here until the operation is done: PostgreSQL round trips and SQLite writes
/// (answered by the writer thread) go through it. Production code runs the plain future.
#[cfg(test)]
pub(crate) async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    });
    let out = operation.await;
    drop(done);
    let _ = holder.await;
    out
}

#[cfg(not(test))]
pub(crate) async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    operation.await
}

/// What went wrong in the store, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {} for the database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot restrict the database file {} to mode 0600: {source}", path.display())]
    Restrict {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {}: migration {version} ({name}) failed: {source}", path.display())]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, but this dreamos only knows up to {known}: \
         upgrade dreamos or point it at another database",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{what} failed in database {}: {source}", path.display())]
    Sql {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The commit of a group failed: nothing any job of that group wrote was saved.
    #[error("commit to database {} failed, so this write was not saved: {message}", path.display())]
    Commit { path: PathBuf, message: String },
    #[error("a database job panicked in {}: {message}", path.display())]
    JobPanicked { path: PathBuf, message: String },
    #[error("the database writer for {} has stopped; reopen the store", path.display())]
    WriterStopped { path: PathBuf },
    #[error("{what} in database {}: stored data is unreadable: {detail}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// A PostgreSQL statement, connection or migration failed. `db` is the connection URL
    /// with any password masked.
    #[error(
        "{what} failed in PostgreSQL database {db}: {}",
        postgres::describe(source)
    )]
    Postgres {
        what: std::borrow::Cow<'static, str>,
        db: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Wraps a SQL error with what was being done; the store fills in the database path
    /// when the error leaves it (jobs do not know the path).
    pub fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sql {
            what,
            path: PathBuf::new(),
            source,
        }
    }

    /// A stored value that does not decode (bad JSON, unknown status name, ...).
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what,
            path: PathBuf::new(),
            detail: detail.to_string(),
        }
    }

    /// Sets the database path on errors built inside jobs, which leave it empty.
    pub(crate) fn at(mut self, db: &Path) -> StoreError {
        match &mut self {
            StoreError::Sql { path, .. } | StoreError::Corrupt { path, .. }
                if path.as_os_str().is_empty() =>
            {
                *path = db.to_path_buf();
            }
            _ => {}
        }
        self
    }
}
