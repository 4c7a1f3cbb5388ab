//! `dreamos task ...` driven through the real binary the way an operator uses it, each test
//! in its own temporary directory (so its own `data/dreamos.db`). `task watch` runs both
//! piped (one line per event) and in a pseudo-terminal (the live view with progress bars).
//! Nothing here sleeps to wait: watchers are read until the line they must print arrives,
//! with a generous bound for a loaded machine.

#[path = "support/backend.rs"]
mod backend;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use rexpect::session::{spawn_with_options, Options};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    cmd.current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

/// Runs `dreamos task ARGS...` and returns its output, whatever the exit status.
fn task(dir: &Path, args: &[&str]) -> Output {
    dreamos(dir)
        .arg("task")
        .args(args)
        .output()
        .expect("run dreamos")
}

/// Runs a task command that must succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = task(dir, args);
    assert!(
        out.status.success(),
        "dreamos task {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a task command that must fail; returns its stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = task(dir, args);
    assert!(!out.status.success(), "dreamos task {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let text = ok(dir, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn status_of(dir: &Path, id: i64) -> String {
    let shown = json(dir, &["show", &id.to_string(), "--json"]);
    shown["task"]["status"].as_str().unwrap_or("?").to_string()
}

#[test]
fn add_list_show_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_eq!(
        ok(d, &["add", "Fetch sources", "--priority", "high"]),
        "added task 1 (ready)\n"
    );
    let added = json(
        d,
        &[
            "add",
            "Build",
            "--depends-on",
            "1",
            "--tag",
            "ci",
            "--payload",
            r#"{"target":"x86"}"#,
            "--json",
        ],
    );
    assert_eq!(added["id"], 2);
    let listed = ok(d, &["list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("ID"), "{listed}");
    assert!(
        lines[1].contains("high")
            && lines[1].contains("ready")
            && lines[1].contains("Fetch sources")
    );
    assert!(lines[2].contains("pending") && lines[2].contains("Build"));

    let shown = json(d, &["show", "2", "--json"]);
    assert_eq!(shown["task"]["tags"], serde_json::json!(["ci"]));
    assert_eq!(shown["task"]["payload"]["target"], "x86");
    assert_eq!(shown["task"]["depends_on"], serde_json::json!([1]));
    assert_eq!(shown["history"][0]["new"], "pending");
    let text = ok(d, &["show", "2"]);
    assert!(text.contains("needs      #1 (ready)"), "{text}");

    let pending = json(d, &["list", "--status", "pending", "--json"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    let err = refused(d, &["list", "--status", "doen"]);
    assert!(
        err.contains("unknown status 'doen' (use one of pending, ready, claimed"),
        "{err}"
    );
    let err = refused(d, &["add", "x", "--priority", "urgent"]);
    assert!(err.contains("unknown priority 'urgent'"), "{err}");
    let err = refused(d, &["add", "x", "--depends-on", "99"]);
    assert!(
        err.contains("'x' depends on task 99, which does not exist"),
        "{err}"
    );
    let err = refused(d, &["show", "42"]);
    assert!(err.contains("no task 42"), "{err}");
}

#[test]
fn claim_progress_done_by_the_holder_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(d, &["add", "Write report"]);
    ok(d, &["add", "Review", "--depends-on", "1"]);
    let claimed = json(d, &["claim", "--agent", "scout", "--json"]);
    assert_eq!(
        (claimed["id"].as_i64(), claimed["attempts"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(refused(d, &["claim", "--agent", "other"]).contains("no ready task matched"));

    let err = refused(d, &["done", "1", "--agent", "other"]);
    assert!(
        err.contains(
            "task 1 is held by agent 'scout', not 'other' (claim a task before completing it)"
        ),
        "{err}"
    );
    let err = refused(d, &["progress", "1", "150", "--agent", "scout"]);
    assert!(
        err.contains("progress must be between 0 and 100, got 150"),
        "{err}"
    );
    assert_eq!(status_of(d, 1), "claimed");

    assert_eq!(
        ok(
            d,
            &["progress", "1", "40", "--note", "outline", "--agent", "scout"]
        ),
        "task 1: 40%\n"
    );
    let summary = json(d, &["list", "--by", "agent", "--json"]);
    assert_eq!(summary[0]["agent"], "scout");
    assert_eq!(summary[0]["counts"]["running"], 1);
    let table = ok(d, &["list", "--by", "agent"]);
    assert!(
        table.contains("RUNNING") && table.contains("scout"),
        "{table}"
    );

    ok(
        d,
        &[
            "done",
            "1",
            "--agent",
            "scout",
            "--result",
            r#"{"pages":3}"#,
        ],
    );
    assert_eq!(status_of(d, 1), "done");
    assert_eq!(status_of(d, 2), "ready");
    let shown = ok(d, &["show", "1"]);
    assert!(
        shown.contains("claimed -> running 40%  by scout  (outline)"),
        "{shown}"
    );
    assert!(shown.contains(r#"result     {"pages":3}"#), "{shown}");
}

#[test]
fn fail_retry_cancel_and_blocked_dependents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(d, &["add", "Flaky", "--max-attempts", "2"]);
    ok(d, &["add", "After flaky", "--depends-on", "1"]);
    ok(d, &["claim"]);
    assert_eq!(ok(d, &["fail", "1", "503"]), "task 1: ready\n");
    ok(d, &["claim"]);
    assert_eq!(
        ok(d, &["fail", "1", "503 again", "--no-retry"]),
        "task 1: failed\n"
    );
    assert_eq!(status_of(d, 2), "blocked");
    let shown = json(d, &["show", "2", "--json"]);
    assert_eq!(
        shown["task"]["error"],
        "blocked: task 1 (Flaky) failed: 503 again"
    );

    ok(d, &["add", "Obsolete"]);
    ok(d, &["cancel", "3", "--reason", "plan changed"]);
    assert_eq!(status_of(d, 3), "cancelled");
    let err = refused(d, &["cancel", "3"]);
    assert!(err.contains("task 3 is already cancelled"), "{err}");
}

const PLAN: &str = r#"
[defaults]
category = "release"

[[task]]
id = "fetch"
title = "Fetch"
priority = "high"

[[task]]
id = "build"
title = "Build"
depends_on = ["fetch"]

[[task]]
id = "docs"
title = "Docs"
depends_on = ["fetch"]

[[task]]
id = "ship"
title = "Ship"
depends_on = ["build", "docs"]
"#;

#[test]
fn import_a_plan_and_draw_its_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("plan.toml"), PLAN).expect("write plan");
    let ids = json(d, &["import", "plan.toml", "--json"]);
    let keys: Vec<&str> = ids
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(keys, ["fetch", "build", "docs", "ship"]);
    assert_eq!(
        ok(d, &["graph"]),
        "#1 fetch  Fetch  [ready]\n\
         ├── #2 build  Build  [pending]\n\
         │   └── #4 ship  Ship  [pending]\n\
         └── #3 docs  Docs  [pending]\n\
         \x20   └── #4 ship Ship (see above)\n"
    );
    let dot = ok(d, &["graph", "4", "--dot"]);
    assert!(dot.starts_with("digraph tasks {"), "{dot}");
    assert!(
        dot.contains("t1 -> t2;") && dot.contains("t3 -> t4;"),
        "{dot}"
    );

    std::fs::write(
        d.join("cycle.toml"),
        "[[task]]\nid = \"a\"\ntitle = \"A\"\ndepends_on = [\"b\"]\n\
         [[task]]\nid = \"b\"\ntitle = \"B\"\ndepends_on = [\"a\"]\n",
    )
    .expect("write plan");
    let err = refused(d, &["import", "cycle.toml"]);
    assert!(
        err.contains("cycle.toml: nothing was imported: dependency cycle: a -> b -> a"),
        "{err}"
    );
    let all = json(d, &["list", "--json"]);
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(4),
        "the cyclic plan added nothing"
    );
}

/// Reads lines from a child's stdout on a thread, so the test can wait with a bound.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns every line read until then.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(TIMEOUT) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?} in time; saw:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn watch_prints_each_transition_when_piped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(d, &["add", "Index the site"]);
    let mut watcher = std::process::Command::new(assert_cmd::cargo::cargo_bin("dreamos"))
        .current_dir(d)
        .envs(backend::store_env(d))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .args(["task", "watch", "--until-done"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let rx = lines_of(&mut watcher);
    wait_for(&rx, "tasks: ready 1");
    ok(d, &["claim", "--agent", "w"]);
    wait_for(&rx, "ready -> claimed  by w");
    ok(
        d,
        &["progress", "1", "60", "--agent", "w", "--note", "half"],
    );
    wait_for(&rx, "claimed -> running 60%  by w  (half)");
    ok(d, &["done", "1", "--agent", "w"]);
    let rest = wait_for(&rx, "running -> done  by w");
    assert!(rest
        .iter()
        .all(|l| l.starts_with("#1 Index the site: ") || l.starts_with("tasks: ")));
    // --until-done: nothing left to do, so the watch ends by itself.
    let status = watcher.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}

#[test]
fn watch_draws_live_progress_bars_in_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(d, &["add", "Render the video"]);
    ok(d, &["add", "Upload", "--depends-on", "1"]);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("dreamos"));
    cmd.current_dir(d)
        .envs(backend::store_env(d))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .env("TERM", "xterm")
        .args(["task", "watch", "--until-done"]);
    let options = Options {
        timeout_ms: Some(TIMEOUT.as_millis() as u64),
        strip_ansi_escape_codes: true,
    };
    let mut s = spawn_with_options(cmd, options).expect("spawn watch in a pty");
    s.exp_string("tasks: pending 1, ready 1").expect("counts");
    ok(d, &["claim", "--agent", "renderer"]);
    s.exp_string("#1 Render the video")
        .expect("a bar for the claimed task");
    ok(
        d,
        &[
            "progress", "1", "40", "--agent", "renderer", "--note", "frames",
        ],
    );
    s.exp_regex(r"\] +40% renderer: frames")
        .expect("the bar at 40%");
    s.exp_string("running 1").expect("counts follow");
    ok(d, &["progress", "1", "90", "--agent", "renderer"]);
    s.exp_regex(r"\] +90% renderer").expect("the bar at 90%");
    ok(d, &["done", "1", "--agent", "renderer"]);
    s.exp_string("running -> done  by renderer")
        .expect("the finished task's line");
    s.exp_string("pending -> ready")
        .expect("its dependent released");
    ok(d, &["claim", "--agent", "uploader"]);
    s.exp_string("#2 Upload").expect("a bar for the dependent");
    ok(d, &["done", "2", "--agent", "uploader"]);
    s.exp_string("tasks: done 2").expect("final counts");
    s.exp_eof().expect("watch ends once nothing is left to do");
}
