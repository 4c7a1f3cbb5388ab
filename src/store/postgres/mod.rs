//! The PostgreSQL backend: several nodes share one swarm through one database.
//!
//! Every store method is one transaction (or one statement, which PostgreSQL commits on
//! its own) on a pooled connection ([`pool`]). Where SQLite serializes writers through its
//! single writer thread, PostgreSQL runs them concurrently, so claims lock what they take
//! with `FOR UPDATE SKIP LOCKED`: two claimers, on one node or on several, skip each other's
//! rows instead of queueing behind them, and never get the same message or task.
//!
//! The schema is the SQLite schema in PostgreSQL's dialect, with the same migration
//! numbers ([`schema::MIGRATIONS`]), applied at open under an advisory lock so that nodes
//! starting together migrate once.
//!
//! Enqueueing a bus message also sends `NOTIFY` on [`PgStore::notify_channel`], with the
//! bus channel's name as payload, committed with the message; [`PgStore::listen`] gives a
//! consumer those names as they arrive, so a node can wake when another node sends to it
//! instead of polling.

mod bus;
mod bus_claim;
mod bus_history;
mod bus_queue;
mod kv;
mod pool;
pub mod schema;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::StoreError;
use pool::{Conn, Pool};

/// Connections one store opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// An arbitrary constant (ASCII "drea") identifying the migration lock among other
/// applications' advisory locks; paired with a hash of the schema so that test schemas
/// migrate side by side.
const MIGRATION_LOCK: i32 = 0x6472_6561;

/// How to open a [`PgStore`] beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Pool size; `None` = [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// A schema to work in (created if missing) instead of the URL's default search path.
    /// Tests use one fresh schema each; deployments normally leave it unset.
    pub schema: Option<String>,
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    notify_channel: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", self.pool.db())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?sslmode=disable`, or the
    /// `key=value` form) and applies every pending migration.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, PgOptions::default()).await
    }

    pub async fn open_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let db = mask_url(url);
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| StoreError::Postgres {
                what: "parse the connection URL".into(),
                db: db.clone(),
                source,
            })?;
        let mut notify_channel = String::from("dreamos_bus");
        if let Some(schema) = &options.schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || schema.is_empty()
            {
                return Err(StoreError::Io {
                    what: format!("PostgreSQL database {db}: schema name '{schema}'"),
                    source: std::io::Error::other("use only letters, digits and '_'"),
                });
            }
            config.options(format!("-c search_path={schema}"));
            notify_channel = format!("dreamos_bus_{schema}");
        }
        let label = match &options.schema {
            Some(schema) => format!("{db} (schema {schema})"),
            None => db,
        };
        let max = options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let store = PgStore {
            pool: Pool::new(config, Arc::from(label), max),
            notify_channel,
        };
        if let Some(schema) = &options.schema {
            let mut conn = store.pool.get().await?;
            conn.batch(
                "create schema",
                &format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
            )
            .await?;
        }
        schema::migrate(&store, options.schema.as_deref().unwrap_or("")).await?;
        Ok(store)
    }

    /// The database this store works on, password masked: what errors and status show.
    pub fn db(&self) -> &str {
        self.pool.db()
    }

    /// The `NOTIFY` channel enqueues signal on; the payload is the bus channel's name.
    pub fn notify_channel(&self) -> &str {
        &self.notify_channel
    }

    /// A dedicated connection listening on [`notify_channel`](PgStore::notify_channel):
    /// every message enqueued from now on, by any node, yields its bus channel's name
    /// once its transaction committed. A consumer waits on it (with a fallback timer, as a
    /// notification can be lost with a dropped connection) instead of polling the table.
    pub async fn listen(&self) -> Result<BusListener, StoreError> {
        let (client, mut connection) = self
            .pool
            .connect_raw()
            .await
            .map_err(|source| self.error("connect for LISTEN", source))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("PostgreSQL LISTEN connection failed: {e}");
                        return;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"{}\"", self.notify_channel))
            .await
            .map_err(|source| self.error("LISTEN", source))?;
        Ok(BusListener {
            _client: client,
            rx,
        })
    }

    fn error(&self, what: &'static str, source: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            what: what.into(),
            db: self.db().to_string(),
            source,
        }
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "read schema_version",
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Migrations recorded at or after `since` (ms since the epoch), oldest first.
    pub async fn applied_since(&self, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let mut conn = self.pool.get().await?;
        let rows = conn
            .query(
                "read schema_version",
                "SELECT version, name FROM schema_version WHERE applied_at >= $1
                 ORDER BY version",
                &[&since],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Rows in each of the main tables, by table name (for `dreamos store status`).
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut conn = self.pool.get().await?;
        let mut out = Vec::new();
        for table in schema::COUNTED_TABLES {
            let row = conn
                .query_one("count rows", &format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?;
            out.push((*table, row.get(0)));
        }
        Ok(out)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Bus channel names as other nodes (and this one) enqueue to them; see
/// [`PgStore::listen`]. Dropping it closes its connection.
pub struct BusListener {
    _client: tokio_postgres::Client,
    rx: mpsc::UnboundedReceiver<String>,
}

impl BusListener {
    /// The next channel that received a message; `None` once the connection is gone (the
    /// caller falls back to polling or listens again).
    pub async fn recv(&mut self) -> Option<String> {
        self.rx.recv().await
    }
}

/// The URL without its password: `postgres://u:secret@h/db` → `postgres://u:***@h/db`,
/// `password=secret` → `password=***`.
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find('/').map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@').map(|i| rest + i) {
            if let Some(colon) = out[rest..at].find(':').map(|i| rest + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let (before, after) = rest.split_at(i + "password=".len());
        masked.push_str(before);
        masked.push_str("***");
        let end = after.find([' ', '&']).unwrap_or(after.len());
        rest = &after[end..];
    }
    masked.push_str(rest);
    masked
}

/// What a PostgreSQL error says: the server's message, detail and hint when it is the
/// server's error, else the client's description (connection refused, closed, ...).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        // The client's own errors keep their cause apart ("error connecting to server",
        // caused by "Connection refused").
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// For errors that carry a path: the masked URL stands in for it.
pub(crate) fn db_path(db: &str) -> PathBuf {
    PathBuf::from(db)
}

impl PgStore {
    /// Runs `body` on a pooled connection inside one transaction: committed when it
    /// returns Ok, rolled back otherwise.
    pub(super) async fn in_transaction<T>(
        &self,
        body: impl for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        hold_test_clock(async {
            let mut conn = self.pool().get().await?;
            conn.begin().await?;
            let result = body(&mut conn).await;
            conn.finish(result).await.map_err(|e| self.located(e))
        })
        .await
    }

    /// Runs `body` on a pooled connection, each statement committing on its own.
    pub(super) async fn on_connection<T>(
        &self,
        body: impl for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        hold_test_clock(async {
            let mut conn = self.pool().get().await?;
            body(&mut conn).await.map_err(|e| self.located(e))
        })
        .await
    }

    /// Names this database in errors built without it (decoding errors).
    pub(super) fn located(&self, e: StoreError) -> StoreError {
        e.at(&db_path(self.db()))
    }
}

/// In tests only: keeps tokio's paused clock from jumping while a database round trip is
/// in flight. A paused clock advances to the next timer whenever the runtime is idle, and
/// waiting on a socket is idle, so a test's "wait up to 60 s" would time out during a
/// 1 ms query. Blocking-pool tasks hold the clock (SQLite's reads already run there), so
/// one waits here until the operation is done. Production code runs the plain future.
#[cfg(test)]
async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
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
async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    operation.await
}

#[cfg(test)]
mod tests;
