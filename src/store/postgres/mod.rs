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
//! node those names as they arrive, so it wakes when another node sends to it instead of
//! polling. Published (non-durable) messages cross nodes the same way, on a second
//! channel.

mod agents;
mod bus;
mod bus_claim;
mod bus_history;
mod bus_queue;
mod discord;
mod kv;
mod leases;
pub(crate) mod pool;
mod schedules;
pub mod schema;
mod social;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{hold_test_clock, BusSignal, BusSignals, StoreError};
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
    pool: Arc<Pool>,
    notify_channel: String,
    /// The hot task writes, batched ([`tasks::batch`]).
    task_batches: Arc<tasks::TaskBatches>,
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
        let pool = Arc::new(Pool::new(config, Arc::from(label), max));
        let store = PgStore {
            task_batches: tasks::TaskBatches::new(
                pool.clone(),
                notify_channel.replacen("dreamos_bus", "dreamos_tasks", 1),
            ),
            pool,
            notify_channel,
        };
        if let Some(schema) = &options.schema {
            let mut conn = store.pool.get().await?;
            let created = conn
                .batch(
                    "create schema",
                    &format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                )
                .await;
            // Nodes starting together on a new schema race here: IF NOT EXISTS is not
            // atomic against a concurrent CREATE, so the loser fails on pg_namespace's
            // unique index once the winner commits. The schema exists either way, which
            // is all this step needs (unquoted, PostgreSQL folds the name to lower case).
            if let Err(e) = created {
                let exists: bool = conn
                    .query_one(
                        "look for the schema",
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = lower($1))",
                        &[schema],
                    )
                    .await?
                    .get(0);
                if !exists {
                    return Err(e);
                }
            }
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

    /// The `NOTIFY` channel published (non-durable) messages travel on between nodes.
    pub fn publish_channel(&self) -> String {
        format!("{}_pub", self.notify_channel)
    }

    /// A dedicated connection listening on [`notify_channel`](PgStore::notify_channel) and
    /// [`publish_channel`](PgStore::publish_channel): every message enqueued from now on,
    /// by any node, yields its bus channel's name once its transaction committed, and
    /// every message published by any node yields its text. A consumer waits on it (with
    /// a fallback timer, as a notification can be lost with a dropped connection) instead
    /// of polling the table. The stream ends when the connection does.
    pub async fn listen(&self) -> Result<BusSignals, StoreError> {
        let publish = self.publish_channel();
        let (client, rx) = self
            .listen_raw(&[self.notify_channel.clone(), publish.clone()])
            .await?;
        // The stream owns the client: dropping the stream closes the connection, which
        // ends the task reading it.
        Ok(Box::pin(futures_util::stream::unfold(
            (client, rx, publish),
            |(client, mut rx, publish)| async move {
                let (channel, payload) = rx.recv().await?;
                let signal = if channel == publish {
                    BusSignal::Published(payload)
                } else {
                    BusSignal::Enqueued(payload)
                };
                Some((signal, (client, rx, publish)))
            },
        )))
    }

    /// A dedicated connection listening on `channel`: each notification's payload, as it
    /// arrives.
    pub(crate) async fn listen_on(&self, channel: &str) -> Result<BusListener, StoreError> {
        let (client, rx) = self.listen_raw(&[channel.to_string()]).await?;
        Ok(BusListener {
            _client: client,
            rx,
        })
    }

    /// Opens a connection of its own, `LISTEN`s on `channels`, and hands over each
    /// notification as (channel, payload) until the connection ends.
    async fn listen_raw(
        &self,
        channels: &[String],
    ) -> Result<(tokio_postgres::Client, Notifications), StoreError> {
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
                        let item = (n.channel().to_string(), n.payload().to_string());
                        if tx.send(item).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("PostgreSQL LISTEN connection failed: {}", describe(&e));
                        return;
                    }
                }
            }
        });
        let statements: Vec<String> = channels.iter().map(|c| format!("LISTEN \"{c}\"")).collect();
        client
            .batch_execute(&statements.join("; "))
            .await
            .map_err(|source| self.error("LISTEN", source))?;
        Ok((client, rx))
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

/// Notifications as (channel, payload), in arrival order.
type Notifications = mpsc::UnboundedReceiver<(String, String)>;

/// Payloads of one `NOTIFY` channel, as other nodes (and this one) send them; see
/// [`PgStore::listen_on`]. Dropping it closes its connection.
pub struct BusListener {
    _client: tokio_postgres::Client,
    rx: Notifications,
}

impl BusListener {
    /// The next payload; `None` once the connection is gone (the caller falls back to
    /// polling or listens again).
    pub async fn recv(&mut self) -> Option<String> {
        self.rx.recv().await.map(|(_, payload)| payload)
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

#[cfg(test)]
mod tests;
