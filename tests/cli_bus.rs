//! `dreamos bus ...` and `dreamos bench bus` through the real binary, as an operator uses
//! them: each test in its own temporary directory (its own `data/dreamos.db`), with Lua
//! scripts run by `dreamos run` playing the consumer where one is needed.

#[path = "support/backend.rs"]
mod backend;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    cmd.current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

/// Runs `dreamos ARGS` in `dir` and returns its output.
fn run(dir: &Path, args: &[&str]) -> Output {
    dreamos(dir).args(args).output().expect("run dreamos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and insists on success; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "dreamos {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs and insists on failure; returns stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        !out.status.success(),
        "dreamos {args:?} should have failed: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// A Lua consumer: `dreamos run -e CODE`.
fn lua(dir: &Path, code: &str) -> String {
    ok(dir, &["run", "-e", code])
}

/// Starts `dreamos ARGS` with stdout piped, for commands that keep running.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("dreamos"))
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dreamos")
}

/// Lines a child prints, read on a thread so a test can wait for one with a deadline.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no line containing {needle:?}: {e}"),
        }
    }
}

#[test]
fn send_history_json_and_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_eq!(
        ok(d, &["bus", "send", "agent:scout", r#"{"task":"look"}"#]),
        "sent #1 to agent:scout\n"
    );
    ok(d, &["bus", "send", "captain", "42", "--priority", "high"]);
    let json = ok(d, &["bus", "history", "--json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).expect("a JSON array");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["from"], "cli");
    assert_eq!(records[0]["to"], "agent:scout");
    assert_eq!(records[0]["payload"]["task"], "look");
    assert_eq!(records[0]["status"], "queued");
    assert_eq!(records[1]["priority"], "high");
    let scout = ok(d, &["bus", "history", "--json", "--agent", "scout"]);
    let scout: Vec<serde_json::Value> = serde_json::from_str(&scout).expect("json");
    assert_eq!(scout.len(), 1);

    assert_eq!(
        ok(d, &["bus", "export", "--out", "out/h.json"]),
        "wrote 2 records to out/h.json\n"
    );
    let text = std::fs::read_to_string(d.join("out/h.json")).expect("export file");
    let exported: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
    assert_eq!(exported.len(), 2);
    for key in [
        "id",
        "from",
        "to",
        "channel",
        "payload",
        "priority",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "acked_at",
        "error",
    ] {
        assert!(exported[0].get(key).is_some(), "record lacks {key}: {text}");
    }
    assert_eq!(
        text.lines().count(),
        4,
        "one record per line between the brackets: {text}"
    );
    assert_eq!(
        ok(d, &["bus", "export"]),
        "wrote 2 records to data/message_history.json\n"
    );
    assert!(d.join("data/message_history.json").exists());
}

#[test]
fn send_wait_reports_what_the_consumer_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The sender waits in one process; a Lua consumer in another acks.
    let mut sender = spawn(
        d,
        &["bus", "send", "agent:w", "1", "--wait", "--timeout", "20s"],
    );
    let lines = lines_of(&mut sender);
    wait_for_line(&lines, "sent #1 to agent:w");
    lua(
        d,
        r#"local m = assert(require("dreamos.bus").recv("agent:w", 10)); m:ack()"#,
    );
    assert_eq!(wait_for_line(&lines, "acked"), "acked");
    assert!(sender.wait().expect("sender exits").success());

    // Dead: the consumer fails the only attempt; --wait exits non-zero and says so.
    let mut sender = spawn(
        d,
        &[
            "bus",
            "send",
            "agent:w",
            "2",
            "--wait",
            "--timeout",
            "20s",
            "--max-attempts",
            "1",
        ],
    );
    let lines = lines_of(&mut sender);
    wait_for_line(&lines, "sent #2");
    lua(
        d,
        r#"local m = assert(require("dreamos.bus").recv("agent:w", 10)); m:nack("no good")"#,
    );
    assert_eq!(wait_for_line(&lines, "dead"), "dead");
    let out = sender.wait_with_output().expect("sender exits");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("message was not handled: dead (see `dreamos bus dlq list`)"),
        "{}",
        stderr(&out)
    );

    let err = fails(
        d,
        &[
            "bus",
            "send",
            "agent:w",
            "3",
            "--wait",
            "--timeout",
            "100ms",
        ],
    );
    assert!(
        err.contains("no confirmation within 100ms: the message is stored and still pending"),
        "{err}"
    );
}

#[test]
fn tail_shows_recent_messages_and_follows_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (to, payload) in [("captain", "1"), ("agent:a", "2"), ("captain", "3")] {
        ok(d, &["bus", "send", to, payload]);
    }
    let recent = ok(d, &["bus", "tail", "--limit", "2"]);
    let lines: Vec<&str> = recent.lines().collect();
    assert_eq!(lines.len(), 2, "{recent}");
    assert!(
        lines[0].starts_with("#2 ") && lines[0].ends_with("cli -> agent:a [queued, 0 attempts] 2"),
        "{recent}"
    );
    assert!(lines[1].starts_with("#3 "), "{recent}");
    let captain = ok(d, &["bus", "tail", "--channel", "captain", "--json"]);
    let ids: Vec<i64> = captain
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON record per line");
            v["id"].as_i64().unwrap_or(-1)
        })
        .collect();
    assert_eq!(ids, [1, 3]);

    let mut follower = spawn(d, &["bus", "tail", "--follow", "--channel", "captain"]);
    let lines = lines_of(&mut follower);
    wait_for_line(&lines, "#3 ");
    ok(d, &["bus", "send", "captain", r#""fresh""#]);
    let fresh = wait_for_line(&lines, "fresh");
    assert!(fresh.starts_with("#4 "), "{fresh}");
    follower.kill().expect("stop tail --follow");
    let _ = follower.wait();
}

#[test]
fn dead_letters_list_retry_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let kill_one = r#"local m = assert(require("dreamos.bus").recv("captain", 10)); m:nack("handler exploded")"#;
    assert_eq!(
        ok(d, &["bus", "dlq", "list"]),
        "the dead-letter queue is empty\n"
    );
    ok(
        d,
        &["bus", "send", "captain", r#""x""#, "--max-attempts", "1"],
    );
    lua(d, kill_one);
    let list = ok(d, &["bus", "dlq", "list"]);
    assert!(
        list.contains("[dead, 1 attempt]") && list.contains("error: handler exploded"),
        "{list}"
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&ok(d, &["bus", "dlq", "list", "--json"])).expect("json");
    assert_eq!(json[0]["error"], "handler exploded");

    assert_eq!(ok(d, &["bus", "dlq", "retry", "1"]), "requeued #1\n");
    let err = fails(d, &["bus", "dlq", "retry", "1"]);
    assert!(
        err.contains("message 1 is not in the dead-letter queue (it is queued)"),
        "{err}"
    );
    // Requeued with fresh attempts: it dies again, then --all and purge.
    lua(d, kill_one);
    assert_eq!(
        ok(d, &["bus", "dlq", "retry", "--all"]),
        "requeued 1 dead letters\n"
    );
    lua(d, kill_one);
    assert_eq!(ok(d, &["bus", "dlq", "purge"]), "purged 1 dead letters\n");
    assert_eq!(
        ok(d, &["bus", "dlq", "list"]),
        "the dead-letter queue is empty\n"
    );
    let err = fails(d, &["bus", "dlq", "retry", "99"]);
    assert!(err.contains("message 99 does not exist"), "{err}");
}

#[test]
fn stats_count_queued_in_flight_and_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for payload in ["1", "2", "3"] {
        ok(d, &["bus", "send", "jobs.email", payload]);
    }
    ok(d, &["bus", "send", "captain", "4"]);
    lua(
        d,
        r#"local m = assert(require("dreamos.bus").recv("captain", 10)); m:ack()"#,
    );
    let stats = ok(d, &["bus", "stats"]);
    assert!(
        stats.contains("jobs.email") && stats.contains("3"),
        "{stats}"
    );
    assert!(
        stats.contains("total 4 messages: 3 queued, 0 in flight, 1 acked, 0 dead, 0 expired"),
        "{stats}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["bus", "stats", "--json"])).expect("json");
    assert_eq!(json["queued"], 3);
    assert_eq!(json["acked"], 1);
    assert_eq!(json["channels"][0]["channel"], "jobs.email");
}

#[test]
fn a_recv_loop_acks_by_asking_for_more_and_run_waits_for_those_acks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Each recv acks the previous message, pipelined; `dreamos run` exits only once those
    // acks are on disk. The last message is acked when the script ends normally (its
    // coroutine returned: the loop handled it), so nothing is left in flight.
    let out = lua(
        d,
        r#"local bus = require("dreamos.bus")
           for i = 1, 50 do bus.send("jobs.loop", i) end
           local sum = 0
           for _ = 1, 50 do sum = sum + bus.recv("jobs.loop", 5).payload end
           print(sum)"#,
    );
    assert_eq!(out, "1275\n");
    let stats = ok(d, &["bus", "stats"]);
    assert!(
        stats.contains("total 50 messages: 0 queued, 0 in flight, 50 acked"),
        "{stats}"
    );
}

#[test]
fn bad_input_is_refused_clearly_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let err = fails(d, &["bus", "send", "captain", "{oops"]);
    assert!(
        err.starts_with("error: PAYLOAD_JSON is not valid JSON: {oops (quote it for the shell"),
        "{err}"
    );
    let err = fails(d, &["bus", "send", "agent:", "{}"]);
    assert!(
        err.starts_with("error: invalid channel 'agent:': it has an empty part"),
        "{err}"
    );
    let err = fails(d, &["bus", "send", "agent:my bot", "{}"]);
    assert!(err.contains("' ' is not allowed"), "{err}");
    let err = fails(d, &["bus", "send", "captain", "1", "--priority", "urgent"]);
    assert!(err.contains("unknown priority 'urgent'"), "{err}");
    let err = fails(d, &["bus", "history", "--since", "yesterday"]);
    assert!(err.contains("--since 'yesterday'"), "{err}");
    assert_eq!(ok(d, &["bus", "history"]), "no messages match\n");
}

#[test]
fn bench_bus_reports_rates_and_latencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = ok(
        d,
        &[
            "bench",
            "bus",
            "--messages",
            "300",
            "--window",
            "16",
            "--consumers",
            "8",
            "--publish",
            "2000",
            "--store",
            "bench.db",
        ],
    );
    assert!(
        out.contains("between two Lua scripts: 300 messages"),
        "{out}"
    );
    assert!(
        out.contains("full speed") && out.contains("(300 messages, "),
        "{out}"
    );
    assert!(out.contains("p50") && out.contains("p99"), "{out}");
    assert!(out.contains("(2000 delivered)"), "{out}");
    // The benchmark's messages are history in the store it was given.
    assert!(d.join("bench.db").exists());
}
