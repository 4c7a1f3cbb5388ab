//! The embedded SQLite backend: one database file in WAL mode.
//!
//! Writes go through **group commit**. One dedicated thread owns the only write connection.
//! Callers hand it boxed jobs over a channel; the thread takes every job that is waiting,
//! runs them all inside ONE transaction (each in its own savepoint, so a failing job undoes
//! only itself), commits, and only then answers each caller. A commit costs one WAL append
//! and one fsync however many jobs it carries, so durability is paid per batch, not per
//! message: while one commit is on its way to disk the next batch queues up behind it.
//!
//! Reads use separate connections (WAL lets readers run beside the writer) on tokio's
//! blocking pool, so no caller ever blocks a runtime thread.
//!
//! Other backends' files sit beside this one: [`bus`], [`kv`] and [`tasks`] implement the store traits;
//! a domain adds its own file and appends its schema to [`MIGRATIONS`].

mod agents;
mod batches;
mod bus;
pub mod discord;
mod kv;
mod leases;
mod schedules;
mod social;
mod tasks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::StoreError;

/// One schema step. Versions are shared with the PostgreSQL backend: version N means the
/// same tables there, written in that dialect.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. To add one, append it with the next version number; never
/// edit a migration that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "bus messages, events and inboxes",
        sql: bus::SCHEMA,
    },
    Migration {
        version: 2,
        name: "key/value state",
        sql: kv::SCHEMA,
    },
    Migration {
        version: 3,
        name: "tasks, dependencies and transitions",
        sql: tasks::SCHEMA,
    },
    Migration {
        version: 4,
        name: "agent transitions and state",
        sql: agents::SCHEMA,
    },
    Migration {
        version: 5,
        name: "schedules and run history",
        sql: schedules::SCHEMA,
    },
    Migration {
        version: 6,
        name: "scheduler leadership",
        sql: schedules::LEADER_SCHEMA,
    },
    Migration {
        version: 7,
        name: "schedule change counter and run owners",
        sql: schedules::CHANGES_SCHEMA,
    },
    Migration {
        version: 9,
        name: "social outbox, metrics, budgets and tokens",
        sql: social::SCHEMA,
    },
    Migration {
        version: 11,
        name: "discord outbox",
        sql: discord::SCHEMA,
    },
    Migration {
        version: 12,
        name: "leases and nodes",
        sql: leases::SCHEMA,
    },
    Migration {
        version: 15,
        name: "discord outbox leases",
        sql: discord::LEASES,
    },
    Migration {
        version: 16,
        name: "what each node runs",
        sql: leases::NODE_UNITS,
    },
];

/// Most jobs one transaction carries; bounds how long one commit holds callers.
const MAX_BATCH: usize = 4096;
/// How long a connection waits for another process holding the write lock (a CLI command
/// writing while the daemon runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;
/// Reads running at once (as many as idle connections kept, so none is opened and closed
/// again under load). More wait for a free slot instead of each opening a connection
/// of its own: ten thousand agents starting together once opened thousands of connections
/// (each with its schema and page cache) on as many blocking threads.
const MAX_CONCURRENT_READS: usize = MAX_IDLE_READERS;

/// Runs inside the writer's transaction (or learns that the transaction could not start)
/// and returns what to do once the commit outcome is known.
type Job = Box<dyn FnOnce(Result<&Transaction<'_>, &StoreError>) -> Finish + Send>;
/// Answers the caller: `None` = committed, `Some(err)` = the commit failed.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// The embedded store. Cheap to share behind an `Arc`; dropping the last one stops the
/// writer thread after it finishes the jobs already handed to it.
pub struct SqliteStore {
    /// Shown in every error, and used to open read connections.
    path: PathBuf,
    /// Jobs for the writer thread. A std channel: the writer blocks on it, callers never do.
    jobs: mpsc::Sender<Job>,
    /// Idle read-only connections, reused so a read does not pay an open.
    readers: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads (see [`MAX_CONCURRENT_READS`]).
    read_slots: tokio::sync::Semaphore,
    /// Lets reads wait for batches that answered before committing.
    batches: Arc<batches::Batches>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Creates parent directories, opens the write connection and migrates, all on the
    /// writer thread, so the caller's runtime thread only awaits.
    pub(crate) async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread_path = path.clone();
        let batches = Arc::new(batches::Batches::default());
        let thread_batches = batches.clone();
        std::thread::Builder::new()
            .name("dreamos-sqlite-writer".into())
            .spawn(move || match open_writer(&thread_path) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    writer_loop(conn, jobs_rx, &thread_path, &thread_batches);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|source| StoreError::Io {
                what: format!("cannot start the database writer for {}", path.display()),
                source,
            })?;
        ready_rx
            .await
            .map_err(|_| StoreError::WriterStopped { path: path.clone() })??;
        Ok(SqliteStore {
            path,
            jobs: jobs_tx,
            readers: Mutex::new(Vec::new()),
            read_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_READS),
            batches,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` in the writer's next group transaction and returns its result once that
    /// transaction is committed. If the job returns an error, its own changes are rolled
    /// back (savepoint) and the rest of the group still commits. Never blocks the caller's
    /// thread.
    pub async fn write<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let rx = self.submit(job)?;
        match super::hold_test_clock(rx).await {
            Ok(result) => result.map_err(|e| e.at(&self.path)),
            Err(_) => Err(self.writer_stopped()),
        }
    }

    /// Hands a job to the writer now and returns the receiver of its answer; the job runs
    /// even if the receiver is dropped (its result is then discarded).
    pub fn submit<R, F>(
        &self,
        job: F,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.submit_with(job, |_| false)
    }

    /// Like [`write`](SqliteStore::write), but answers as soon as the job has run when
    /// `early(&result)` says so, without waiting for the group's commit (fsync). Only for
    /// changes whose loss is harmless: a bus claim that is lost with a failed commit leaves
    /// its messages queued, and they are delivered again (at-least-once either way).
    pub async fn write_early<R, F>(&self, job: F, early: fn(&R) -> bool) -> Result<R, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let rx = self.submit_with(job, early)?;
        match super::hold_test_clock(rx).await {
            Ok(result) => result.map_err(|e| e.at(&self.path)),
            Err(_) => Err(self.writer_stopped()),
        }
    }

    fn submit_with<R, F>(
        &self,
        job: F,
        early: fn(&R) -> bool,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let batches = self.batches.clone();
        let boxed: Job = Box::new(move |txn| {
            let result = match txn {
                Ok(txn) => run_in_savepoint(txn, job, &path),
                Err(e) => Err(StoreError::Commit {
                    path: path.clone(),
                    message: e.to_string(),
                }),
            };
            if result.as_ref().is_ok_and(early) {
                batches.answered_early();
                let _ = tx.send(result);
                return Box::new(|_: Option<&StoreError>| {});
            }
            Box::new(move |commit_error: Option<&StoreError>| {
                let answer = match commit_error {
                    None => result,
                    Some(e) => Err(StoreError::Commit {
                        path,
                        message: e.to_string(),
                    }),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(boxed).map_err(|_| self.writer_stopped())?;
        Ok(rx)
    }

    /// Runs `job` on a read-only connection on the blocking pool. Sees every write that
    /// was committed before it starts, and every write answered before it starts (a claim
    /// answered before its commit is waited for).
    pub async fn read<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.batches.wait_for_early().await;
        // Never closed, so acquiring cannot fail; without a slot, read anyway.
        let _slot = self.read_slots.acquire().await.ok();
        let conn = match self.readers.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(conn) => conn,
            None => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || open_reader(&path))
                    .await
                    .map_err(|e| self.join_error(e))??
            }
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = job(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| self.join_error(e))?;
        if let Ok(mut idle) = self.readers.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result.map_err(|e| e.at(&self.path))
    }

    fn writer_stopped(&self) -> StoreError {
        StoreError::WriterStopped {
            path: self.path.clone(),
        }
    }

    fn join_error(&self, e: tokio::task::JoinError) -> StoreError {
        StoreError::JobPanicked {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// Runs one job inside its own savepoint so that its failure (or panic) undoes only its
/// own changes.
fn run_in_savepoint<R, F>(txn: &Transaction<'_>, job: F, path: &Path) -> Result<R, StoreError>
where
    F: FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
{
    let sql = |txn: &Transaction<'_>, stmt: &str| {
        txn.prepare_cached(stmt)
            .and_then(|mut s| s.execute([]))
            .map_err(StoreError::sql("savepoint"))
    };
    sql(txn, "SAVEPOINT job")?;
    let result = match catch_unwind(AssertUnwindSafe(|| job(txn))) {
        Ok(result) => result,
        Err(panic) => Err(StoreError::JobPanicked {
            path: path.to_path_buf(),
            message: panic_message(&panic),
        }),
    };
    if result.is_err() {
        sql(txn, "ROLLBACK TO job")?;
    }
    sql(txn, "RELEASE job")?;
    result
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The group-commit loop: block for one job, take every other job already waiting, run
/// them in one transaction, commit, answer. Ends when every sender is gone.
fn writer_loop(
    mut conn: Connection,
    jobs: mpsc::Receiver<Job>,
    path: &Path,
    batches: &batches::Batches,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(256);
    let mut finishes: Vec<Finish> = Vec::with_capacity(256);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batches.start();
        match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(txn) => {
                for job in batch.drain(..) {
                    finishes.push(job(Ok(&txn)));
                }
                // Answers go out only after the commit returned: nothing is acknowledged
                // before it is in the WAL on disk.
                let committed = txn.commit();
                batches.settle();
                match committed {
                    Ok(()) => finishes.drain(..).for_each(|finish| finish(None)),
                    Err(source) => {
                        let err = StoreError::Sql {
                            what: "commit",
                            path: path.to_path_buf(),
                            source,
                        };
                        finishes.drain(..).for_each(|finish| finish(Some(&err)));
                    }
                }
            }
            Err(source) => {
                let err = StoreError::Sql {
                    what: "begin transaction",
                    path: path.to_path_buf(),
                    source,
                };
                for job in batch.drain(..) {
                    job(Err(&err))(None);
                }
                batches.settle();
            }
        }
    }
}

/// Turns off SQLite's global memory statistics, once, before SQLite initializes: they
/// put a process-wide mutex around every allocation SQLite makes, which was a tenth of the
/// writer thread's time under load. Nothing here reads those statistics.
fn configure_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config takes (int op, int value) for MEMSTATUS. Called at most
        // once, before this process opens its first connection; if SQLite was already
        // initialized elsewhere it only returns SQLITE_MISUSE and changes nothing.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            );
        }
    });
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    configure_sqlite_once();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    // The database holds messages, tasks and agent state: this user's only. Restricted
    // right after SQLite created it and before WAL mode creates the -wal and -shm files,
    // which SQLite gives the database file's mode.
    if path != Path::new(":memory:") {
        crate::private_fs::restrict_file(path).map_err(|source| StoreError::Restrict {
            path: path.to_path_buf(),
            source,
        })?;
    }
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // WAL: readers never block the writer and a commit is one sequential append.
    // synchronous=FULL: every commit fsyncs the WAL before it returns, so what we
    // acknowledged survives not only kill -9 (NORMAL would already) but also power loss
    // and OS crashes. Group commit makes that one fsync per batch, so it costs latency of
    // a batch rather than throughput.
    // wal_autocheckpoint: a queue rewrites the same few pages (the index tail, the newest
    // rows) over and over; checkpointing every 8000 frames (~32 MiB of WAL) instead of the
    // default 1000 copies each hot page once per checkpoint instead of eight times.
    // journal_size_limit trims the WAL file back after a checkpoint.
    // cache_size 8 MiB: measured faster than larger caches, whose per-transaction
    // bookkeeping grows with the cache while a queue's working set stays small.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8000;
         PRAGMA wal_autocheckpoint = 8000;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn, path)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Applies every migration newer than the database, each in its own immediate
/// transaction (so two processes opening a fresh file at once do not both apply it).
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql_err = |what| {
        move |source| StoreError::Sql {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         );",
    )
    .map_err(sql_err("create schema_version"))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    for migration in MIGRATIONS {
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("begin migration"))?;
        let current: i64 = txn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err("read schema_version"))?;
        if current > known {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: current,
                known,
            });
        }
        // Every migration not yet recorded, not only those above the newest: numbers are
        // shared with PostgreSQL and handed out ahead, so one can land below the newest.
        let applied: bool = txn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = ?1)",
                [migration.version],
                |r| r.get(0),
            )
            .map_err(sql_err("read schema_version"))?;
        if applied {
            continue;
        }
        let failed = |source| StoreError::Migration {
            path: path.to_path_buf(),
            version: migration.version,
            name: migration.name,
            source,
        };
        txn.execute_batch(migration.sql).map_err(failed)?;
        txn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.name, now_millis()],
        )
        .map_err(failed)?;
        txn.commit().map_err(failed)?;
    }
    Ok(())
}

/// Wall-clock milliseconds, only for bookkeeping the caller does not time (migrations).
fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The schema version a database file is at (for `dreamos store status` and tests).
pub async fn schema_version(store: &SqliteStore) -> Result<i64, StoreError> {
    store
        .read(|conn| {
            conn.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sql("read schema_version"))
        })
        .await
}

#[cfg(test)]
mod tests;
