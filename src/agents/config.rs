//! `[daemon]` and `[[agents]]` in dreamos.toml: what `dreamos serve` listens on and which
//! agents it runs. Every supervision key of an agent is optional; left out, the script's
//! `agent.define{...}` value applies, then the default (see [`Supervision`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::{Overrides, RestartPolicy, Supervision};

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Address of the control API, `/metrics` and (later) the dashboard. Loopback by
    /// default: the token protects it, the address keeps it off the network. Default
    /// `"127.0.0.1"`.
    pub listen: String,
    /// Port; 0 picks a free one (the CLI finds it in `<data_dir>/daemon.json`). Default 7878.
    pub port: u16,
    /// How long a graceful stop (SIGTERM, Ctrl-C) waits for agents' `on_stop` and the
    /// messages in flight before exiting anyway. Default `"30s"`.
    #[serde(with = "crate::units::serde::duration")]
    pub shutdown_timeout: Duration,
    /// This node's name among the `dreamos serve` nodes sharing one database (what
    /// `agent list` shows in NODE). Empty (the default) means `<host>-<pid>`, so two daemons
    /// on one host differ; set it to keep a stable name across restarts.
    pub node: String,
    /// How long a node holds what it runs (each agent, the Discord bot) without renewing:
    /// it renews every third of this, and when it dies, another node takes over once this
    /// has passed. Default `"10s"`.
    #[serde(with = "crate::units::serde::duration")]
    pub lease: Duration,
    /// Spread agents over the live nodes: a node holding more than one agent above the
    /// least loaded node hands agents to it, one round at a time. Default true.
    pub balance: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: "127.0.0.1".into(),
            port: 7878,
            shutdown_timeout: Duration::from_secs(30),
            node: String::new(),
            lease: Duration::from_secs(10),
            balance: true,
        }
    }
}

impl DaemonConfig {
    /// `node`, or `<host>-<pid>` when it is empty.
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let host = match std::str::from_utf8(&buf[..end]) {
            Ok(h) if ok && !h.is_empty() => h.to_string(),
            _ => "node".to_string(),
        };
        format!("{host}-{}", std::process::id())
    }
}

/// One `[[agents]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name; its inbox is `agent:<name>`.
    pub name: String,
    /// The Lua script, relative to this file's directory.
    pub script: PathBuf,
    /// Start with the daemon. Default true.
    #[serde(default = "yes")]
    pub autostart: bool,
    /// May steer other agents with `agent.start/stop/...` (the Captain). Default false.
    #[serde(default)]
    pub control: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_window: Option<Duration>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub resume_after: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resumes: Option<u32>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub resume_cooldown: Option<Duration>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub stall_timeout: Option<Duration>,
    #[serde(
        default,
        with = "crate::units::serde::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub tick: Option<Duration>,
    /// Memory cap of this agent's Lua state (default: `[sandbox] memory_limit`).
    #[serde(
        default,
        with = "crate::units::serde::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit: Option<u64>,
    /// Grants beyond `[sandbox] allow` (`"fs:data/"`, `"net:api.x.com"`, `"exec"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

fn yes() -> bool {
    true
}

impl AgentConfig {
    /// The configuration's supervision settings (applied after the script's).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            restart: self.restart,
            max_restarts: self.max_restarts,
            restart_window: self.restart_window,
            idle_timeout: self.idle_timeout,
            resume_after: self.resume_after,
            max_resumes: self.max_resumes,
            resume_cooldown: self.resume_cooldown,
            stall_timeout: self.stall_timeout,
            tick: self.tick,
        }
    }

    /// Defaults, then the script's choices, then this entry's.
    pub fn supervision(&self, script: &Overrides) -> Supervision {
        let mut spec = Supervision::default();
        script.apply(&mut spec);
        self.overrides().apply(&mut spec);
        spec
    }
}

/// Checks what serde cannot: unique, well-formed names.
pub fn validate(agents: &[AgentConfig]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for a in agents {
        let ok = !a.name.is_empty()
            && a.name.len() <= 100
            && a.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(format!(
                "[[agents]] name '{}' may use letters, digits, '_', '-' and '.' only (1 to 100)",
                a.name
            ));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(format!("[[agents]] name '{}' appears twice", a.name));
        }
    }
    Ok(())
}
