//! A daemon for the HTTP and dashboard tests: a project in a temporary directory with two
//! agents whose progress the test controls through bus "gates", and a schedule.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dreamos")
}

pub fn dreamos(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .envs(super::backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .output()
        .expect("run dreamos");
    assert!(
        out.status.success(),
        "dreamos {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const CONFIG: &str = r#"
[runtime]
data_dir = "data"
[store]
path = "data/dreamos.db"
[log]
dir = "logs"
[daemon]
port = 0

[[agents]]
name = "scout"
script = "scout.lua"

[[agents]]
name = "worker"
script = "worker.lua"

[[schedules]]
name = "nightly"
cron = "0 3 * * *"
script = "nightly.lua"
"#;

/// Starts at once the first time; after a restart it waits in `starting` until the test
/// sends `go` on `gate.scout`, so the test can watch the state change.
const SCOUT: &str = r#"
local agent = require("dreamos.agent")
local bus = require("dreamos.bus")
return agent.define {
  on_start = function(self)
    if self.state.started then bus.recv("gate.scout", 60) end
    self.state.started = true
    self:log("scout <b>ready</b>")
  end,
  on_message = function(self, msg) self:log("scout got " .. tostring(msg.payload)) end,
}
"#;

/// Reports 30%, waits for `gate.task`, reports 80%, waits again, finishes.
const WORKER: &str = r#"
local agent = require("dreamos.agent")
local bus = require("dreamos.bus")
return agent.define {
  tasks = { category = "demo" },
  idle_timeout = 0,
  on_message = function(self, msg) self:log("worker got " .. tostring(msg.payload)) end,
  on_task = function(self, task)
    task:progress(30, "waiting for the first gate")
    bus.recv("gate.task", 60)
    task:progress(80, "waiting for the second gate")
    bus.recv("gate.task", 60)
    return { ok = true }
  end,
}
"#;

pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_daemon() -> Daemon {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::write(p.join("dreamos.toml"), CONFIG).expect("config");
    std::fs::write(p.join("scout.lua"), SCOUT).expect("scout");
    std::fs::write(p.join("worker.lua"), WORKER).expect("worker");
    std::fs::write(p.join("nightly.lua"), "return 1\n").expect("nightly");
    let child = serve_command(p)
        .envs(super::backend::store_env(p))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let (addr, token) = wait_ready(&p.join("data"), Duration::from_secs(30), || None);
    Daemon {
        child,
        addr,
        token,
        dir,
    }
}

/// `dreamos serve` in `dir`, with the test's environment kept out of its configuration.
pub fn serve_command(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

/// Waits until the daemon of `data_dir` serves (it writes `daemon.json` once its agents,
/// schedules and control API have started) and returns its address and control token.
/// `exited` is asked on each round and ends the wait early with what it returns, so a
/// daemon that failed at start is reported as such rather than as a timeout.
pub fn wait_ready(
    data_dir: &Path,
    limit: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> (String, String) {
    let started = std::time::Instant::now();
    loop {
        // The file is written in place, so a read can see it half-written: parse or retry.
        let info = std::fs::read_to_string(data_dir.join("daemon.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let token = std::fs::read_to_string(data_dir.join("daemon.token")).ok();
        if let (Some(info), Some(token)) = (info, token) {
            if let Some(addr) = info["addr"].as_str() {
                return (addr.to_string(), token.trim().to_string());
            }
        }
        if let Some(why) = exited() {
            panic!(
                "the daemon in {} exited at start: {why}",
                data_dir.display()
            );
        }
        assert!(
            started.elapsed() < limit,
            "the daemon in {} did not start within {limit:?}",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
