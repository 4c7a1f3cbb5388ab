//! The swarm example end to end: `dreamos serve --config examples/swarm/dreamos.toml` runs
//! the Captain and three workers; the plan goes to the Captain; every task ends done, each
//! by a worker of its category, and the Captain reports the plan complete.

#[path = "support/backend.rs"]
mod backend;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dreamos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .args(args)
        .args(["--config", "examples/swarm/dreamos.toml"])
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .env("DREAMOS_DAEMON_PORT", "0")
        .output()
        .expect("run dreamos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path.file_name().expect("name");
            std::fs::copy(&path, to.join(name)).expect("copy");
        }
    }
}

#[test]
fn the_captain_takes_three_workers_through_a_plan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    copy(
        &root.join("examples/swarm"),
        &dir.path().join("examples/swarm"),
    );
    copy(
        &root.join("scripts/agents"),
        &dir.path().join("scripts/agents"),
    );
    let mut serve = Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .args(["serve", "--config", "examples/swarm/dreamos.toml"])
        .current_dir(dir.path())
        .envs(backend::store_env(dir.path()))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .env("DREAMOS_DAEMON_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let info = dir.path().join("examples/swarm/data/daemon.json");
    let wait = |what: &str, ok: &mut dyn FnMut() -> bool| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}");
    };
    wait("the daemon", &mut || info.exists());
    // The daemon announces itself before its agents have finished starting.
    wait("every agent running", &mut || {
        let list = stdout(&dreamos(dir.path(), &["agent", "list"]));
        ["captain", "researcher", "builder", "writer"]
            .iter()
            .all(|name| {
                list.lines()
                    .any(|l| l.starts_with(name) && l.contains("running"))
            })
    });
    let plan = std::fs::read_to_string(root.join("examples/swarm/plan.json")).expect("plan");
    let sent = dreamos(dir.path(), &["agent", "message", "captain", &plan]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    wait("the plan to complete", &mut || {
        stdout(&dreamos(dir.path(), &["agent", "logs", "captain"]))
            .contains("plan complete: 5/5 done, 0 failed")
    });
    let tasks = stdout(&dreamos(dir.path(), &["task", "list"]));
    for (title, worker) in [
        ("Survey the sources", "researcher"),
        ("Build a prototype", "builder"),
        ("Write the report", "writer"),
    ] {
        assert!(
            tasks
                .lines()
                .any(|l| l.contains(title) && l.contains("done") && l.contains(worker)),
            "{tasks}"
        );
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let status = serve.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}
