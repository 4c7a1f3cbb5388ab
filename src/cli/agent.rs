//! `dreamos agent list|status|start|stop|restart|reload|message|broadcast|logs`: a client of
//! the running daemon's control API (see `server/`). It finds the daemon through
//! `<data_dir>/daemon.json` and authenticates with `<data_dir>/daemon.token`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::config::Config;
use crate::server::files;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every agent: state, the node it runs on, uptime, restarts, inbox depth, last activity.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One agent's state and its recent transitions.
    Status { name: String },
    /// Start a stopped or failed agent.
    Start { name: String },
    /// Stop an agent (its on_stop runs); returns once it has stopped.
    Stop { name: String },
    /// Restart an agent through on_stop.
    Restart { name: String },
    /// Load the agent's script again; if the new version fails to load, the old keeps running.
    Reload { name: String },
    /// Send a JSON message to the agent's inbox (durable).
    Message {
        name: String,
        /// The payload, as JSON (a bare word is sent as a string).
        json: String,
    },
    /// Send a JSON message to every agent's inbox.
    Broadcast { json: String },
    /// Recent lines the agent logged with self:log.
    Logs {
        name: String,
        /// Keep printing new lines until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
}

pub fn run(config: Arc<Config>, cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    let data_dir = config.resolve(&config.runtime.data_dir);
    let (info, token) = files::find_daemon(&data_dir)?;
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base: format!("http://{}", info.addr),
        token,
        pid: info.pid,
    };
    crate::runtime::block_on(client.execute(cmd))?
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pid: u32,
}

impl Client {
    async fn execute(&self, cmd: AgentCommand) -> anyhow::Result<ExitCode> {
        match cmd {
            AgentCommand::List { json } => {
                let rows = self.call(reqwest::Method::GET, "/api/agents", None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", table(&rows, chrono::Utc::now().timestamp_millis()));
                }
            }
            AgentCommand::Status { name } => {
                let d = self
                    .call(reqwest::Method::GET, &format!("/api/agents/{name}"), None)
                    .await?;
                print!("{}", status_text(&d, chrono::Utc::now().timestamp_millis()));
            }
            AgentCommand::Start { name } => self.act(&name, "start").await?,
            AgentCommand::Stop { name } => self.act(&name, "stop").await?,
            AgentCommand::Restart { name } => self.act(&name, "restart").await?,
            AgentCommand::Reload { name } => self.act(&name, "reload").await?,
            AgentCommand::Message { name, json } => {
                let body = payload(&json);
                let r = self
                    .call(
                        reqwest::Method::POST,
                        &format!("/api/agents/{name}/message"),
                        Some(body),
                    )
                    .await?;
                println!(
                    "sent message {} to {}",
                    r["id"],
                    r["to"].as_str().unwrap_or("")
                );
            }
            AgentCommand::Broadcast { json } => {
                let r = self
                    .call(
                        reqwest::Method::POST,
                        "/api/broadcast",
                        Some(payload(&json)),
                    )
                    .await?;
                let n = r["ids"].as_array().map_or(0, Vec::len);
                println!("broadcast to {n} agent inbox(es)");
            }
            AgentCommand::Logs { name, follow } => {
                let mut seen: Vec<String> = Vec::new();
                loop {
                    let r = self
                        .call(
                            reqwest::Method::GET,
                            &format!("/api/agents/{name}/logs"),
                            None,
                        )
                        .await?;
                    let lines: Vec<String> = r["lines"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    // The ring drops old lines; print what follows the last line we printed.
                    let start = seen
                        .last()
                        .and_then(|last| lines.iter().rposition(|l| l == last))
                        .map_or(0, |i| i + 1);
                    for line in &lines[start..] {
                        println!("{line}");
                    }
                    if !follow {
                        break;
                    }
                    seen = lines;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn act(&self, name: &str, action: &str) -> anyhow::Result<()> {
        let r = self
            .call(
                reqwest::Method::POST,
                &format!("/api/agents/{name}/{action}"),
                None,
            )
            .await?;
        println!("{}", r["message"].as_str().unwrap_or("done"));
        Ok(())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no dreamos daemon is answering at {} (daemon.json names pid {}; it may have been killed — start one with `dreamos serve`)",
                    self.base,
                    self.pid
                )
            } else {
                anyhow::anyhow!("talking to the daemon at {}: {e}", self.base)
            }
        })?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"].as_str().unwrap_or("request refused");
            anyhow::bail!("{message}");
        }
        Ok(value)
    }
}

/// A JSON argument; anything that is not JSON is sent as a string, so
/// `dreamos agent message scout hello` works without quoting.
fn payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// "3m 12s ago" style ages.
fn ago(now: i64, then: Option<i64>) -> String {
    match then {
        Some(t) => short_duration(now.saturating_sub(t)),
        None => "-".into(),
    }
}

fn short_duration(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The `agent list` table.
pub fn table(rows: &Value, now: i64) -> String {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    let mut lines = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "NODE".into(),
        "UPTIME".into(),
        "RESTARTS".into(),
        "INBOX".into(),
        "LAST ACTIVITY".into(),
    ]];
    for r in rows {
        let started = r["started_at"].as_i64();
        lines.push([
            r["name"].as_str().unwrap_or("?").to_string(),
            r["state"].as_str().unwrap_or("?").to_string(),
            match (r["node"].as_str(), r["node_lapsed"].as_bool()) {
                (Some(node), Some(true)) => format!("{node} (lapsed)"),
                (Some(node), _) => node.to_string(),
                (None, _) => "-".into(),
            },
            started.map_or("-".into(), |t| short_duration(now.saturating_sub(t))),
            r["restarts"].as_u64().unwrap_or(0).to_string(),
            r["inbox"].as_u64().unwrap_or(0).to_string(),
            match r["last_activity"].as_i64() {
                Some(t) => format!("{} ago", ago(now, Some(t))),
                None => "-".into(),
            },
        ]);
    }
    if rows.is_empty() {
        return "no agents configured (add [[agents]] to dreamos.toml)\n".into();
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn status_text(d: &Value, now: i64) -> String {
    let mut out = String::new();
    let field = |k: &str| d[k].as_str().unwrap_or("-").to_string();
    out.push_str(&format!("name:          {}\n", field("name")));
    out.push_str(&format!(
        "state:         {} ({})\n",
        field("state"),
        field("reason")
    ));
    out.push_str(&format!(
        "since:         {} ago\n",
        ago(now, d["since"].as_i64())
    ));
    out.push_str(&format!("script:        {}\n", field("script")));
    out.push_str(&format!("restart:       {}\n", field("restart_policy")));
    out.push_str(&format!(
        "restarts:      {}\n",
        d["restarts"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "resumes:       {}\n",
        d["resumes"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "inbox:         {}\n",
        d["inbox"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "handled:       {}\n",
        d["handled"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "errors:        {}\n",
        d["errors"].as_u64().unwrap_or(0)
    ));
    out.push_str(&format!(
        "last activity: {}\n",
        ago(now, d["last_activity"].as_i64())
    ));
    out.push_str("transitions:\n");
    for t in d["transitions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}  {} -> {}  {}\n",
            crate::store::format_millis(t["at"].as_i64().unwrap_or(0)),
            t["from"].as_str().unwrap_or("?"),
            t["to"].as_str().unwrap_or("?"),
            t["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_list_names_the_node_each_agent_runs_on() {
        let rows = json!([
            {"name": "scout", "state": "running", "node": "eu-1", "started_at": 0,
             "restarts": 1, "inbox": 2, "last_activity": 1000},
            {"name": "writer", "state": "running", "node": "eu-2", "node_lapsed": true,
             "restarts": 0, "inbox": 0},
            {"name": "idle", "state": "stopped", "node": null, "restarts": 0, "inbox": 0},
        ]);
        let text = super::table(&rows, 65_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME    STATE    NODE           UPTIME  RESTARTS  INBOX  LAST ACTIVITY"
        );
        assert_eq!(
            lines[1],
            "scout   running  eu-1           1m05s   1         2      1m04s ago"
        );
        assert!(
            lines[2].starts_with("writer  running  eu-2 (lapsed)  -"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("idle    stopped  -              -"),
            "{text}"
        );
    }
}
