//! `dreamos store migrate|status` through the real binary: on the configured SQLite store,
//! on PostgreSQL (`DREAMOS_TEST_POSTGRES_URL` or a throwaway cluster; in a database of its
//! own, dropped afterwards), and the errors a wrong `[store]` gives.

#[path = "support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    cmd.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env_remove("DREAMOS_DATABASE_URL")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .args(args)
        .output()
        .expect("run dreamos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn migrate_then_status_on_the_configured_sqlite_store() {
    let dir = tempfile::tempdir().expect("dir");
    let first = run(dir.path(), &["store", "migrate"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let text = stdout(&first);
    assert!(text.contains("applied 1: bus messages"), "{text}");
    assert!(dir.path().join("data/dreamos.db").is_file());

    let again = run(dir.path(), &["store", "migrate"]);
    assert!(
        stdout(&again).contains("already up to date"),
        "{}",
        stdout(&again)
    );

    let status = run(dir.path(), &["store", "status"]);
    let text = stdout(&status);
    assert!(text.contains("backend            sqlite"), "{text}");
    assert!(text.contains("bus_messages       0"), "{text}");
}

#[test]
fn a_wrong_store_section_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("dreamos.toml"),
        "[store]\nbackend = \"postgres\"\nurl = \"postgres://app:s3cret@db/swarm\"\n",
    )
    .expect("write");
    let out = run(dir.path(), &["store", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("dreamos.toml:3: store.url: contains a password"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    std::fs::write(
        dir.path().join("dreamos.toml"),
        "[store]\nbackend = \"postgres\"\n",
    )
    .expect("write");
    let out = run(dir.path(), &["store", "status"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("DREAMOS_DATABASE_URL"), "{err}");
}

#[test]
fn migrate_and_status_on_postgres() {
    let Some(url) = postgres::postgres_url("migrate_and_status_on_postgres") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = postgres::ScratchDb::create(&url, &format!("dreamos_cli_{}", std::process::id()));
    let target = db.target.clone();
    let migrated = run(dir.path(), &["store", "migrate", "--store", &target]);
    let status = run(dir.path(), &["store", "status", "--store", &target]);
    drop(db);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stdout(&migrated).contains("applied 3: tasks"),
        "{}",
        stdout(&migrated)
    );
    let text = stdout(&status);
    assert!(text.contains("backend            postgres"), "{text}");
    let last = dreamos::store::postgres::schema::MIGRATIONS
        .last()
        .map_or(0, |m| m.version);
    assert!(
        text.contains(&format!("schema version     {last}")),
        "{text}"
    );
}
