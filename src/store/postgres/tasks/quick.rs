//! The usual case of three hot task operations as one statement each, committed on its
//! own (one round trip and one commit, where the transactional versions in [`write`]
//! take four to six round trips). Each returns `None` when its case is not the usual one,
//! and the caller then runs the transactional version, which is always correct.
//!
//! [`write`]: super::write

use tokio_postgres::types::ToSql;

use super::write::ready_query;
use super::{status_of, task_of, TASK_COLUMNS};
use crate::store::postgres::pool::Conn;
use crate::store::{Millis, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{ClaimOutcome, ClaimQuery, Lease, NewTask, Status, TaskEvent, TaskId};

/// One task without dependencies, in one statement (the task and its creation event),
/// committed on its own; `None` for anything else, which `write::insert` handles in a
/// transaction.
pub(super) async fn insert_quick(
    c: &mut Conn,
    tasks: &[NewTask],
    now: Millis,
) -> Result<Option<Vec<TaskEvent>>, StoreError> {
    let [t] = tasks else { return Ok(None) };
    if !t.depends_on.is_empty() {
        return Ok(None);
    }
    let status = machine::initial(&[]);
    let tags = if t.tags.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&t.tags).map_err(|e| StoreError::corrupt("tags", e))?)
    };
    let due_at = if status.is_final() { None } else { t.deadline };
    let row = c
        .query_one(
            "tasks: insert",
            "WITH n AS (
                 INSERT INTO tasks (plan_key, title, description, priority, status, category,
                     tags, payload, assignee, max_attempts, unmet, deadline, due_at,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $13)
                 RETURNING id),
             e AS (
                 INSERT INTO task_events (task_id, new_status, progress, at)
                 SELECT id, $5, 0, $13 FROM n RETURNING id, task_id)
             SELECT task_id, id FROM e",
            &[
                &t.key,
                &t.title,
                &t.description,
                &t.priority.rank(),
                &status.as_str(),
                &t.category,
                &tags,
                &t.payload,
                &t.assignee,
                &i64::from(t.max_attempts),
                &t.deadline,
                &due_at,
                &now,
            ],
        )
        .await?;
    Ok(Some(vec![TaskEvent {
        seq: row.get(1),
        id: row.get(0),
        title: t.title.clone(),
        old: None,
        new: status,
        progress: 0.0,
        note: None,
        agent: None,
        at: now,
    }]))
}

/// The usual claim in one statement, committed on its own, when time has made nothing
/// due: the best ready task (`SKIP LOCKED`) is claimed and its transition logged. `None`
/// when a lease lapsed or a deadline passed, which the full `write::claim` (with its sweep)
/// must apply first, in a transaction. One round trip instead of six.
pub(super) async fn claim_quick(
    c: &mut Conn,
    q: &ClaimQuery,
    now: Millis,
) -> Result<Option<ClaimOutcome>, StoreError> {
    let new = machine::next(Status::Ready, Event::Claim)
        .map_err(|e| StoreError::corrupt("tasks: claim", e))?;
    let (ready, args) = ready_query(q);
    let n = args.len();
    let returning = TASK_COLUMNS
        .split(", ")
        .map(|col| format!("t.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        // MIN over the partial indexes is one index probe each; `EXISTS (... <= now)`
        // was planned as two sequential scans (a generic plan cannot know how many rows
        // are due), 50 ms per claim at a 100,000-task backlog.
        "WITH m AS (
             SELECT (SELECT MIN(lease_until) FROM tasks WHERE lease_until IS NOT NULL) AS lease,
                    (SELECT MIN(due_at) FROM tasks WHERE due_at IS NOT NULL) AS due_at),
         d AS (
             SELECT COALESCE(lease <= ${now}, FALSE) OR COALESCE(due_at <= ${now}, FALSE) AS due,
                    lease FROM m),
         r AS ({ready_guarded}),
         u AS (
             UPDATE tasks t SET status = ${status}, agent = $1, attempts = t.attempts + 1,
                 lease_ms = ${lease}, lease_until = ${until}, progress = 0, note = NULL,
                 updated_at = ${now}
             FROM r WHERE t.id = r.id RETURNING {returning}),
         e AS (
             INSERT INTO task_events (task_id, old_status, new_status, progress, agent, at)
             SELECT id, 'ready', ${status}, 0, $1, ${now} FROM u RETURNING id)
         SELECT u.*, e.id, d.due, d.lease FROM d LEFT JOIN u ON TRUE LEFT JOIN e ON TRUE",
        now = n + 1,
        status = n + 2,
        lease = n + 3,
        until = n + 4,
        ready_guarded = ready.replacen(
            "WHERE status = 'ready'",
            "WHERE NOT (SELECT due FROM d) AND status = 'ready'",
            1
        ),
    );
    let until = now + q.lease_ms;
    let status = new.as_str();
    let mut params: Vec<&(dyn ToSql + Sync)> =
        args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    params.extend([&now as &(dyn ToSql + Sync), &status, &q.lease_ms, &until]);
    let row = c.query_one("tasks: claim", &sql, &params).await?;
    if row.get::<_, bool>(22) {
        return Ok(None);
    }
    let mut out = ClaimOutcome::default();
    if row.get::<_, Option<TaskId>>(0).is_none() {
        out.next_expiry = row.get(23);
        return Ok(Some(out));
    }
    let task = task_of(&row)?;
    out.events.push(TaskEvent {
        seq: row.get(21),
        id: task.id,
        title: task.title.clone(),
        old: Some(Status::Ready),
        new,
        progress: 0.0,
        note: None,
        agent: Some(q.agent.clone()),
        at: now,
    });
    out.task = Some(task);
    Ok(Some(out))
}

/// The usual completion in one statement, committed on its own: the lease checks out and
/// no task depends on this one (nothing to release). `None` otherwise: the full
/// `write::complete` then refuses precisely or releases dependents, in a transaction.
pub(super) async fn complete_quick(
    c: &mut Conn,
    lease: &Lease,
    result: Option<&str>,
    now: Millis,
) -> Result<Option<Vec<TaskEvent>>, StoreError> {
    let done = Status::Done.as_str();
    let row = c
        .query_one(
            "tasks: complete",
            "WITH h AS (
                 SELECT id, status FROM tasks
                 WHERE id = $1 AND agent = $2 AND attempts = $3
                   AND status IN ('claimed', 'running') AND lease_until > $5
                   AND NOT EXISTS (SELECT 1 FROM task_deps WHERE depends_on = $1)
                 FOR UPDATE),
             u AS (
                 UPDATE tasks t SET status = $6, result = $4, progress = 100,
                     lease_until = NULL, due_at = NULL, updated_at = $5
                 FROM h WHERE t.id = h.id RETURNING t.id, t.title, h.status AS old),
             e AS (
                 INSERT INTO task_events (task_id, old_status, new_status, progress, agent, at)
                 SELECT id, old, $6, 100, $2, $5 FROM u RETURNING id)
             SELECT u.title, u.old, e.id FROM (SELECT 1) AS one
                 LEFT JOIN u ON TRUE LEFT JOIN e ON TRUE",
            &[
                &lease.id,
                &lease.agent,
                &i64::from(lease.attempt),
                &result,
                &now,
                &done,
            ],
        )
        .await?;
    let Some(title) = row.get::<_, Option<String>>(0) else {
        return Ok(None);
    };
    let old = status_of(&row.get::<_, String>(1))?;
    let new = machine::next(old, Event::Complete)
        .map_err(|e| StoreError::corrupt("tasks: complete", e))?;
    Ok(Some(vec![TaskEvent {
        seq: row.get(2),
        id: lease.id,
        title,
        old: Some(old),
        new,
        progress: 100.0,
        note: None,
        agent: Some(lease.agent.clone()),
        at: now,
    }]))
}
