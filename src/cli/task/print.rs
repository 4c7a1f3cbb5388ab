//! How task commands print: aligned tables for people, JSON for programs.

use std::io::Write;

use crate::store::format_millis;
use crate::tasks::{AgentSummary, Status, Task, TaskEvent};

/// Shortens `text` to `max` characters, marking the cut with `…`.
pub(super) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `40%` for held tasks with progress, `-` otherwise.
fn progress(task: &Task) -> String {
    if task.status.is_held() || task.status == Status::Done {
        format!("{:.0}%", task.progress)
    } else {
        "-".into()
    }
}

pub(super) fn tasks(found: &[Task], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(found)?)?;
        return Ok(());
    }
    if found.is_empty() {
        writeln!(out, "no tasks")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<6} {:<8} {:<9} {:>5}  {:<12} TITLE",
        "ID", "PRIORITY", "STATUS", "PROG", "AGENT"
    )?;
    for t in found {
        let agent = t.agent.as_deref().or(t.assignee.as_deref()).unwrap_or("-");
        writeln!(
            out,
            "{:<6} {:<8} {:<9} {:>5}  {:<12} {}",
            t.id,
            t.priority.as_str(),
            t.status.as_str(),
            progress(t),
            clip(agent, 12),
            clip(&t.title, 60)
        )?;
    }
    Ok(())
}

pub(super) fn agent_summary(
    summary: &[AgentSummary],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let rows: Vec<_> = summary
            .iter()
            .map(|s| {
                let counts: serde_json::Map<String, serde_json::Value> = s
                    .counts
                    .iter()
                    .map(|(status, n)| (status.to_string(), (*n).into()))
                    .collect();
                serde_json::json!({ "agent": s.agent, "counts": counts })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
        return Ok(());
    }
    if summary.is_empty() {
        writeln!(out, "no agent has claimed a task yet")?;
        return Ok(());
    }
    // Columns for the statuses that occur, in life order.
    let columns: Vec<Status> = Status::ALL
        .into_iter()
        .filter(|s| summary.iter().any(|a| a.counts.iter().any(|(c, _)| c == s)))
        .collect();
    write!(out, "{:<16}", "AGENT")?;
    for c in &columns {
        write!(out, " {:>9}", c.as_str().to_uppercase())?;
    }
    writeln!(out)?;
    for a in summary {
        write!(out, "{:<16}", clip(&a.agent, 16))?;
        for c in &columns {
            let n = a.counts.iter().find(|(s, _)| s == c).map_or(0, |(_, n)| *n);
            write!(out, " {n:>9}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// One history line: `2026-01-31T12:00:00.000Z  ready -> claimed  by w  (note)`.
pub(super) fn event_line(e: &TaskEvent) -> String {
    let old = e.old.map_or("created".to_string(), |s| s.to_string());
    let mut line = format!("{}  {old} -> {}", format_millis(e.at), e.new);
    if e.new.is_held() && e.progress > 0.0 {
        line.push_str(&format!(" {:.0}%", e.progress));
    }
    if let Some(agent) = &e.agent {
        line.push_str(&format!("  by {agent}"));
    }
    if let Some(note) = &e.note {
        line.push_str(&format!("  ({note})"));
    }
    line
}

pub(super) fn task_detail(
    task: &Task,
    deps: &[Task],
    history: &[TaskEvent],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({ "task": task, "history": history });
        writeln!(out, "{}", serde_json::to_string(&value)?)?;
        return Ok(());
    }
    writeln!(out, "{}  {}", task.label(), task.title)?;
    let mut status = format!("{}", task.status);
    if task.status.is_held() {
        status.push_str(&format!(" {:.0}%", task.progress));
    }
    status.push_str(&format!(
        " (attempt {} of {})",
        task.attempts, task.max_attempts
    ));
    let field =
        |out: &mut dyn Write, name: &str, value: &str| writeln!(out, "  {name:<10} {value}");
    field(out, "status", &status)?;
    field(out, "priority", task.priority.as_str())?;
    if let Some(agent) = &task.agent {
        field(out, "agent", agent)?;
    }
    if let Some(until) = task.lease_until {
        field(out, "lease", &format!("until {}", format_millis(until)))?;
    }
    for (name, value) in [
        ("assignee", &task.assignee),
        ("category", &task.category),
        ("note", &task.note),
        ("error", &task.error),
        ("describe", &task.description),
    ] {
        if let Some(v) = value {
            field(out, name, v)?;
        }
    }
    if !task.tags.is_empty() {
        field(out, "tags", &task.tags.join(", "))?;
    }
    if !deps.is_empty() {
        let list: Vec<String> = deps
            .iter()
            .map(|d| format!("{} ({})", d.label(), d.status))
            .collect();
        field(out, "needs", &list.join(", "))?;
    }
    if let Some(deadline) = task.deadline {
        field(out, "deadline", &format_millis(deadline))?;
    }
    for (name, value) in [("payload", &task.payload), ("result", &task.result)] {
        if let Some(v) = value {
            field(out, name, &v.to_string())?;
        }
    }
    field(out, "created", &format_millis(task.created_at))?;
    if !history.is_empty() {
        writeln!(out, "history:")?;
        for e in history {
            writeln!(out, "  {}", event_line(e))?;
        }
    }
    Ok(())
}
