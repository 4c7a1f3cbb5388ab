//! `dreamos store migrate|status` through the real binary: on the configured SQLite store,
//! on PostgreSQL when `DREAMOS_TEST_POSTGRES_URL` is set (in a database of its own, dropped
//! afterwards), and the errors a wrong `[store]` gives.

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
    let Some(url) = std::env::var("DREAMOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true requires the PostgreSQL tests: set DREAMOS_TEST_POSTGRES_URL"
        );
        eprintln!("PostgreSQL test skipped: set DREAMOS_TEST_POSTGRES_URL to run it");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("dreamos_cli_{}", std::process::id());
    let admin = |sql: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client.batch_execute(sql).await.expect("admin statement");
        });
    };
    admin(&format!("DROP DATABASE IF EXISTS {name}"));
    admin(&format!("CREATE DATABASE {name}"));
    // The same server and credentials, the new database.
    let mut config: tokio_postgres::Config = url.parse().expect("test URL");
    config.dbname(&name);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_string();
    let mut target = format!("postgres:host={host} port={port} user={user} dbname={name}");
    if let Some(password) = config.get_password() {
        target.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
    }
    let migrated = run(dir.path(), &["store", "migrate", "--store", &target]);
    let status = run(dir.path(), &["store", "status", "--store", &target]);
    admin(&format!("DROP DATABASE IF EXISTS {name}"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stdout(&migrated).contains("applied 3: tasks"),
        "{}",
        stdout(&migrated)
    );
    let text = stdout(&status);
    assert!(text.contains("backend            postgres"), "{text}");
    assert!(text.contains("schema version     6"), "{text}");
}
