//! A small connection pool and the connection wrapper every PostgreSQL store method uses.
//!
//! Why not a pool crate: what is needed here is a bounded set of connections, each with its
//! own prepared-statement cache, discarded when it broke or was dropped inside a
//! transaction. That is this file; a pool crate would add a runtime abstraction and more
//! dependencies for the same.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::store::StoreError;

/// Statement parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Bounded connections to one database, opened on demand and reused.
pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// The URL with its password masked, for every error.
    db: Arc<str>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    pub(crate) fn new(config: tokio_postgres::Config, db: Arc<str>, max: usize) -> Pool {
        Pool {
            config,
            db,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1)),
        }
    }

    pub(crate) fn db(&self) -> &Arc<str> {
        &self.db
    }

    /// A connection for one operation; waits while every connection is in use.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self.permits.acquire().await.map_err(|_| StoreError::Io {
            what: format!(
                "the connection pool of PostgreSQL database {} closed",
                self.db
            ),
            source: std::io::Error::other("pool closed"),
        })?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// A connection whose I/O the caller drives (a listener reads its notifications).
    pub(crate) async fn connect_raw(
        &self,
    ) -> Result<
        (
            Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(NoTls).await
    }

    /// Opens a new connection for the pool.
    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) =
            self.connect_raw()
                .await
                .map_err(|source| StoreError::Postgres {
                    what: "connect".into(),
                    db: self.db.to_string(),
                    source,
                })?;
        // The connection future does the socket I/O; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
            in_transaction: false,
            db: self.db.clone(),
        })
    }
}

/// A connection borrowed from the pool; goes back when dropped, unless it is broken or was
/// dropped inside a transaction (a cancelled operation), which the server then rolls back.
pub(crate) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.in_transaction || conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push(conn);
        }
    }
}

/// One connection with its prepared statements (a statement is parsed and planned once
/// per connection, then only bound and executed).
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    in_transaction: bool,
    db: Arc<str>,
}

impl Conn {
    fn error(&self, what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        let db = self.db.to_string();
        move |source| StoreError::Postgres {
            what: what.into(),
            db,
            source,
        }
    }

    /// A store error about stored data that does not decode, naming this database.
    pub(crate) fn corrupt(&self, what: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what,
            path: self.db.to_string().into(),
            detail: detail.to_string(),
        }
    }

    async fn statement(&mut self, what: &'static str, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(self.error(what))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(crate) async fn query(
        &mut self,
        what: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(what, sql).await?;
        self.client
            .query(&s, params)
            .await
            .map_err(self.error(what))
    }

    pub(crate) async fn query_opt(
        &mut self,
        what: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(what, sql).await?;
        self.client
            .query_opt(&s, params)
            .await
            .map_err(self.error(what))
    }

    pub(crate) async fn query_one(
        &mut self,
        what: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row, StoreError> {
        let s = self.statement(what, sql).await?;
        self.client
            .query_one(&s, params)
            .await
            .map_err(self.error(what))
    }

    pub(crate) async fn execute(
        &mut self,
        what: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, StoreError> {
        let s = self.statement(what, sql).await?;
        self.client
            .execute(&s, params)
            .await
            .map_err(self.error(what))
    }

    /// The client itself, for what the wrapper does not cover (`COPY` in `store copy`).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Runs statements without parameters (schema, transaction control).
    pub(crate) async fn batch(&mut self, what: &'static str, sql: &str) -> Result<(), StoreError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(self.error(what))
    }

    pub(crate) async fn begin(&mut self) -> Result<(), StoreError> {
        // Marked first: if this future is dropped half-way the connection is discarded.
        self.in_transaction = true;
        self.batch("begin transaction", "BEGIN").await
    }

    /// Commits when `result` is Ok, rolls back otherwise, and returns `result` (or the
    /// commit's failure: then nothing of it was saved).
    pub(crate) async fn finish<T>(
        &mut self,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.batch("commit", "COMMIT").await?;
                self.in_transaction = false;
                Ok(value)
            }
            Err(e) => {
                self.batch("roll back", "ROLLBACK").await?;
                self.in_transaction = false;
                Err(e)
            }
        }
    }
}
