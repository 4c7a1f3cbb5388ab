//! Which store the `dreamos` processes of an integration test use. By default each test's
//! project keeps SQLite in its own directory. With `DREAMOS_TEST_BACKEND=postgres` the same
//! tests run on PostgreSQL instead (`DREAMOS_TEST_POSTGRES_URL`), each test directory in a
//! schema of its own, named after the directory, so the behavioural suite runs unchanged
//! against both backends. `.ci/run` runs the store-dependent test files both ways and drops
//! the `it_*` schemas before it starts.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

/// Environment overrides (`DREAMOS_STORE_*`) for a `dreamos` process working in `dir`;
/// empty for SQLite.
pub fn store_env(dir: &Path) -> Vec<(String, String)> {
    if std::env::var("DREAMOS_TEST_BACKEND").as_deref() != Ok("postgres") {
        return Vec::new();
    }
    let url = std::env::var("DREAMOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("DREAMOS_TEST_BACKEND=postgres needs DREAMOS_TEST_POSTGRES_URL");
    // Canonical, so that a relative and an absolute spelling of one directory agree.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut hasher = DefaultHasher::new();
    dir.hash(&mut hasher);
    vec![
        ("DREAMOS_STORE_BACKEND".into(), "postgres".into()),
        ("DREAMOS_DATABASE_URL".into(), url),
        (
            "DREAMOS_STORE_SCHEMA".into(),
            format!("it_{:016x}", hasher.finish()),
        ),
    ]
}

/// Whether this run is the PostgreSQL pass (tests that look into the SQLite file skip
/// those looks).
#[allow(dead_code)]
pub fn postgres() -> bool {
    std::env::var("DREAMOS_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// Opens the store the `dreamos` processes working in `dir` use (SQLite at
/// `data/dreamos.db`, the projects' configured path, or this test's PostgreSQL schema),
/// as another process would: for tests that look at what a daemon stored.
#[allow(dead_code)]
pub async fn open(dir: &Path) -> dreamos::store::SharedStore {
    let env = store_env(dir);
    let target = match env.iter().find(|(k, _)| k == "DREAMOS_STORE_SCHEMA") {
        Some((_, schema)) => dreamos::store::StoreTarget::Postgres {
            url: env
                .iter()
                .find(|(k, _)| k == "DREAMOS_DATABASE_URL")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            schema: Some(schema.clone()),
        },
        None => dreamos::store::StoreTarget::Sqlite(dir.join("data/dreamos.db")),
    };
    target
        .open()
        .await
        .map(|s| s.shared())
        .unwrap_or_else(|e| panic!("open {}: {e}", target.describe()))
}
