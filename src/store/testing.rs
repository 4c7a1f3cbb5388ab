//! Tests of store semantics run once per backend: [`on_each_backend!`] turns each test into
//! a `sqlite` and a `postgres` variant, and the helpers ([`TestDb::open`]) open the
//! variant's backend on a fresh database.
//!
//! PostgreSQL comes from `DREAMOS_TEST_POSTGRES_URL`; without it, from a throwaway cluster
//! (`initdb` + `pg_ctl`, when installed and not running as root, which `initdb` refuses),
//! removed when the test process exits. Without either, the `postgres` variants are
//! skipped with one line saying how to enable them, except under `CI=true`, where they
//! fail instead. Each test works in its own schema, dropped when the test ends, so tests
//! run in parallel and leave nothing behind.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::{
    open_sqlite, AgentStore, BusStore, DiscordOutboxStore, KvStore, LeaseStore, PgOptions, PgStore,
    ScheduleStore, SocialStore, SqliteStore, TaskStore,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The backend the running test variant is for.
    pub(crate) static BACKEND: Backend;
}

/// The backend of the running test (SQLite outside [`on_each_backend!`]).
pub(crate) fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Generates, for each `async fn name() { body }` given (with its attributes, such as
/// `#[tokio::test(start_paused = true)]`), a module `name` with the tests `sqlite` and
/// `postgres` running the same body on each backend.
macro_rules! on_each_backend {
    ($( $(#[$attr:meta])* async fn $name:ident() $body:block )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn sqlite() {
                $crate::store::testing::BACKEND
                    .scope($crate::store::testing::Backend::Sqlite, async $body)
                    .await
            }

            $(#[$attr])*
            async fn postgres() {
                if $crate::store::testing::postgres_url().is_none() {
                    return;
                }
                $crate::store::testing::BACKEND
                    .scope($crate::store::testing::Backend::Postgres, async $body)
                    .await
            }
        }
    )*};
}
pub(crate) use on_each_backend;

/// Either backend, as the traits a test needs.
#[derive(Clone)]
pub(crate) enum TestStore {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl TestStore {
    /// The store as every service takes it; the accessors below are its traits.
    pub(crate) fn shared(&self) -> super::SharedStore {
        match self {
            TestStore::Sqlite(s) => s.clone(),
            TestStore::Postgres(s) => s.clone(),
        }
    }

    pub(crate) fn bus(&self) -> Arc<dyn BusStore> {
        self.shared()
    }

    pub(crate) fn tasks(&self) -> Arc<dyn TaskStore> {
        self.shared()
    }

    pub(crate) fn kv(&self) -> Arc<dyn KvStore> {
        self.shared()
    }

    pub(crate) fn social(&self) -> Arc<dyn SocialStore> {
        self.shared()
    }

    pub(crate) fn agents(&self) -> Arc<dyn AgentStore> {
        self.shared()
    }

    pub(crate) fn discord_outbox(&self) -> Arc<dyn DiscordOutboxStore> {
        self.shared()
    }

    pub(crate) fn schedules(&self) -> Arc<dyn ScheduleStore> {
        self.shared()
    }

    pub(crate) fn leases(&self) -> Arc<dyn LeaseStore> {
        self.shared()
    }

    pub(crate) fn pg(&self) -> Option<Arc<PgStore>> {
        match self {
            TestStore::Postgres(s) => Some(s.clone()),
            TestStore::Sqlite(_) => None,
        }
    }
}

/// A fresh database of the running test's backend: a SQLite file in a temp directory, or
/// a PostgreSQL schema dropped with this value. `path()` is a scratch directory either way.
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    schema: Option<SchemaGuard>,
}

static SCHEMAS: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    /// Opens a fresh database of the running test's backend.
    pub(crate) async fn open() -> (TestDb, TestStore) {
        TestDb::open_on(backend()).await
    }

    pub(crate) async fn open_on(backend: Backend) -> (TestDb, TestStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let schema = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let url = postgres_url().expect("PostgreSQL for a postgres test variant");
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!(
                    "t{}_{}_{nanos}",
                    std::process::id(),
                    SCHEMAS.fetch_add(1, Ordering::Relaxed)
                );
                Some(SchemaGuard { url, name })
            }
        };
        let db = TestDb { dir, schema };
        let store = db.open_again().await;
        (db, store)
    }

    /// Another store on the same database, as a second process would open it. Holds a
    /// paused clock while it connects and migrates, as every store operation does.
    pub(crate) async fn open_again(&self) -> TestStore {
        super::hold_test_clock(self.open_store()).await
    }

    async fn open_store(&self) -> TestStore {
        match &self.schema {
            None => TestStore::Sqlite(
                open_sqlite(&self.dir.path().join("test.db"))
                    .await
                    .expect("open SQLite"),
            ),
            Some(_) => {
                let (url, options) = self.pg_options().expect("a PostgreSQL database");
                TestStore::Postgres(Arc::new(
                    PgStore::open_with(&url, options)
                        .await
                        .expect("open PostgreSQL"),
                ))
            }
        }
    }

    /// The URL and options that open this database, when it is PostgreSQL.
    pub(crate) fn pg_options(&self) -> Option<(String, PgOptions)> {
        self.schema.as_ref().map(|g| {
            let options = PgOptions {
                schema: Some(g.name.clone()),
                ..PgOptions::default()
            };
            (g.url.clone(), options)
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Drops its schema when the test ends (on a thread of its own: drop cannot await).
///
/// The test's runtime is blocked in this drop, so a transaction its store left open (a
/// task that was between two statements) cannot finish and would hold its locks for ever,
/// and the DROP with them. So the DROP waits at most a moment for a lock, and then the
/// backends holding locks in the schema, all this test's, are terminated and it goes again.
struct SchemaGuard {
    url: String,
    name: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute("SET lock_timeout = '1s'")
                    .await
                    .map_err(|e| e.to_string())?;
                let mut tries = 0;
                loop {
                    let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                    let err = match client.batch_execute(&drop).await {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    };
                    let waited =
                        err.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                    tries += 1;
                    if !waited || tries == 10 {
                        return Err(err.to_string());
                    }
                    client
                        .execute(
                            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
                             JOIN pg_class c ON c.oid = l.relation
                             JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = $1 AND l.granted AND l.pid <> pg_backend_pid()",
                            &[&name],
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// The PostgreSQL URL tests use, or `None` (after saying once why) when there is none.
/// Panics under `CI=true` instead of skipping.
pub(crate) fn postgres_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        if let Some(url) = std::env::var("DREAMOS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Some(url);
        }
        match super::throwaway_pg::start() {
            Ok(url) => Some(url),
            Err(why) => {
                // Straight to stderr: the test harness would hide an eprintln! of a
                // passing test, and this line must be seen.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests skipped ({why}): set DREAMOS_TEST_POSTGRES_URL, e.g. \
                     postgres://postgres@127.0.0.1:5432/test, or install PostgreSQL (its \
                     initdb and pg_ctl)"
                );
                None
            }
        }
    });
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true requires the PostgreSQL tests: set DREAMOS_TEST_POSTGRES_URL \
             (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
    }
    url.clone()
}
