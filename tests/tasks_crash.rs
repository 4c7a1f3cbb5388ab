//! Kill -9 a worker while it holds tasks: afterwards every task is exactly where its last
//! committed transition left it, and the tasks whose lease lapsed go back to `ready` and
//! are claimed again by the next worker (with the attempt counted).
//!
//! The worker is a real `dreamos run worker.lua`; it prints a line only after each call
//! returned (committed). The test never sleeps to wait for time: the second worker's
//! `claim{wait=...}` is what waits for the lapsed leases.

#[path = "support/backend.rs"]
mod backend;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("dreamos"));
    cmd.current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

fn task(dir: &Path, args: &[&str]) -> String {
    let out = dreamos(dir).arg("task").args(args).output().expect("run");
    assert!(
        out.status.success(),
        "task {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every task by id, as `task list --json` shows it.
fn tasks(dir: &Path) -> Vec<Value> {
    let mut all: Vec<Value> =
        serde_json::from_str(&task(dir, &["list", "--json"])).expect("json list");
    all.sort_by_key(|t| t["id"].as_i64());
    all
}

const WORKER: &str = r#"
local tasks, time = require("dreamos.tasks"), require("dreamos.time")
local function take(category)
  return assert(tasks.claim({ agent = "crashy", category = category, lease = "5s" }))
end
local a = take("a"); a:complete({ ok = true }); print("done", a.id)
local b = take("b"); b:progress(40, "halfway"); print("progress", b.id)
local c = take("c"); print("claimed", c.id)
local d = take("d"); d:fail("boom"); print("failed", d.id)
print("holding")
while true do
  b:heartbeat()
  c:heartbeat()
  time.sleep(0.5)
end
"#;

const RESTARTED: &str = r#"
local tasks = require("dreamos.tasks")
for _, category in ipairs({ "b", "c" }) do
  local t = assert(tasks.claim({ agent = "second", category = category, wait = "60s" }))
  print(category, t.id, t.attempts)
  t:complete()
end
"#;

#[test]
fn kill_9_leaves_every_task_at_its_last_committed_transition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (title, category) in [("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")] {
        task(d, &["add", title, "--category", category]);
    }
    task(d, &["add", "E after B", "--depends-on", "2"]);
    task(d, &["add", "F untouched", "--category", "z"]);
    std::fs::write(d.join("worker.lua"), WORKER).expect("write worker");
    std::fs::write(d.join("restarted.lua"), RESTARTED).expect("write worker");

    let mut worker = dreamos(d)
        .args(["run", "worker.lua"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start worker");
    let stdout = worker.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "holding") {
        match rx.recv_timeout(TIMEOUT) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the worker did not get to holding; printed {seen:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            "done\t1",
            "progress\t2",
            "claimed\t3",
            "failed\t4",
            "holding"
        ]
    );

    // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
    let killed = unsafe { libc::kill(worker.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill -9 the worker");
    let status = worker.wait().expect("reap");
    assert!(!status.success());

    // Right after the crash (the 5s leases are still running): exactly the committed state.
    let after = tasks(d);
    assert_eq!(after.len(), 6, "no created task is lost");
    let view: Vec<(String, i64, Option<&str>)> = after
        .iter()
        .map(|t| {
            (
                t["status"].as_str().unwrap_or("?").to_string(),
                t["attempts"].as_i64().unwrap_or(-1),
                t["agent"].as_str(),
            )
        })
        .collect();
    let v = |s: &str, n, a| (s.to_string(), n, a);
    assert_eq!(
        view,
        vec![
            v("done", 1, Some("crashy")),
            v("running", 1, Some("crashy")),
            v("claimed", 1, Some("crashy")),
            v("ready", 1, None),
            v("pending", 0, None),
            v("ready", 0, None),
        ]
    );
    assert_eq!(after[0]["result"]["ok"], true);
    assert_eq!(after[1]["progress"], 40.0);
    assert_eq!(after[1]["note"], "halfway");
    assert_eq!(after[3]["error"], "boom");

    // Restart: the next worker gets the two held tasks once their leases lapse.
    let out = dreamos(d)
        .args(["run", "restarted.lua"])
        .output()
        .expect("run the restarted worker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\t2\t2\nc\t3\t2\n");

    let end = tasks(d);
    let statuses: Vec<&str> = end.iter().filter_map(|t| t["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["done", "done", "done", "ready", "ready", "ready"]
    );
    let history = task(d, &["show", "2"]);
    assert!(
        history.contains(
            "running -> ready  by crashy  (the lease of agent 'crashy' lapsed (attempt 1 of 3))"
        ),
        "{history}"
    );
}
