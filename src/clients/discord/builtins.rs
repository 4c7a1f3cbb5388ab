//! The built-in commands, each reading live state from the runtime: agent actions and
//! logs through the control loop (the same path as the control API, so operator actions
//! never race), tasks, bus and schedules through their handles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::gateway::Invocation;
use super::reply::Reply;
use crate::bus::{Bus, SendOptions, BROADCAST};
use crate::config::Config;
use crate::server::control::{Action, AgentRow, Refused, Request};
use crate::store::Millis;
use crate::tasks::{ListFilter, TaskSpec, Tasks};

/// Everything the commands read or act on.
#[derive(Clone)]
pub struct Runtime {
    pub config: Arc<Config>,
    /// The daemon's control loop: agent list, status, actions, logs.
    pub requests: mpsc::UnboundedSender<Request>,
    pub bus: Bus,
    pub tasks: Tasks,
    pub scheduler: crate::scheduler::Scheduler,
    pub started: Instant,
}

/// Who the bus sees as the sender of operator messages from Discord.
pub const SENDER: &str = "discord";

/// Commands that may take longer than Discord's 3 seconds: deferred before they run.
pub fn slow(inv: &Invocation) -> bool {
    matches!(inv.name.as_str(), "captain" | "run" | "agent" | "logs")
        || (inv.name == "schedule" && inv.subcommand.as_deref() == Some("run"))
}

async fn ask<T>(
    rt: &Runtime,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    rt.requests
        .send(make(tx))
        .map_err(|_| "the daemon is shutting down".to_string())?;
    rx.await
        .map_err(|_| "the daemon is shutting down".to_string())
}

fn refused(r: Refused) -> String {
    r.error
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// `1h 02m`, `3m 07s`, `12s`.
pub fn human(ms: Millis) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Runs a built-in command. `Err` is a refusal or failure to tell the user (never a panic).
pub async fn run(rt: &Runtime, inv: &Invocation) -> Result<Reply, String> {
    let required = |key: &str| {
        inv.str(key)
            .map(str::to_string)
            .ok_or_else(|| format!("/{}: the option '{key}' is required", inv.name))
    };
    match (inv.name.as_str(), inv.subcommand.as_deref()) {
        ("agents", _) => agents(rt).await,
        ("agent", Some("status")) => agent_status(rt, &required("name")?).await,
        ("agent", Some(action)) => {
            let action: Action = action.parse()?;
            let name = required("name")?;
            let done = ask(rt, |reply| Request::Act {
                name,
                action,
                reply,
            })
            .await?;
            done.map(Reply::text).map_err(refused)
        }
        ("send", _) => send(rt, &required("name")?, &required("message")?).await,
        ("broadcast", _) => broadcast(rt, &required("message")?).await,
        ("captain", _) => captain(rt, &required("message")?).await,
        ("tasks", _) => tasks(rt, inv.str("status")).await,
        ("task", Some("add")) => task_add(rt, inv).await,
        ("task", Some("show")) => {
            let id = inv
                .int("id")
                .ok_or("/task show: the option 'id' is required")?;
            task_show(rt, id).await
        }
        ("logs", _) => super::logs::logs(rt, inv).await,
        ("status", _) => status(rt).await,
        ("schedule", Some("list")) => schedules(rt),
        ("schedule", Some("run")) => {
            let name = required("name")?;
            rt.scheduler.run_now(&name).map_err(|e| e.to_string())?;
            Ok(Reply::text(format!(
                "schedule '{name}': started (see /schedule list for its outcome)"
            )))
        }
        ("run", _) => {
            super::run::run(rt, &required("script")?, inv.str("args").unwrap_or("")).await
        }
        (name, sub) => Err(format!(
            "unknown command /{name}{}",
            sub.map(|s| format!(" {s}")).unwrap_or_default()
        )),
    }
}

async fn agent_rows(rt: &Runtime) -> Result<Vec<AgentRow>, String> {
    ask(rt, Request::List).await
}

fn uptime(row: &AgentRow, now: Millis) -> String {
    row.status
        .started_at
        .map(|t| human(now - t))
        .unwrap_or_else(|| "-".into())
}

async fn agents(rt: &Runtime) -> Result<Reply, String> {
    let rows = agent_rows(rt).await?;
    if rows.is_empty() {
        return Ok(Reply::text(
            "No agents are configured ([[agents]] in dreamos.toml).",
        ));
    }
    let now = now_ms();
    let mut text = String::from("```\nNAME             STATE      UPTIME     RESTARTS  INBOX\n");
    for row in &rows {
        text.push_str(&format!(
            "{:<16} {:<10} {:<10} {:>8} {:>6}\n",
            row.status.name,
            row.status.state.to_string(),
            uptime(row, now),
            row.status.restarts,
            row.inbox
        ));
    }
    text.push_str("```");
    Ok(Reply::text(text))
}

async fn agent_status(rt: &Runtime, name: &str) -> Result<Reply, String> {
    let name = name.to_string();
    let detail = ask(rt, |tx| Request::Status(name, tx))
        .await?
        .map_err(refused)?;
    let s = &detail.row.status;
    let mut text = format!(
        "**{}**: {} ({}) since {}\nuptime {} · restarts {} · handled {} · errors {} · inbox {}\nscript {}",
        s.name,
        s.state,
        s.reason,
        crate::store::format_millis(s.since),
        uptime(&detail.row, now_ms()),
        s.restarts,
        s.handled,
        s.errors,
        detail.row.inbox,
        detail.script
    );
    for t in detail.transitions.iter().rev().take(5) {
        text.push_str(&format!(
            "\n- {}",
            serde_json::to_string(t).unwrap_or_default()
        ));
    }
    Ok(Reply::text(text))
}

/// A message as typed: JSON when it looks like JSON (and then it must parse), else text.
pub fn parse_message(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(text).map_err(|e| {
            format!("the message looks like JSON but does not parse: {e} (send plain text without a leading {{ or [)")
        })
    } else {
        Ok(Value::from(text))
    }
}

async fn send(rt: &Runtime, name: &str, message: &str) -> Result<Reply, String> {
    let payload = parse_message(message)?;
    let rows = agent_rows(rt).await?;
    if !rows.iter().any(|r| r.status.name == name) {
        let names: Vec<String> = rows.iter().map(|r| r.status.name.clone()).collect();
        let hint = crate::config::did_you_mean(name, &names)
            .map(|b| format!(" (did you mean '{b}'?)"))
            .unwrap_or_default();
        return Err(format!("no agent named '{name}'{hint}"));
    }
    let receipt = rt
        .bus
        .send(
            SENDER,
            &format!("agent:{name}"),
            &payload,
            SendOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(Reply::text(format!(
        "sent to {name} (message {})",
        receipt.id()
    )))
}

async fn broadcast(rt: &Runtime, message: &str) -> Result<Reply, String> {
    let payload = parse_message(message)?;
    rt.bus
        .send(SENDER, BROADCAST, &payload, SendOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Reply::text("broadcast sent to every agent's inbox"))
}

async fn captain(rt: &Runtime, message: &str) -> Result<Reply, String> {
    let d = &rt.config.discord;
    let (captain, timeout) = match d {
        Some(d) => (d.captain.clone(), d.captain_timeout),
        None => ("captain".to_string(), Duration::from_secs(30)),
    };
    let payload = parse_message(message)?;
    let answer = rt
        .bus
        .request(
            SENDER,
            &format!("agent:{captain}"),
            &payload,
            timeout,
            SendOptions::default(),
        )
        .await
        .map_err(|e| format!("the Captain ({captain}) did not answer: {e}"))?;
    Ok(Reply::text(match answer.payload {
        Value::String(s) => s,
        other => format!(
            "```json\n{}\n```",
            serde_json::to_string_pretty(&other).unwrap_or_default()
        ),
    }))
}

async fn tasks(rt: &Runtime, status: Option<&str>) -> Result<Reply, String> {
    let filter = ListFilter {
        status: status.map(str::parse).transpose()?,
        limit: 50,
        ..ListFilter::default()
    };
    let list = rt.tasks.list(filter).await.map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Ok(Reply::text("No tasks."));
    }
    let mut text = String::from("```\n  ID  STATUS     PRIO      AGENT          TITLE\n");
    for t in &list {
        text.push_str(&format!(
            "{:>4}  {:<10} {:<9} {:<14} {}\n",
            t.id,
            t.status.to_string(),
            t.priority.to_string(),
            t.agent.as_deref().or(t.assignee.as_deref()).unwrap_or("-"),
            t.title
        ));
    }
    text.push_str("```");
    Ok(Reply::text(text))
}

async fn task_add(rt: &Runtime, inv: &Invocation) -> Result<Reply, String> {
    let title = inv
        .str("title")
        .ok_or("/task add: the option 'title' is required")?;
    let spec = TaskSpec {
        title: title.to_string(),
        priority: match inv.str("priority") {
            Some(p) => p.parse().map_err(|e: String| format!("priority: {e}"))?,
            None => Default::default(),
        },
        assignee: inv.str("assignee").map(str::to_string),
        ..TaskSpec::default()
    };
    let id = rt.tasks.add(spec).await.map_err(|e| e.to_string())?;
    Ok(Reply::text(format!("task {id} added: {title}")))
}

async fn task_show(rt: &Runtime, id: i64) -> Result<Reply, String> {
    let task = rt
        .tasks
        .get(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no task with id {id}"))?;
    let mut text = format!(
        "**#{} {}**\nstatus {} · priority {} · attempts {}/{} · progress {:.0}%",
        task.id,
        task.title,
        task.status,
        task.priority,
        task.attempts,
        task.max_attempts,
        task.progress
    );
    for (label, value) in [
        ("assignee", task.assignee.clone()),
        ("agent", task.agent.clone()),
        ("error", task.error.clone()),
        ("note", task.note.clone()),
        ("result", task.result.as_ref().map(Value::to_string)),
    ] {
        if let Some(v) = value {
            text.push_str(&format!("\n{label}: {v}"));
        }
    }
    Ok(Reply::text(text))
}

async fn status(rt: &Runtime) -> Result<Reply, String> {
    let rows = agent_rows(rt).await?;
    let running = rows
        .iter()
        .filter(|r| r.status.state.to_string() == "running")
        .count();
    let counts = rt.tasks.counts().await.map_err(|e| e.to_string())?;
    let tasks: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let stats = rt.bus.stats().await.map_err(|e| e.to_string())?;
    let schedules = rt.scheduler.list();
    let embed = json!({
        "title": "Dream.OS status",
        "color": 0x2ecc71,
        "fields": [
            {"name": "Agents", "value": format!("{running} running of {}", rows.len()), "inline": true},
            {"name": "Tasks", "value": if tasks.is_empty() { "none".into() } else { tasks.join(", ") }, "inline": true},
            {"name": "Bus", "value": format!("{} queued, {} in flight, {} dead", stats.queued, stats.in_flight, stats.dead), "inline": true},
            {"name": "Schedules", "value": format!("{} ({} paused)", schedules.len(), schedules.iter().filter(|s| s.paused).count()), "inline": true},
            {"name": "Uptime", "value": human(rt.started.elapsed().as_millis() as Millis), "inline": true},
        ]
    });
    Ok(Reply::embed(embed))
}

fn schedules(rt: &Runtime) -> Result<Reply, String> {
    let list = rt.scheduler.list();
    if list.is_empty() {
        return Ok(Reply::text("No schedules."));
    }
    let mut text = String::from("```\n");
    for s in &list {
        text.push_str(&format!(
            "{:<20} {:<16} next {} last {}{}\n",
            s.name,
            s.expr,
            s.next.first().map(String::as_str).unwrap_or("-"),
            s.last_outcome.as_deref().unwrap_or("-"),
            if s.paused { " (paused)" } else { "" }
        ));
    }
    text.push_str("```");
    Ok(Reply::text(text))
}
