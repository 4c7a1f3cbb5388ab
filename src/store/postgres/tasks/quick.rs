//! The usual case of the three hot task operations, for many callers at once, as one
//! statement each, committed on its own: one round trip and one commit for a whole batch
//! (see [`batch`](super::batch)), where the transactional versions in [`write`] take four
//! to six round trips per task. What is not the usual case (a refusal to explain,
//! dependents to release) is left to the transactional version, which is always correct.
//!
//! [`write`]: super::write

use tokio_postgres::types::ToSql;

use super::write::ready_query;
use super::{status_of, task_of, TASK_COLUMNS};
use crate::store::postgres::pool::Conn;
use crate::store::{Millis, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{ClaimQuery, Lease, NewTask, Status, Task, TaskEvent, TaskId};

/// Tasks without dependencies, each with the time it was added, in one statement (the
/// tasks and their creation events). Returns their creation events, in order.
pub(super) async fn insert_many(
    c: &mut Conn,
    tasks: &[(NewTask, Millis)],
) -> Result<Vec<TaskEvent>, StoreError> {
    let status = machine::initial(&[]);
    let mut cols = Columns::default();
    for (t, now) in tasks {
        let tags = if t.tags.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&t.tags).map_err(|e| StoreError::corrupt("tags", e))?)
        };
        cols.key.push(t.key.clone());
        cols.title.push(t.title.clone());
        cols.description.push(t.description.clone());
        cols.priority.push(t.priority.rank());
        cols.category.push(t.category.clone());
        cols.tags.push(tags);
        cols.payload.push(t.payload.clone());
        cols.assignee.push(t.assignee.clone());
        cols.max_attempts.push(i64::from(t.max_attempts));
        cols.deadline.push(t.deadline);
        cols.due_at
            .push(if status.is_final() { None } else { t.deadline });
        cols.now.push(*now);
    }
    // Identity values are drawn row by row in the order the rows are inserted, so the ids
    // ascend with the batch's order (`ORDER BY ord`) and the answers can be matched back.
    let rows = c
        .query(
            "tasks: insert",
            "WITH x AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
                     $10::bigint[], $11::bigint[], $12::bigint[])
                     WITH ORDINALITY AS x(k, ti, d, p, c, tg, pl, a, m, dl, du, at, ord)),
             n AS (
                 INSERT INTO tasks (plan_key, title, description, priority, status, category,
                     tags, payload, assignee, max_attempts, unmet, deadline, due_at,
                     created_at, updated_at)
                 SELECT k, ti, d, p, $13, c, tg, pl, a, m, 0, dl, du, at, at
                 FROM x ORDER BY ord
                 RETURNING id, created_at),
             e AS (
                 INSERT INTO task_events (task_id, new_status, progress, at)
                 SELECT id, $13, 0, created_at FROM n ORDER BY id RETURNING id, task_id)
             SELECT task_id, id FROM e ORDER BY task_id",
            &[
                &cols.key,
                &cols.title,
                &cols.description,
                &cols.priority,
                &cols.category,
                &cols.tags,
                &cols.payload,
                &cols.assignee,
                &cols.max_attempts,
                &cols.deadline,
                &cols.due_at,
                &cols.now,
                &status.as_str(),
            ],
        )
        .await?;
    if rows.len() != tasks.len() {
        return Err(StoreError::corrupt(
            "tasks: insert",
            format!("{} tasks stored of {}", rows.len(), tasks.len()),
        ));
    }
    Ok(rows
        .iter()
        .zip(tasks)
        .map(|(row, (t, now))| TaskEvent {
            seq: row.get(1),
            id: row.get(0),
            title: t.title.clone(),
            old: None,
            new: status,
            progress: 0.0,
            note: None,
            agent: None,
            at: *now,
        })
        .collect())
}

/// One array per column of [`insert_many`].
#[derive(Default)]
struct Columns {
    key: Vec<Option<String>>,
    title: Vec<String>,
    description: Vec<Option<String>>,
    priority: Vec<i64>,
    category: Vec<Option<String>>,
    tags: Vec<Option<String>>,
    payload: Vec<Option<String>>,
    assignee: Vec<Option<String>>,
    max_attempts: Vec<i64>,
    deadline: Vec<Option<Millis>>,
    due_at: Vec<Option<Millis>>,
    now: Vec<Millis>,
}

/// Up to `n` of the best ready tasks for `q` (`SKIP LOCKED`), claimed for `q.agent` and
/// their transitions logged, in one statement; best first. Lapsed leases and passed
/// deadlines are the caller's to apply before (see `batch`).
pub(super) async fn claim_many(
    c: &mut Conn,
    q: &ClaimQuery,
    now: Millis,
    n: usize,
) -> Result<Vec<(Task, TaskEvent)>, StoreError> {
    let new = machine::next(Status::Ready, Event::Claim)
        .map_err(|e| StoreError::corrupt("tasks: claim", e))?;
    let (ready, args) = ready_query(q);
    let k = args.len();
    let returning = TASK_COLUMNS
        .split(", ")
        .map(|col| format!("t.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH r AS ({ready}),
         u AS (
             UPDATE tasks t SET status = ${status}, agent = $1, attempts = t.attempts + 1,
                 lease_ms = ${lease}, lease_until = ${until}, progress = 0, note = NULL,
                 updated_at = ${now}
             FROM r WHERE t.id = r.id RETURNING {returning}),
         e AS (
             INSERT INTO task_events (task_id, old_status, new_status, progress, agent, at)
             SELECT id, 'ready', ${status}, 0, $1, ${now} FROM u RETURNING id, task_id)
         SELECT u.*, e.id FROM u JOIN e ON e.task_id = u.id ORDER BY u.priority, u.id",
        ready = ready.replacen("LIMIT 1", &format!("LIMIT ${}", k + 5), 1),
        now = k + 1,
        status = k + 2,
        lease = k + 3,
        until = k + 4,
    );
    let until = now + q.lease_ms;
    let status = new.as_str();
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let mut params: Vec<&(dyn ToSql + Sync)> =
        args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    params.extend([
        &now as &(dyn ToSql + Sync),
        &status,
        &q.lease_ms,
        &until,
        &limit,
    ]);
    let rows = c.query("tasks: claim", &sql, &params).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let task = task_of(&row)?;
        let event = TaskEvent {
            seq: row.get(21),
            id: task.id,
            title: task.title.clone(),
            old: Some(Status::Ready),
            new,
            progress: 0.0,
            note: None,
            agent: Some(q.agent.clone()),
            at: now,
        };
        out.push((task, event));
    }
    Ok(out)
}

/// Completions in one statement, for the leases that check out on tasks nothing depends
/// on (nothing to release). Returns the event of each completed one, `None` for the others
/// (which the full `write::complete` then refuses precisely or settles, in a transaction).
/// The leases must name distinct tasks.
pub(super) async fn complete_many(
    c: &mut Conn,
    done: &[(Lease, Option<String>, Millis)],
) -> Result<Vec<Option<TaskEvent>>, StoreError> {
    let ids: Vec<TaskId> = done.iter().map(|d| d.0.id).collect();
    let agents: Vec<&str> = done.iter().map(|d| d.0.agent.as_str()).collect();
    let attempts: Vec<i64> = done.iter().map(|d| i64::from(d.0.attempt)).collect();
    let results: Vec<Option<&str>> = done.iter().map(|d| d.1.as_deref()).collect();
    let nows: Vec<Millis> = done.iter().map(|d| d.2).collect();
    let rows = c
        .query(
            "tasks: complete",
            // Rows are locked in id order, so two batches never wait on each other in a
            // circle.
            "WITH x AS (
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[],
                     $5::bigint[]) AS x(id, agent, attempt, result, now)),
             h AS (
                 SELECT t.id, t.status, x.agent, x.result, x.now FROM tasks t JOIN x ON t.id = x.id
                 WHERE t.agent = x.agent AND t.attempts = x.attempt
                   AND t.status IN ('claimed', 'running') AND t.lease_until > x.now
                   AND NOT EXISTS (SELECT 1 FROM task_deps WHERE depends_on = t.id)
                 ORDER BY t.id FOR UPDATE OF t),
             u AS (
                 UPDATE tasks t SET status = $6, result = h.result, progress = 100,
                     lease_until = NULL, due_at = NULL, updated_at = h.now
                 FROM h WHERE t.id = h.id
                 RETURNING t.id, t.title, h.status AS old, h.agent, h.now),
             e AS (
                 INSERT INTO task_events (task_id, old_status, new_status, progress, agent, at)
                 SELECT id, old, $6, 100, agent, now FROM u RETURNING id, task_id)
             SELECT u.id, u.title, u.old, e.id FROM u JOIN e ON e.task_id = u.id",
            &[
                &ids,
                &agents,
                &attempts,
                &results,
                &nows,
                &Status::Done.as_str(),
            ],
        )
        .await?;
    let mut out: Vec<Option<TaskEvent>> = vec![None; done.len()];
    for row in rows {
        let id: TaskId = row.get(0);
        let Some(i) = ids.iter().position(|x| *x == id) else {
            continue;
        };
        let old = status_of(&row.get::<_, String>(2))?;
        let new = machine::next(old, Event::Complete)
            .map_err(|e| StoreError::corrupt("tasks: complete", e))?;
        out[i] = Some(TaskEvent {
            seq: row.get(3),
            id,
            title: row.get(1),
            old: Some(old),
            new,
            progress: 100.0,
            note: None,
            agent: Some(done[i].0.agent.clone()),
            at: done[i].2,
        });
    }
    Ok(out)
}
