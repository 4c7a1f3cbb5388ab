//! What time makes due (lapsed leases, passed deadlines), how one task's end reaches its
//! dependents, and the trimming of the transition log; as `store::sqlite::tasks::{due,
//! deps}`. Rows another transaction holds are skipped (`SKIP LOCKED`): that transaction
//! is settling them, and the next sweep sees the result.

use super::write::end_attempt;
use super::{count, log, status_of, Transition};
use crate::store::postgres::pool::Conn;
use crate::store::{format_millis, Millis, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{Status, TaskEvent, TaskId};

/// Events one prune deletes, so a big prune never holds locks for long.
const PRUNE_CHUNK: i64 = 5000;

/// Applies up to `limit` lapsed leases and up to `limit` passed deadlines.
pub(super) async fn sweep(
    c: &mut Conn,
    now: Millis,
    limit: usize,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let lapsed = c
        .query(
            "tasks: find lapsed leases",
            "SELECT id, status, attempts, max_attempts, title, agent, progress FROM tasks
             WHERE lease_until IS NOT NULL AND lease_until <= $1
             ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&now, &limit],
        )
        .await?;
    for r in lapsed {
        let id: TaskId = r.get(0);
        let status = status_of(&r.get::<_, String>(1))?;
        let (attempts, max_attempts) = (count(r.get(2)), count(r.get(3)));
        let title: String = r.get(4);
        let agent: Option<String> = r.get(5);
        let progress: f64 = r.get(6);
        let attempts_left = attempts < max_attempts;
        let Ok(new) = machine::next(status, Event::LeaseLapsed { attempts_left }) else {
            // Not held, so the lease is stale: drop it rather than fail every claim.
            clear(c, "lease_until", id).await?;
            continue;
        };
        let who = agent.as_deref().unwrap_or("?");
        let why =
            format!("the lease of agent '{who}' lapsed (attempt {attempts} of {max_attempts})");
        end_attempt(c, id, new, &why, now).await?;
        let transition = Transition {
            id,
            title: &title,
            old: Some(status),
            new,
            progress: if new == Status::Ready { 0.0 } else { progress },
            note: Some(&why),
            agent: agent.as_deref(),
        };
        events.push(log(c, transition, now).await?);
        if new != Status::Ready {
            let reason = format!("task {id} ({title}) failed: {why}");
            block(c, id, &reason, now, events).await?;
        }
    }
    let due = c
        .query(
            "tasks: find passed deadlines",
            "SELECT id, status, title, agent, progress, due_at FROM tasks
             WHERE due_at IS NOT NULL AND due_at <= $1
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&now, &limit],
        )
        .await?;
    for r in due {
        let id: TaskId = r.get(0);
        let status = status_of(&r.get::<_, String>(1))?;
        let title: String = r.get(2);
        let agent: Option<String> = r.get(3);
        let progress: f64 = r.get(4);
        let deadline: Millis = r.get(5);
        let Ok(new) = machine::next(status, Event::DeadlinePassed) else {
            clear(c, "due_at", id).await?;
            continue;
        };
        let why = format!("its deadline passed at {}", format_millis(deadline));
        end_attempt(c, id, new, &why, now).await?;
        let transition = Transition {
            id,
            title: &title,
            old: Some(status),
            new,
            progress,
            note: Some(&why),
            agent: agent.as_deref(),
        };
        events.push(log(c, transition, now).await?);
        let reason = format!("task {id} ({title}) timed out: {why}");
        block(c, id, &reason, now, events).await?;
    }
    Ok(())
}

/// Clears a timing column (`lease_until`, `due_at`) that no longer applies.
async fn clear(c: &mut Conn, column: &'static str, id: TaskId) -> Result<(), StoreError> {
    c.execute(
        "tasks: clear a stale timer",
        &format!("UPDATE tasks SET {column} = NULL WHERE id = $1"),
        &[&id],
    )
    .await?;
    Ok(())
}

async fn dependents_of(c: &mut Conn, id: TaskId) -> Result<Vec<TaskId>, StoreError> {
    Ok(c.query(
        "tasks: read dependents",
        "SELECT task_id FROM task_deps WHERE depends_on = $1 ORDER BY task_id",
        &[&id],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// `id` is done: each pending dependent has one unmet dependency fewer, and those with
/// none left become ready. The decrement locks the dependent's row, so two dependencies
/// finishing at once count down one after the other.
pub(super) async fn release(
    c: &mut Conn,
    id: TaskId,
    now: Millis,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    for dependent in dependents_of(c, id).await? {
        let left = c
            .query_opt(
                "tasks: count unmet dependencies",
                "UPDATE tasks SET unmet = unmet - 1, updated_at = $2
                 WHERE id = $1 AND status = 'pending' RETURNING unmet, title",
                &[&dependent, &now],
            )
            .await?;
        let Some(r) = left else { continue };
        if r.get::<_, i64>(0) != 0 {
            continue;
        }
        let title: String = r.get(1);
        let new = machine::next(Status::Pending, Event::DependenciesDone)
            .map_err(|e| StoreError::corrupt("tasks: release", e))?;
        c.execute(
            "tasks: release dependent",
            "UPDATE tasks SET status = $2 WHERE id = $1",
            &[&dependent, &new.as_str()],
        )
        .await?;
        let transition = Transition {
            id: dependent,
            title: &title,
            old: Some(Status::Pending),
            new,
            progress: 0.0,
            note: None,
            agent: None,
        };
        events.push(log(c, transition, now).await?);
    }
    Ok(())
}

/// `id` ended without being done: every pending task that depends on it, directly or
/// through other pending tasks, can never run, and is blocked with `reason`.
pub(super) async fn block(
    c: &mut Conn,
    id: TaskId,
    reason: &str,
    now: Millis,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    let error = format!("blocked: {reason}");
    let mut queue = vec![id];
    while let Some(current) = queue.pop() {
        for dependent in dependents_of(c, current).await? {
            let new = machine::next(Status::Pending, Event::DependencyLost)
                .map_err(|e| StoreError::corrupt("tasks: block", e))?;
            let row = c
                .query_opt(
                    "tasks: block dependent",
                    "UPDATE tasks SET status = $2, error = $3, due_at = NULL, updated_at = $4
                     WHERE id = $1 AND status = 'pending' RETURNING title",
                    &[&dependent, &new.as_str(), &error, &now],
                )
                .await?;
            let Some(r) = row else { continue };
            let title: String = r.get(0);
            let transition = Transition {
                id: dependent,
                title: &title,
                old: Some(Status::Pending),
                new,
                progress: 0.0,
                note: Some(&error),
                agent: None,
            };
            events.push(log(c, transition, now).await?);
            queue.push(dependent);
        }
    }
    Ok(())
}

/// Deletes the oldest events beyond the newest `keep`, at most [`PRUNE_CHUNK`] per call.
pub(super) async fn prune_events(c: &mut Conn, keep: u64) -> Result<u64, StoreError> {
    let r = c
        .query_one(
            "tasks: measure the event log",
            "SELECT MIN(id), MAX(id) FROM task_events",
            &[],
        )
        .await?;
    let (Some(min), Some(max)) = (r.get::<_, Option<i64>>(0), r.get::<_, Option<i64>>(1)) else {
        return Ok(0);
    };
    let cut = max.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
    if cut < min {
        return Ok(0);
    }
    let upto = cut.min(min + PRUNE_CHUNK - 1);
    c.execute(
        "tasks: prune events",
        "DELETE FROM task_events WHERE id <= $1",
        &[&upto],
    )
    .await
}
