//! The PostgreSQL server for integration tests: `DREAMOS_TEST_POSTGRES_URL`, or else a
//! throwaway cluster (`initdb` + `pg_ctl` when installed, run as the `postgres` account
//! under root; the same code the in-crate store tests use), started once per test binary. Without either,
//! a test says in one line that it was skipped and how to enable it, except under
//! `CI=true`, where it fails instead.

#[path = "../../src/store/throwaway_pg.rs"]
mod throwaway_pg;

/// The variable naming the test database.
pub const URL_VAR: &str = "DREAMOS_TEST_POSTGRES_URL";

/// The PostgreSQL URL for the tests, or `None` after saying the test was skipped.
/// Panics under `CI=true`, where these tests must run.
pub fn postgres_url(test: &str) -> Option<String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty()) {
        return Some(url);
    }
    static THROWAWAY: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let why = match THROWAWAY.get_or_init(throwaway_pg::start) {
        Ok(url) => return Some(url.clone()),
        Err(why) => why,
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true requires the PostgreSQL tests: set {URL_VAR} \
         (e.g. postgres://postgres@127.0.0.1:5432/test) ({why})"
    );
    say_skipped(&format!(
        "{test}: skipped, it needs PostgreSQL ({why}): set {URL_VAR}, e.g. \
         postgres://postgres@127.0.0.1:5432/test, or install PostgreSQL (its initdb and \
         pg_ctl)"
    ));
    None
}

/// Prints a test's skip line where the user sees it: straight to stderr, past the test
/// harness's capture, which would hide an `eprintln!` of a passing test.
pub fn say_skipped(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A database of its own on the test server, for commands that take the whole database
/// (`store migrate`, `bench --nodes`); dropped when this goes out of scope.
#[allow(dead_code)]
pub struct ScratchDb {
    admin_url: String,
    name: String,
    /// `postgres:` and the connection string of the new database, for `--store`.
    pub target: String,
}

#[allow(dead_code)]
impl ScratchDb {
    /// Creates (afresh) the database `name` on the server `url` points at.
    pub fn create(url: &str, name: &str) -> ScratchDb {
        admin(url, &format!("DROP DATABASE IF EXISTS {name}"));
        admin(url, &format!("CREATE DATABASE {name}"));
        // The same server and credentials, the new database.
        let mut config: tokio_postgres::Config = url.parse().expect("test URL");
        config.dbname(name);
        // A throwaway cluster listens on a Unix socket in a directory: `host` names it.
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(dir)) => dir.display().to_string(),
            None => "127.0.0.1".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        let mut target = format!("postgres:host={host} port={port} user={user} dbname={name}");
        if let Some(password) = config.get_password() {
            target.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
        }
        ScratchDb {
            admin_url: url.to_string(),
            name: name.to_string(),
            target,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the server `url` points at.
fn admin(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect("admin statement");
    });
}
