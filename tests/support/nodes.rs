//! Several `dreamos serve` nodes on one PostgreSQL database, as real processes: each node
//! has a directory of its own (its `dreamos.toml`, scripts, data directory and logs) and
//! all share one schema, made fresh for the test and dropped at its end.
//!
//! PostgreSQL comes from `DREAMOS_TEST_POSTGRES_URL`; without it, from a throwaway cluster
//! (`initdb` + `pg_ctl`, when installed and not running as root), as for the in-crate
//! store tests. Without either, [`Cluster::new`] says in one line that the test was
//! skipped and how to enable it, and returns `None` — except under `CI=true`, where it
//! fails instead.
//!
//! Include beside `daemon.rs` and `backend.rs` (`#[path = "support/daemon.rs"] mod daemon;`).
//! Unlike the single-daemon tests, a cluster ignores `DREAMOS_TEST_BACKEND`: its nodes are
//! always on PostgreSQL, and always on one schema whatever their directories.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::daemon::{bin, runtime, serve_command, wait_ready};
use super::postgres::{postgres_url, URL_VAR};

/// How long a condition may take before a test gives up: generous, for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `ok` until it holds; fails naming `what` after [`PATIENCE`].
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {PATIENCE:?} waiting for {what}");
}

/// Like [`wait_for`], for a value: polls until `find` returns one.
pub fn wait_some<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_for(what, || {
        found = find();
        found.is_some()
    });
    found.expect("wait_for returned, so found")
}

/// A schema of the test database, dropped (with everything in it) when this is dropped.
struct Schema {
    url: String,
    name: String,
}

static SCHEMAS: AtomicU64 = AtomicU64::new(0);

impl Schema {
    fn fresh(url: &str) -> Schema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Schema {
            url: url.to_string(),
            name: format!(
                "mn_{}_{}_{nanos}",
                std::process::id(),
                SCHEMAS.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let dropped = runtime().block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .await
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// The nodes of one test. Dropping it kills the nodes still running, then drops the schema.
pub struct Cluster {
    // Field order matters for drop: nodes die before their schema goes.
    nodes: Vec<Node>,
    schema: Schema,
    root: tempfile::TempDir,
}

impl Cluster {
    /// A cluster without nodes yet, or `None` when PostgreSQL tests are skipped.
    pub fn new(test: &str) -> Option<Cluster> {
        let url = postgres_url(test)?;
        Some(Cluster {
            nodes: Vec::new(),
            schema: Schema::fresh(&url),
            root: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// Adds node `name` (not started): its directory holds `files` (name, text) and a
    /// `dreamos.toml` of the shared settings (PostgreSQL store, port 0, logs) merged with
    /// `config`, whose keys win. In `config` and the files `{node}` stands for `name`, so one
    /// text serves every node (`[daemon] node = "{node}"`, a script reporting where it
    /// ran). Returns the node's index.
    pub fn add(&mut self, name: &str, config: &str, files: &[(&str, &str)]) -> usize {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("node directory");
        for (file, text) in files {
            std::fs::write(dir.join(file), text.replace("{node}", name)).expect("node file");
        }
        let base = format!(
            r#"
[runtime]
data_dir = "data"
[store]
backend = "postgres"
url_env = "{URL_VAR}"
schema = "{schema}"
[log]
dir = "logs"
[daemon]
port = 0
"#,
            schema = self.schema.name
        );
        let mut merged: toml::Table = base.parse().expect("base config");
        let extra: toml::Table = config
            .replace("{node}", name)
            .parse()
            .unwrap_or_else(|e| panic!("test config of node {name}: {e}"));
        merge(&mut merged, extra);
        std::fs::write(
            dir.join("dreamos.toml"),
            toml::to_string(&merged).expect("config text"),
        )
        .expect("dreamos.toml");
        self.nodes.push(Node {
            name: name.to_string(),
            dir,
            child: None,
            addr: String::new(),
            token: String::new(),
            url: self.schema.url.clone(),
        });
        self.nodes.len() - 1
    }

    /// Starts every node not running, all at once, and waits until each serves.
    pub fn start_all(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| n.child.is_none()) {
            node.spawn();
        }
        for node in &mut self.nodes {
            node.wait_ready();
        }
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The schema the nodes share.
    pub fn schema(&self) -> &str {
        &self.schema.name
    }

    /// What every node wrote so far, for a failing assertion's message.
    pub fn outputs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.name, n.output()))
            .collect()
    }
}

/// `extra`'s keys override `base`'s, table by table.
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// One `dreamos serve` process and its directory.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    child: Option<Child>,
    /// The control API's address and token, once started.
    pub addr: String,
    pub token: String,
    /// The database URL, handed to each process in `URL_VAR` (`url_env` of the config):
    /// it may be a throwaway cluster this test process started.
    url: String,
}

impl Node {
    /// Starts the node and waits until it serves.
    pub fn start(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "node {} is already running",
            self.name
        );
        // A killed node leaves its address file behind; the new one must not be mistaken
        // for it.
        let _ = std::fs::remove_file(self.dir.join("data/daemon.json"));
        // Appended, so a restarted node's output follows what it wrote before.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.out"))
            .expect("serve.out");
        let err = out.try_clone().expect("serve.out");
        let child = serve_command(&self.dir)
            .env(URL_VAR, &self.url)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn dreamos serve");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        if !self.addr.is_empty() && self.dir.join("data/daemon.json").exists() {
            return;
        }
        let dir = self.dir.clone();
        let child = self.child.as_mut().expect("spawned");
        let (addr, token) = wait_ready(&dir.join("data"), PATIENCE, || {
            let status = child.try_wait().ok().flatten()?;
            let out = std::fs::read_to_string(dir.join("serve.out")).unwrap_or_default();
            Some(format!("{status}\n{out}"))
        });
        self.addr = addr;
        self.token = token;
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: the process dies at once, without any cleanup; reaped here.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child process, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait for serve")
    }

    /// What the process wrote to stdout and stderr (all its runs).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.out")).unwrap_or_default()
    }

    /// The node's log files (`[log] dir`), concatenated in name order.
    pub fn log(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("logs"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }

    /// Runs `dreamos ARGS` in the node's directory (so on its configuration).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(&self.dir)
            .env_remove("DREAMOS_CONFIG")
            .env("DREAMOS_LOG_CONSOLE", "off")
            .env(URL_VAR, &self.url)
            .output()
            .expect("run dreamos")
    }

    /// Runs `dreamos ARGS` in the node's directory; it must succeed. Returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "node {}: dreamos {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cli` for a command printing JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.cli(args);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "node {}: dreamos {args:?} printed no JSON ({e}): {text}",
                self.name
            )
        })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
