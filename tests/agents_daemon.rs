//! `dreamos serve` driven through the real binary: a daemon on a free port in a temporary
//! directory, controlled with `dreamos agent ...` as an operator would.

#[path = "support/backend.rs"]
mod backend;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dreamos")
}

fn dreamos(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .output()
        .expect("run dreamos")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running daemon; killed if a test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let _ = std::fs::remove_file(dir.join("data/daemon.json"));
        let child = Command::new(bin())
            .arg("serve")
            .current_dir(dir)
            .envs(backend::store_env(dir))
            .env_remove("DREAMOS_CONFIG")
            .env("DREAMOS_LOG_CONSOLE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let d = Daemon {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        wait_until("daemon.json", || dir.join("data/daemon.json").exists());
        d
    }

    fn agent(&self, args: &[&str]) -> String {
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        let out = dreamos(&self.dir, &all);
        assert!(
            out.status.success(),
            "agent {args:?} failed: {}",
            text(&out)
        );
        text(&out)
    }

    /// `agent list` once `agent` shows as running: a daemon announces itself before its
    /// agents have finished starting, so a list taken at once may say "starting".
    fn list_with_running(&self, agent: &str) -> String {
        let mut list = String::new();
        wait_until(&format!("{agent} running"), || {
            list = self.agent(&["list"]);
            list.lines()
                .any(|l| l.starts_with(agent) && l.contains("running"))
        });
        list
    }

    fn status(&self, name: &str) -> String {
        self.agent(&["status", name])
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.take().expect("running");
        let pid = child.id() as i32;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let out = child.wait_with_output().expect("wait");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

const CONFIG: &str = r#"
[runtime]
data_dir = "data"
[store]
path = "data/dreamos.db"
[bus]
visibility_timeout = "2s"
backoff_base = "100ms"
[daemon]
port = 0
"#;

const COUNTER: &str = r#"
local agent = require("dreamos.agent")
local time = require("dreamos.time")
return agent.define {
  on_message = function(self, msg)
    if msg.payload == "crash" then error("asked to crash") end
    if msg.payload == "spin" then while true do end end
    if msg.payload == "slow" then time.sleep(0.2) end
    self.state.n = (self.state.n or 0) + 1
    self:log("message " .. self.state.n)
  end,
  on_stop = function(self, reason) self.state.stopped = reason end,
}
"#;

fn project(agents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("dreamos.toml"),
        format!("{CONFIG}\n{agents}"),
    )
    .expect("config");
    std::fs::write(dir.path().join("counter.lua"), COUNTER).expect("script");
    dir
}

/// `self.state` of an agent as stored.
fn stored_state(dir: &Path, agent: &str) -> serde_json::Value {
    let dir = dir.to_path_buf();
    let agent = agent.to_string();
    dreamos::runtime::block_on(async move {
        let store = backend::open(&dir).await;
        store
            .load_agent_state(agent)
            .await
            .expect("load")
            .unwrap_or_default()
    })
    .expect("runtime")
}

#[test]
fn no_daemon_is_a_clear_message() {
    let dir = project("");
    let out = dreamos(dir.path(), &["agent", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no dreamos daemon is running for data directory"),
        "{}",
        text(&out)
    );
}

/// A running agent and one that waits for an operator to start it.
const COUNTER_AND_SPARE: &str = r#"
[[agents]]
name = "counter"
script = "counter.lua"
[[agents]]
name = "spare"
script = "counter.lua"
autostart = false
"#;

#[test]
fn serve_lists_controls_and_stops_gracefully() {
    let dir = project(COUNTER_AND_SPARE);
    let mut d = Daemon::start(dir.path());
    let list = d.list_with_running("counter");
    assert!(list.starts_with("NAME"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("spare") && l.contains("stopped")),
        "{list}"
    );

    // The token is private to this user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/daemon.token"))
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second daemon on the same data directory refuses.
    let second = dreamos(dir.path(), &["serve"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second).contains("another dreamos serve"),
        "{}",
        text(&second)
    );
    assert!(
        text(&second).contains("is already running"),
        "{}",
        text(&second)
    );

    d.agent(&["message", "counter", "hello"]);
    wait_until("the message handled", || {
        d.agent(&["logs", "counter"]).contains("message 1")
    });
    assert!(d.agent(&["start", "spare"]).contains("spare: starting"));
    let out = dreamos(dir.path(), &["agent", "start", "counter"]);
    assert!(
        text(&out).contains("agent 'counter' is already running"),
        "{}",
        text(&out)
    );
    assert!(d.agent(&["stop", "spare"]).contains("spare: stopped"));
    let out = dreamos(dir.path(), &["agent", "status", "nobody"]);
    assert!(
        text(&out).contains("no agent named 'nobody'"),
        "{}",
        text(&out)
    );

    // Metrics in Prometheus text.
    let metrics = http_get(dir.path(), "/metrics");
    assert!(
        metrics.contains("dreamos_agents{state=\"running\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dreamos_agent_handled_total{agent=\"counter\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE dreamos_bus_messages gauge"),
        "{metrics}"
    );

    let (status, stderr) = d.terminate();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM, stopping agents"), "{stderr}");
    let state = stored_state(dir.path(), "counter");
    assert_eq!(state["n"], 1);
    assert_eq!(state["stopped"], "daemon stopping (SIGTERM)");
    let out = dreamos(dir.path(), &["agent", "list"]);
    assert!(
        text(&out).contains("no dreamos daemon is running"),
        "{}",
        text(&out)
    );
}

#[test]
fn crashed_and_stalled_agents_are_restarted() {
    let dir = project(
        r#"
[[agents]]
name = "crasher"
script = "counter.lua"
[[agents]]
name = "spinner"
script = "counter.lua"
stall_timeout = "1s"
"#,
    );
    let d = Daemon::start(dir.path());
    d.agent(&["message", "crasher", "crash"]);
    d.agent(&["message", "spinner", "spin"]);
    // The poison message is redelivered (and crashes again) until it is dead, so look for
    // the restart in the transitions rather than a steady state.
    wait_until("a crash and a restart", || {
        let s = d.status("crasher");
        s.contains("running -> crashed  on_message failed: ")
            && s.contains("asked to crash")
            && s.contains("backoff -> starting")
    });
    wait_until("a stall and a restart", || {
        let s = d.status("spinner");
        s.contains("running -> crashed  stalled: on_message ran past stall_timeout (1s)")
            && s.contains("backoff -> starting")
    });
}

#[test]
fn reload_keeps_the_old_version_when_the_new_one_fails() {
    let dir = project(
        r#"
[[agents]]
name = "counter"
script = "counter.lua"
"#,
    );
    let d = Daemon::start(dir.path());
    d.list_with_running("counter");
    std::fs::write(dir.path().join("counter.lua"), "return {").expect("break it");
    let out = dreamos(dir.path(), &["agent", "reload", "counter"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("the new version does not load, still running the old one"),
        "{}",
        text(&out)
    );
    // A restart still runs the last good version, not the broken file.
    d.agent(&["restart", "counter"]);
    d.agent(&["message", "counter", "x"]);
    wait_until("old version answers", || {
        d.agent(&["logs", "counter"]).contains("message 1")
    });
    let v2 = COUNTER.replace("\"message \"", "\"v2 message \"");
    std::fs::write(dir.path().join("counter.lua"), v2).expect("fix it");
    assert!(d
        .agent(&["reload", "counter"])
        .contains("counter: reloaded"));
    d.agent(&["message", "counter", "y"]);
    wait_until("new version answers", || {
        d.agent(&["logs", "counter"]).contains("v2 message 2")
    });
}

#[test]
fn sigterm_mid_stream_loses_no_message() {
    let dir = project(
        r#"
[[agents]]
name = "counter"
script = "counter.lua"
"#,
    );
    let mut d = Daemon::start(dir.path());
    for _ in 0..20 {
        d.agent(&["message", "counter", "slow"]);
    }
    // Stop once the agent is working through the stream (each "slow" takes 200 ms, so
    // most of the twenty are still queued or prefetched).
    wait_until("the agent handles the first message", || {
        stored_state(dir.path(), "counter")["n"].as_u64() >= Some(1)
    });
    let (status, stderr) = d.terminate();
    assert!(status.success(), "{stderr}");
    let handled = stored_state(dir.path(), "counter")["n"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        handled < 20,
        "the test should stop the daemon mid-stream ({handled})"
    );
    let d = Daemon::start(dir.path());
    wait_until("every message handled after the restart", || {
        stored_state(dir.path(), "counter")["n"].as_u64() == Some(20)
    });
    drop(d);
}

/// A plain HTTP/1.1 GET against the daemon.
fn http_get(dir: &Path, path: &str) -> String {
    use std::io::{Read, Write};
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("data/daemon.json")).expect("info"))
            .expect("json");
    let addr = info["addr"].as_str().expect("addr");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn repl_attach_runs_inside_the_daemon() {
    use std::io::Write;
    let dir = project(
        r#"
[[agents]]
name = "counter"
script = "counter.lua"
"#,
    );
    let d = Daemon::start(dir.path());
    d.list_with_running("counter");
    let mut child = Command::new(bin())
        .args(["repl", "--attach"])
        .current_dir(dir.path())
        .envs(backend::store_env(dir.path()))
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("repl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"print('from the daemon')\nagent.status('counter').state\n#agent.list()\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "from the daemon\n\"running\"\n1\n");
}

#[test]
fn bench_agents_reports_its_numbers() {
    let dir = project("");
    let out = dreamos(
        dir.path(),
        &["bench", "agents", "--agents", "5", "--messages", "5"],
    );
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "agents:            5",
        "start all:",
        "per agent",
        "round trip:        5 requests",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// Messages acknowledged so far, as stored.
fn acked(dir: &Path) -> u64 {
    let dir = dir.to_path_buf();
    dreamos::runtime::block_on(async move {
        let store = backend::open(&dir).await;
        let bus = dreamos::bus::Bus::new(
            store as std::sync::Arc<dyn dreamos::store::BusStore>,
            dreamos::bus::BusConfig::default(),
        )
        .expect("bus");
        bus.stats().await.expect("stats").acked
    })
    .expect("runtime")
}

/// Messages the agent fetched ahead but never handled go back to the queue when the daemon
/// stops, so the next start handles them at once — not after the visibility timeout
/// (an hour here).
#[test]
fn sigterm_returns_prefetched_messages_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("dreamos.toml"),
        CONFIG.replace("visibility_timeout = \"2s\"", "visibility_timeout = \"1h\"")
            + "\n[[agents]]\nname = \"quick\"\nscript = \"quick.lua\"\n",
    )
    .expect("config");
    // Plain messages are handled at once (no state to save), so the agent's bus consumer
    // keeps up and fetches ahead; "hold" keeps the handler busy while the daemon stops.
    std::fs::write(
        dir.path().join("quick.lua"),
        r#"
local time = require("dreamos.time")
return require("dreamos.agent").define {
  on_message = function(self, msg)
    if msg.payload == "hold" then
      self:log("holding")
      time.sleep(2)
    end
  end,
}
"#,
    )
    .expect("script");
    std::fs::write(
        dir.path().join("fill.lua"),
        r#"
local bus = require("dreamos.bus")
for i = 1, 61 do bus.send("agent:quick", i == 31 and "hold" or "x") end
"#,
    )
    .expect("fill script");
    let out = dreamos(dir.path(), &["run", "fill.lua"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut d = Daemon::start(dir.path());
    wait_until("the agent holds a message", || {
        d.agent(&["logs", "quick"]).contains("holding")
    });
    let (status, stderr) = d.terminate();
    assert!(status.success(), "{stderr}");
    assert!(acked(dir.path()) < 61, "stopped mid-stream");
    let d = Daemon::start(dir.path());
    wait_until("every message handled after the restart", || {
        acked(dir.path()) == 61
    });
    drop(d);
}

#[test]
fn a_lone_node_holds_every_agent_lists_itself_and_releases_on_stop() {
    let dir = project(COUNTER_AND_SPARE);
    let config = std::fs::read_to_string(dir.path().join("dreamos.toml")).expect("config");
    let config = config.replace("port = 0", "port = 0\nnode = \"solo\"\nlease = \"3s\"");
    std::fs::write(dir.path().join("dreamos.toml"), config).expect("config");
    let mut d = Daemon::start(dir.path());
    let list = d.list_with_running("counter");
    assert!(list.lines().next().unwrap_or("").contains("NODE"), "{list}");
    for (agent, state) in [("counter", "running"), ("spare", "stopped")] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(agent) && l.contains(state) && l.contains("solo")),
            "{list}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&d.agent(&["list", "--json"])).expect("json");
    assert!(
        json.as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["node"] == "solo")),
        "{json}"
    );
    let leases = || {
        let dir = dir.path().to_path_buf();
        dreamos::runtime::block_on(async move {
            let store = backend::open(&dir).await;
            let leases = store.leases().await.expect("leases");
            let nodes = store.nodes().await.expect("nodes");
            (leases, nodes)
        })
        .expect("runtime")
    };
    let (held, nodes) = leases();
    let names: Vec<&str> = held.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["agent:counter", "agent:spare"]);
    assert!(held.iter().all(|l| l.node == "solo"));
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node, "solo");

    let (status, stderr) = d.terminate();
    assert!(status.success(), "exit {status:?}: {stderr}");
    let (held, nodes) = leases();
    assert!(held.is_empty() && nodes.is_empty(), "{held:?} {nodes:?}");
}
