//! Task queries on read connections: nothing here changes state, so they run beside the
//! writer (WAL) and see what was committed before they started.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{read_err, status_of, task_of, TASK_COLUMNS};
use crate::store::StoreError;
use crate::tasks::{AgentSummary, ListFilter, Status, Task, TaskEvent, TaskId};

pub(super) fn get(conn: &Connection, id: TaskId) -> Result<Option<Task>, StoreError> {
    let task = conn
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
        .and_then(|mut s| s.query_row(params![id], task_of).optional())
        .map_err(read_err("tasks: get"))?;
    let Some(mut task) = task else {
        return Ok(None);
    };
    task.depends_on = conn
        .prepare_cached("SELECT depends_on FROM task_deps WHERE task_id = ?1 ORDER BY depends_on")
        .and_then(|mut s| s.query_map(params![id], |r| r.get(0))?.collect())
        .map_err(StoreError::sql("tasks: read dependencies"))?;
    Ok(Some(task))
}

pub(super) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Task>, StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(status) = filter.status {
        clauses.push(format!(
            "status = {}",
            arg(status.as_str().to_string().into())
        ));
    }
    if let Some(agent) = &filter.assignee {
        let a = arg(agent.clone().into());
        clauses.push(format!("(assignee = {a} OR agent = {a})"));
    }
    if let Some(category) = &filter.category {
        clauses.push(format!("category = {}", arg(category.clone().into())));
    }
    if let Some(priority) = filter.priority {
        clauses.push(format!("priority = {}", arg(priority.rank().into())));
    }
    let limit = arg(i64::try_from(filter.limit).unwrap_or(i64::MAX).into());
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    conn.prepare(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks {filter_sql} ORDER BY priority, id LIMIT {limit}"
    ))
    .and_then(|mut s| {
        s.query_map(params_from_iter(args.iter()), task_of)?
            .collect()
    })
    .map_err(read_err("tasks: list"))
}

pub(super) fn counts(conn: &Connection) -> Result<Vec<(Status, u64)>, StoreError> {
    let rows: Vec<(String, u64)> = conn
        .prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(StoreError::sql("tasks: count by status"))?;
    let mut out = Vec::with_capacity(rows.len());
    for (status, n) in rows {
        out.push((status_of(&status)?, n));
    }
    out.sort();
    Ok(out)
}

pub(super) fn agent_summary(conn: &Connection) -> Result<Vec<AgentSummary>, StoreError> {
    let rows: Vec<(String, String, u64)> = conn
        .prepare_cached(
            "SELECT agent, status, COUNT(*) FROM tasks WHERE agent IS NOT NULL
             GROUP BY agent, status",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(StoreError::sql("tasks: summarize by agent"))?;
    let mut by_agent: BTreeMap<String, Vec<(Status, u64)>> = BTreeMap::new();
    for (agent, status, n) in rows {
        by_agent
            .entry(agent)
            .or_default()
            .push((status_of(&status)?, n));
    }
    Ok(by_agent
        .into_iter()
        .map(|(agent, mut counts)| {
            counts.sort();
            AgentSummary { agent, counts }
        })
        .collect())
}

pub(super) fn edges(
    conn: &Connection,
    ids: Option<&[TaskId]>,
) -> Result<Vec<(TaskId, TaskId)>, StoreError> {
    let err = StoreError::sql("tasks: read dependency edges");
    let Some(ids) = ids else {
        return conn
            .prepare_cached(
                "SELECT task_id, depends_on FROM task_deps ORDER BY task_id, depends_on",
            )
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(err);
    };
    let mut found = BTreeSet::new();
    let run = |sql: &str, id: TaskId, found: &mut BTreeSet<(TaskId, TaskId)>| {
        let mut s = conn.prepare_cached(sql)?;
        for edge in s.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))? {
            found.insert(edge?);
        }
        Ok::<_, rusqlite::Error>(())
    };
    for &id in ids {
        run(
            "SELECT task_id, depends_on FROM task_deps WHERE task_id = ?1",
            id,
            &mut found,
        )
        .and_then(|()| {
            run(
                "SELECT task_id, depends_on FROM task_deps WHERE depends_on = ?1",
                id,
                &mut found,
            )
        })
        .map_err(StoreError::sql("tasks: read dependency edges"))?;
    }
    Ok(found.into_iter().collect())
}

pub(super) fn events(
    conn: &Connection,
    after: i64,
    limit: usize,
    task: Option<TaskId>,
) -> Result<Vec<TaskEvent>, StoreError> {
    // The limit is written into the text: a bound LIMIT after ORDER BY re-prepares the
    // statement at every call (see due::lapsed_leases).
    let columns = "e.id, e.task_id, t.title, e.old_status, e.new_status, e.progress, e.note, \
                   e.agent, e.at";
    let (sql, args): (String, Vec<i64>) = match task {
        Some(id) => (
            format!(
                "SELECT {columns} FROM task_events e JOIN tasks t ON t.id = e.task_id
                 WHERE e.task_id = ?1 AND e.id > ?2 ORDER BY e.id LIMIT {limit}"
            ),
            vec![id, after],
        ),
        None => (
            format!(
                "SELECT {columns} FROM task_events e JOIN tasks t ON t.id = e.task_id
                 WHERE e.id > ?1 ORDER BY e.id LIMIT {limit}"
            ),
            vec![after],
        ),
    };
    type Row = (
        i64,
        TaskId,
        String,
        Option<String>,
        String,
        f64,
        Option<String>,
        Option<String>,
        i64,
    );
    let rows: Vec<Row> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args.iter()), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect()
        })
        .map_err(StoreError::sql("tasks: read events"))?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, id, title, old, new, progress, note, agent, at) in rows {
        out.push(TaskEvent {
            seq,
            id,
            title,
            old: old.as_deref().map(status_of).transpose()?,
            new: status_of(&new)?,
            progress,
            note,
            agent,
            at,
        });
    }
    Ok(out)
}
