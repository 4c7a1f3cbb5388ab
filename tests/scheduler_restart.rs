//! Restart through the real binary: `dreamos serve` fires a schedule every 2 s, is stopped
//! across three due runs, starts again, and the run history shows each missed-run policy's
//! outcome: `skip` none of the three (and a log line saying so), `run_once` one catch-up,
//! `run_all` all three. The restart is timed halfway between two fire times, so the
//! newest missed run is a second old at start: missed, not merely late.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dreamos"))
}

fn serve(dir: &Path) -> Child {
    Command::new(bin())
        .arg("serve")
        .current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve")
}

fn terminate(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for serve");
    assert!(status.success(), "serve exited with {status}");
}

/// The schedule's runs as (kind, scheduled ms).
fn history(dir: &Path) -> Vec<(String, i64)> {
    let out = Command::new(bin())
        .args(["schedule", "history", "tick", "-n", "100", "--json"])
        .current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .output()
        .expect("run history");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["scheduled"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs scheduled while the daemon was down, and the daemon's log text.
fn restart_across_three_due_runs(policy: &str) -> (Vec<(String, i64)>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tick.lua"), "-- a fire\n").unwrap();
    std::fs::write(
        dir.path().join("dreamos.toml"),
        format!(
            "[daemon]\nport = 0\n\n[[schedules]]\nname = \"tick\"\nevery = \"2s\"\n\
             script = \"tick.lua\"\nmissed = \"{policy}\"\n"
        ),
    )
    .unwrap();
    let first = serve(dir.path());
    wait_for("a first run", || !history(dir.path()).is_empty());
    terminate(first);
    let last_before = history(dir.path()).iter().map(|r| r.1).max().unwrap_or(0);
    // Down until halfway between the third and fourth fire times after the last run.
    let restart_at = last_before + 7_000;
    std::thread::sleep(Duration::from_millis((restart_at - now_ms()).max(0) as u64));
    let second = serve(dir.path());
    wait_for("the first run after the restart", || {
        history(dir.path())
            .iter()
            .any(|r| r.1 >= last_before + 8_000)
    });
    std::thread::sleep(Duration::from_millis(300));
    terminate(second);
    let missed: Vec<(String, i64)> = history(dir.path())
        .into_iter()
        .filter(|r| r.1 > last_before && r.1 < last_before + 7_000)
        .map(|(kind, at)| (kind, at - last_before))
        .collect();
    let mut log = String::new();
    for entry in std::fs::read_dir(dir.path().join("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    (missed, log)
}

#[test]
fn missed_runs_after_a_restart_follow_each_policy() {
    let policies = ["skip", "run_once", "run_all"];
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = policies
            .iter()
            .map(|p| s.spawn(move || restart_across_three_due_runs(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("policy thread"))
            .collect()
    });
    let (skip, skip_log) = &outcomes[0];
    assert!(skip.is_empty(), "skip runs none of the missed: {skip:?}");
    assert!(
        skip_log.contains("3 missed runs skipped (missed = skip)"),
        "one log line says how many: {skip_log}"
    );
    let (once, _) = &outcomes[1];
    assert_eq!(
        once,
        &[("catchup".to_string(), 6_000)],
        "one catch-up, the latest"
    );
    let (all, _) = &outcomes[2];
    let expected: Vec<(String, i64)> = [2_000, 4_000, 6_000]
        .into_iter()
        .map(|t| ("catchup".to_string(), t))
        .collect();
    assert_eq!(all, &expected, "every missed run, oldest first");
}
