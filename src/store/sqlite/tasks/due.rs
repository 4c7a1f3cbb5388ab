//! What time makes due, applied inside the writer's transaction: leases that lapsed go
//! back to `ready` (or `failed`, out of attempts), tasks past their deadline time out. Each
//! claim runs a small sweep first; `sweep_tasks` runs a bigger one. Also the trimming of
//! the transition log.

use rusqlite::{params, Transaction};

use super::write::{end_attempt, sql};
use super::{deps, log, status_of, Transition};
use crate::store::{format_millis, Millis, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{Status, TaskEvent, TaskId};

/// Events one prune deletes, so a big prune never holds the writer for long.
const PRUNE_CHUNK: i64 = 5000;

/// Held tasks whose lease has lapsed (`lease_until` is set only while a task is held),
/// up to `{limit}`.
///
/// The limit is written into the text, not bound: with `ORDER BY ... LIMIT ?`, SQLite plans
/// with the bound value and re-prepares (re-parses, re-plans) the statement at every new
/// binding, which was a third of the writer's time per claim.
pub(super) fn lapsed_leases(limit: usize) -> String {
    format!(
        "SELECT id, status, attempts, max_attempts, title, agent, progress FROM tasks
         WHERE lease_until IS NOT NULL AND lease_until <= ?1 ORDER BY lease_until LIMIT {limit}"
    )
}

/// Unfinished tasks past their deadline (`due_at` is cleared when a task is final).
pub(super) fn passed_deadlines(limit: usize) -> String {
    format!(
        "SELECT id, status, title, agent, progress, due_at FROM tasks
         WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT {limit}"
    )
}

/// Applies up to `limit` lapsed leases and up to `limit` passed deadlines.
pub(super) fn sweep(
    txn: &Transaction<'_>,
    now: Millis,
    limit: usize,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    type Lapsed = (TaskId, String, u32, u32, String, Option<String>, f64);
    let lapsed: Vec<Lapsed> = txn
        .prepare_cached(&lapsed_leases(limit))
        .and_then(|mut s| {
            s.query_map(params![now], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect()
        })
        .map_err(sql("tasks: find lapsed leases"))?;
    for (id, status, attempts, max_attempts, title, agent, progress) in lapsed {
        let status = status_of(&status)?;
        let attempts_left = attempts < max_attempts;
        let Ok(new) = machine::next(status, Event::LeaseLapsed { attempts_left }) else {
            // Not held, so the lease is stale: drop it rather than fail every claim.
            clear(txn, "lease_until", id)?;
            continue;
        };
        let who = agent.as_deref().unwrap_or("?");
        let why =
            format!("the lease of agent '{who}' lapsed (attempt {attempts} of {max_attempts})");
        end_attempt(txn, id, new, &why, now)?;
        let transition = Transition {
            id,
            title: &title,
            old: Some(status),
            new,
            progress: if new == Status::Ready { 0.0 } else { progress },
            note: Some(&why),
            agent: agent.as_deref(),
        };
        events.push(log(txn, transition, now)?);
        if new != Status::Ready {
            let reason = format!("task {id} ({title}) failed: {why}");
            deps::block(txn, id, &reason, now, events)?;
        }
    }
    type Due = (TaskId, String, String, Option<String>, f64, Millis);
    let due: Vec<Due> = txn
        .prepare_cached(&passed_deadlines(limit))
        .and_then(|mut s| {
            s.query_map(params![now], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect()
        })
        .map_err(sql("tasks: find passed deadlines"))?;
    for (id, status, title, agent, progress, deadline) in due {
        let status = status_of(&status)?;
        let Ok(new) = machine::next(status, Event::DeadlinePassed) else {
            clear(txn, "due_at", id)?;
            continue;
        };
        let why = format!("its deadline passed at {}", format_millis(deadline));
        end_attempt(txn, id, new, &why, now)?;
        let transition = Transition {
            id,
            title: &title,
            old: Some(status),
            new,
            progress,
            note: Some(&why),
            agent: agent.as_deref(),
        };
        events.push(log(txn, transition, now)?);
        let reason = format!("task {id} ({title}) timed out: {why}");
        deps::block(txn, id, &reason, now, events)?;
    }
    Ok(())
}

/// Clears a timing column (`lease_until`, `due_at`) that no longer applies.
fn clear(txn: &Transaction<'_>, column: &str, id: TaskId) -> Result<(), StoreError> {
    txn.prepare_cached(&format!("UPDATE tasks SET {column} = NULL WHERE id = ?1"))
        .and_then(|mut s| s.execute(params![id]))
        .map_err(sql("tasks: clear a stale timer"))?;
    Ok(())
}

/// Deletes the oldest events beyond the newest `keep`, at most [`PRUNE_CHUNK`] per call.
pub(super) fn prune_events(txn: &Transaction<'_>, keep: u64) -> Result<u64, StoreError> {
    let (min, max): (Option<i64>, Option<i64>) = txn
        .prepare_cached("SELECT MIN(id), MAX(id) FROM task_events")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(sql("tasks: measure the event log"))?;
    let (Some(min), Some(max)) = (min, max) else {
        return Ok(0);
    };
    let cut = max.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
    if cut < min {
        return Ok(0);
    }
    let upto = cut.min(min + PRUNE_CHUNK - 1);
    let n = txn
        .prepare_cached("DELETE FROM task_events WHERE id <= ?1")
        .and_then(|mut s| s.execute(params![upto]))
        .map_err(sql("tasks: prune events"))?;
    Ok(n as u64)
}
