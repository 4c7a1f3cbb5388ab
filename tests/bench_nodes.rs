//! `dreamos bench bus|tasks --nodes 2` through the real binary: the parent starts a second
//! node process on one PostgreSQL database, both run, and the report has each node and
//! the total. Small runs: this checks that the multi-node benchmark works, not its speed.

#[path = "support/postgres.rs"]
mod postgres;

use std::process::Command;

fn bench(args: &[&str], store: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .current_dir(dir.path())
        .env_remove("DREAMOS_CONFIG")
        .env_remove("DREAMOS_DATABASE_URL")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .arg("bench")
        .args(args)
        .args(["--nodes", "2", "--store", store])
        .output()
        .expect("run dreamos bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bus_and_tasks_benchmarks_run_on_two_nodes() {
    let Some(url) = postgres::postgres_url("bus_and_tasks_benchmarks_run_on_two_nodes") else {
        return;
    };
    let db = postgres::ScratchDb::create(&url, &format!("dreamos_bench_{}", std::process::id()));

    let bus = bench(
        &[
            "bus",
            "--messages",
            "400",
            "--window",
            "16",
            "--publish",
            "0",
        ],
        &db.target,
    );
    assert!(
        bus.contains("2 node processes at once, each: 200 messages"),
        "{bus}"
    );
    for node in ["node 1", "node 2"] {
        let line = bus.lines().find(|l| l.trim_start().starts_with(node));
        assert!(
            line.is_some_and(|l| l.contains("(200 messages")),
            "{node}: {bus}"
        );
    }
    assert!(
        bus.lines()
            .any(|l| l.trim_start().starts_with("total") && l.contains("(400 messages over")),
        "{bus}"
    );

    let tasks = bench(
        &[
            "tasks",
            "--cycles",
            "400",
            "--workers",
            "1",
            "--lanes",
            "4",
            "--backlogs",
            "",
        ],
        &db.target,
    );
    assert!(
        tasks.contains("400 cycles, 2 node(s) x 1 workers x 4 lanes"),
        "{tasks}"
    );
    assert!(tasks.contains("(400 cycles in"), "{tasks}");
}
