//! `/logs [agent] [level] [n]`: the newest lines of the daemon's log file (`[log] dir`),
//! filtered by agent and least severe level; without a log file, an agent's own recent
//! `self:log` lines (which carry no level).

use std::str::FromStr;

use serde_json::Value;

use super::builtins::Runtime;
use super::gateway::Invocation;
use super::reply::Reply;
use crate::logging::{LogQuery, LogSource};
use crate::server::control::Request;

const DEFAULT_LINES: i64 = 20;
const MAX_LINES: i64 = 200;

fn line(record: &Value) -> String {
    let field = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or("");
    let who = [field("agent"), field("script")]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(|s| format!(" [{s}]"))
        .unwrap_or_default();
    format!(
        "{} {:<5}{who} {}",
        field("ts"),
        field("level"),
        field("message")
    )
}

pub async fn logs(rt: &Runtime, inv: &Invocation) -> Result<Reply, String> {
    let n = inv.int("n").unwrap_or(DEFAULT_LINES);
    if !(1..=MAX_LINES).contains(&n) {
        return Err(format!(
            "/logs: n must be between 1 and {MAX_LINES}, not {n}"
        ));
    }
    let level = inv
        .str("level")
        .map(|l| {
            tracing::Level::from_str(l)
                .map_err(|_| format!("/logs: level '{l}' is not one of debug, info, warn, error"))
        })
        .transpose()?;
    let agent = inv.str("agent").map(str::to_string);
    let log = &rt.config.log;
    let lines: Vec<String> = if log.dir.as_os_str().is_empty() {
        let Some(name) = agent else {
            return Err("/logs: no log file is kept ([log] dir is empty); name an agent to see its recent lines".into());
        };
        let lines = {
            let (tx, rx) = tokio::sync::oneshot::channel();
            rt.requests
                .send(Request::Logs(name, tx))
                .map_err(|_| "the daemon is shutting down".to_string())?;
            rx.await
                .map_err(|_| "the daemon is shutting down".to_string())?
                .map_err(|r| r.error)?
        };
        lines
    } else {
        let dir = rt.config.resolve(&log.dir);
        let query = LogQuery {
            source: LogSource::Main,
            min_level: level,
            // Read more than asked: the agent filter applies after the search.
            limit: Some(if agent.is_some() { 5000 } else { n as usize }),
            ..LogQuery::default()
        };
        let records = tokio::task::spawn_blocking(move || crate::logging::search(&dir, &query))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("/logs: {e:#}"))?;
        records
            .iter()
            .filter(|r| match &agent {
                Some(a) => {
                    r.get("agent").and_then(Value::as_str) == Some(a.as_str())
                        || r.get("script")
                            .and_then(Value::as_str)
                            .is_some_and(|s| s.contains(a.as_str()))
                }
                None => true,
            })
            .map(line)
            .collect()
    };
    let start = lines.len().saturating_sub(n as usize);
    let shown = &lines[start..];
    if shown.is_empty() {
        return Ok(Reply::text("No matching log lines."));
    }
    Ok(Reply::text(format!("```\n{}\n```", shown.join("\n"))))
}
