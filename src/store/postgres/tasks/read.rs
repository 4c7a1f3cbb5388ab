//! Task queries; nothing here changes state. Same answers as `store::sqlite::tasks::read`.

use std::collections::BTreeMap;

use tokio_postgres::types::ToSql;

use super::{status_of, task_of, TASK_COLUMNS};
use crate::store::postgres::pool::Conn;
use crate::store::StoreError;
use crate::tasks::{AgentSummary, ListFilter, Status, Task, TaskEvent, TaskId};

pub(super) async fn get(c: &mut Conn, id: TaskId) -> Result<Option<Task>, StoreError> {
    let row = c
        .query_opt(
            "tasks: get",
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"),
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut task = task_of(&row)?;
    task.depends_on = c
        .query(
            "tasks: read dependencies",
            "SELECT depends_on FROM task_deps WHERE task_id = $1 ORDER BY depends_on",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(task))
}

pub(super) async fn list(c: &mut Conn, filter: &ListFilter) -> Result<Vec<Task>, StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let param = |texts: &mut Vec<String>, v: String| {
        texts.push(v);
        format!("${}", texts.len())
    };
    if let Some(status) = filter.status {
        let p = param(&mut texts, status.as_str().to_string());
        clauses.push(format!("status = {p}"));
    }
    if let Some(agent) = &filter.assignee {
        let p = param(&mut texts, agent.clone());
        clauses.push(format!("(assignee = {p} OR agent = {p})"));
    }
    if let Some(category) = &filter.category {
        let p = param(&mut texts, category.clone());
        clauses.push(format!("category = {p}"));
    }
    // Numbers are written into the text: they are ours, not the user's strings.
    if let Some(priority) = filter.priority {
        clauses.push(format!("priority = {}", priority.rank()));
    }
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let params: Vec<&(dyn ToSql + Sync)> = texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
    let rows = c
        .query(
            "tasks: list",
            &format!(
                "SELECT {TASK_COLUMNS} FROM tasks {filter_sql} ORDER BY priority, id LIMIT {limit}"
            ),
            &params,
        )
        .await?;
    rows.iter().map(task_of).collect()
}

pub(super) async fn counts(c: &mut Conn) -> Result<Vec<(Status, u64)>, StoreError> {
    let rows = c
        .query(
            "tasks: count by status",
            "SELECT status, COUNT(*) FROM tasks GROUP BY status",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((
            status_of(&r.get::<_, String>(0))?,
            r.get::<_, i64>(1) as u64,
        ));
    }
    out.sort();
    Ok(out)
}

pub(super) async fn agent_summary(c: &mut Conn) -> Result<Vec<AgentSummary>, StoreError> {
    let rows = c
        .query(
            "tasks: summarize by agent",
            "SELECT agent, status, COUNT(*) FROM tasks WHERE agent IS NOT NULL
             GROUP BY agent, status",
            &[],
        )
        .await?;
    let mut by_agent: BTreeMap<String, Vec<(Status, u64)>> = BTreeMap::new();
    for r in rows {
        by_agent.entry(r.get(0)).or_default().push((
            status_of(&r.get::<_, String>(1))?,
            r.get::<_, i64>(2) as u64,
        ));
    }
    Ok(by_agent
        .into_iter()
        .map(|(agent, mut counts)| {
            counts.sort();
            AgentSummary { agent, counts }
        })
        .collect())
}

pub(super) async fn edges(
    c: &mut Conn,
    ids: Option<&[TaskId]>,
) -> Result<Vec<(TaskId, TaskId)>, StoreError> {
    let rows = match ids {
        None => {
            c.query(
                "tasks: read dependency edges",
                "SELECT task_id, depends_on FROM task_deps ORDER BY task_id, depends_on",
                &[],
            )
            .await?
        }
        Some(ids) => {
            let ids = ids.to_vec();
            c.query(
                "tasks: read dependency edges",
                "SELECT task_id, depends_on FROM task_deps
                 WHERE task_id = ANY($1) OR depends_on = ANY($1)
                 ORDER BY task_id, depends_on",
                &[&ids],
            )
            .await?
        }
    };
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What an event row is read from, in [`events_of`]'s order.
const EVENT_COLUMNS: &str = "e.id, e.task_id, t.title, e.old_status, e.new_status, e.progress, \
    e.note, e.agent, e.at";

pub(super) async fn events(
    c: &mut Conn,
    after: i64,
    limit: usize,
    task: Option<TaskId>,
) -> Result<Vec<TaskEvent>, StoreError> {
    let columns = EVENT_COLUMNS;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match task {
        Some(id) => {
            c.query(
                "tasks: read events",
                &format!(
                    "SELECT {columns} FROM task_events e JOIN tasks t ON t.id = e.task_id
                     WHERE e.task_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3"
                ),
                &[&id, &after, &limit],
            )
            .await?
        }
        None => {
            c.query(
                "tasks: read events",
                &format!(
                    "SELECT {columns} FROM task_events e JOIN tasks t ON t.id = e.task_id
                     WHERE e.id > $1 ORDER BY e.id LIMIT $2"
                ),
                &[&after, &limit],
            )
            .await?
        }
    };
    events_of(rows)
}

/// The events numbered `seqs` that exist, oldest first.
pub(super) async fn events_at(c: &mut Conn, seqs: &[i64]) -> Result<Vec<TaskEvent>, StoreError> {
    let rows = c
        .query(
            "tasks: read events by number",
            &format!(
                "SELECT {EVENT_COLUMNS} FROM task_events e JOIN tasks t ON t.id = e.task_id
                 WHERE e.id = ANY($1) ORDER BY e.id"
            ),
            &[&seqs],
        )
        .await?;
    events_of(rows)
}

fn events_of(rows: Vec<tokio_postgres::Row>) -> Result<Vec<TaskEvent>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let old: Option<String> = r.get(3);
        out.push(TaskEvent {
            seq: r.get(0),
            id: r.get(1),
            title: r.get(2),
            old: old.as_deref().map(status_of).transpose()?,
            new: status_of(&r.get::<_, String>(4))?,
            progress: r.get(5),
            note: r.get(6),
            agent: r.get(7),
            at: r.get(8),
        });
    }
    Ok(out)
}
