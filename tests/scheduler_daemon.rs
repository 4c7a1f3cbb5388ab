//! A running `dreamos serve` and other processes, through the real binary:
//! - schedules added, paused, resumed and removed with `dreamos schedule ...`, or made by a
//!   script's `dreamos.cron` in `dreamos run`, apply without restarting the daemon;
//! - a daemon killed with SIGKILL and started again fires at once, not when the dead
//!   process's lead would have lapsed;
//! - a run in progress when the daemon was killed is marked interrupted at the next start,
//!   and the missed-run policy runs it again.
//!
//! Nothing here waits for time to pass: each step waits (with a generous limit) for what a
//! user would see, such as a run in the history.

#[path = "support/backend.rs"]
mod backend;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dreamos"))
}

fn dreamos(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .output()
        .expect("run dreamos")
}

/// Runs a CLI command that must succeed.
fn ok(dir: &Path, args: &[&str]) {
    let out = dreamos(dir, args);
    assert!(
        out.status.success(),
        "dreamos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `dreamos serve` and waits until it serves (its address file is written after
/// the scheduler has started).
fn serve(dir: &Path) -> Child {
    let _ = std::fs::remove_file(dir.join("data/daemon.json"));
    let child = Command::new(bin())
        .arg("serve")
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    wait_for("the daemon to start", || {
        dir.join("data/daemon.json").exists()
    });
    child
}

fn kill_9(mut child: Child) {
    child.kill().expect("SIGKILL serve");
    // Reaped, as a service manager would: no zombie left holding the pid.
    let _ = child.wait();
}

fn terminate(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// A schedule's runs, oldest first, as `schedule history --json` prints them.
fn history(dir: &Path, name: &str) -> Vec<Value> {
    let out = dreamos(dir, &["schedule", "history", name, "-n", "1000", "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn scheduled_times(dir: &Path, name: &str) -> Vec<i64> {
    history(dir, name)
        .iter()
        .filter_map(|r| r["scheduled"].as_i64())
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tick.lua"), "-- a fire\n").unwrap();
    std::fs::write(
        dir.path().join("dreamos.toml"),
        format!("[daemon]\nport = 0\n\n{config}"),
    )
    .unwrap();
    dir
}

/// Adds `name` firing every second; returns its second fire time once it ran three times.
///
/// The daemon applies what it reads from the store in one go, so a change made before
/// this `add` is in force when the marker first fires. That first fire can share its
/// second with a fire the change was too late for (the daemon looks every 200 ms); from
/// the marker's second fire on, nothing can be.
fn add_marker(dir: &Path, name: &str) -> i64 {
    let every_second = "* * * * * *";
    ok(
        dir,
        &[
            "schedule",
            "add",
            name,
            "--cron",
            every_second,
            "--script",
            "tick.lua",
        ],
    );
    wait_for("the marker's third run", || {
        scheduled_times(dir, name).len() >= 3
    });
    scheduled_times(dir, name)[1]
}

#[test]
fn cli_and_script_changes_reach_a_running_daemon() {
    let dir = project("");
    let dir = dir.path();
    let daemon = serve(dir);

    ok(
        dir,
        &[
            "schedule",
            "add",
            "tick",
            "--cron",
            "* * * * * *",
            "--script",
            "tick.lua",
        ],
    );
    wait_for("tick to fire without a restart", || {
        !history(dir, "tick").is_empty()
    });

    // Paused: once a schedule added after the pause has fired three times, tick has no
    // run from the second of those on.
    ok(dir, &["schedule", "pause", "tick"]);
    let after_pause = add_marker(dir, "marker1");
    let late: Vec<i64> = scheduled_times(dir, "tick")
        .into_iter()
        .filter(|t| *t >= after_pause)
        .collect();
    assert!(late.is_empty(), "tick fired while paused at {late:?}");

    ok(dir, &["schedule", "resume", "tick"]);
    wait_for("tick to fire again after resume", || {
        scheduled_times(dir, "tick")
            .iter()
            .any(|t| *t > after_pause)
    });

    ok(dir, &["schedule", "rm", "tick"]);
    let after_rm = add_marker(dir, "marker2");
    let runs_after = block_on_store(dir, |store| async move {
        let runs = store
            .schedule_runs("tick".into(), 10_000)
            .await
            .expect("runs");
        runs.iter().filter(|r| r.scheduled >= after_rm).count()
    });
    assert_eq!(runs_after, 0, "tick fired after it was removed");

    // A script registering a durable schedule with dreamos.cron, while the daemon runs.
    std::fs::write(
        dir.join("setup.lua"),
        "local cron = require('dreamos.cron')\n\
         assert(cron.schedule('* * * * * *', 'tick.lua', { name = 'fromlua' }))\n",
    )
    .unwrap();
    ok(dir, &["run", "setup.lua"]);
    wait_for("the script's schedule to fire in the daemon", || {
        !history(dir, "fromlua").is_empty()
    });
    terminate(daemon);
}

/// The leadership row: who leads and until when (ms).
fn leader(dir: &Path) -> (String, i64) {
    block_on_store(dir, |store| async move {
        store.leader().await.expect("leader").expect("a leader")
    })
}

/// Runs `f` with the store the daemon in `dir` uses, as another process.
fn block_on_store<T, F, Fut>(dir: &Path, f: F) -> T
where
    F: FnOnce(dreamos::store::SharedStore) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let dir = dir.to_path_buf();
    dreamos::runtime::block_on(async move { f(backend::open(&dir).await).await }).expect("runtime")
}

#[test]
fn a_daemon_killed_with_sigkill_is_taken_over_at_once() {
    let dir =
        project("[[schedules]]\nname = \"tick\"\ncron = \"* * * * * *\"\nscript = \"tick.lua\"\n");
    let dir = dir.path();
    let first = serve(dir);
    wait_for("a first run", || !history(dir, "tick").is_empty());
    kill_9(first);
    let killed_at = chrono::Utc::now().timestamp_millis();
    let (dead, lease_end) = leader(dir);

    let second = serve(dir);
    let mut first_after = None;
    wait_for("a run after the kill", || {
        first_after = history(dir, "tick")
            .into_iter()
            .filter_map(|r| r["started"].as_i64())
            .find(|t| *t > killed_at);
        first_after.is_some()
    });
    let started = first_after.unwrap_or_default();
    assert!(
        started < lease_end,
        "the new daemon fired at {started}, only once the dead leader's lease ended at \
         {lease_end}"
    );
    assert_ne!(leader(dir).0, dead, "the new daemon leads");
    terminate(second);
}

#[test]
fn a_run_interrupted_by_sigkill_is_marked_and_run_again() {
    // Far enough ahead for a slow start; a time already past is refused at load.
    let at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let dir = project(&format!(
        "[[schedules]]\nname = \"slow\"\nat = \"{}\"\nscript = \"slow.lua\"\n\
         missed = \"run_once\"\n",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    let dir = dir.path();
    std::fs::write(dir.join("slow.lua"), "require('dreamos.time').sleep(600)\n").unwrap();
    let first = serve(dir);
    wait_for("the run to start", || {
        history(dir, "slow")
            .iter()
            .any(|r| r["outcome"] == "running")
    });
    kill_9(first);
    // The run the kill interrupted is still recorded as running until a daemon starts.
    assert_eq!(history(dir, "slow")[0]["outcome"], "running");

    std::fs::write(dir.join("slow.lua"), "-- quick this time\n").unwrap();
    let second = serve(dir);
    wait_for("the interrupted fire to run again", || {
        history(dir, "slow").iter().any(|r| r["outcome"] == "ok")
    });
    terminate(second);
    let runs = history(dir, "slow");
    let outcomes: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default(),
                r["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    // A second daemon up within a second of the fire time runs it as on time ("scheduled");
    // a later one runs it as a catch-up. Either way the interrupted fire runs once more.
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                ("scheduled", "interrupted"),
                ("catchup" | "scheduled", "ok")
            ]
        ),
        "{runs:?}"
    );
    assert_eq!(
        runs[0]["scheduled"], runs[1]["scheduled"],
        "the same fire time"
    );
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("ended before the run finished"), "{error}");
}
