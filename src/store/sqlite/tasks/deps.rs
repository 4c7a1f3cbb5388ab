//! How one task's end reaches the tasks that depend on it: `done` releases them when it
//! was their last unmet dependency; any other end blocks them, transitively.

use rusqlite::{params, OptionalExtension, Transaction};

use super::write::sql;
use super::{log, Transition};
use crate::store::{Millis, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{Status, TaskEvent, TaskId};

fn dependents_of(txn: &Transaction<'_>, id: TaskId) -> Result<Vec<TaskId>, StoreError> {
    txn.prepare_cached("SELECT task_id FROM task_deps WHERE depends_on = ?1")
        .and_then(|mut s| s.query_map(params![id], |r| r.get(0))?.collect())
        .map_err(sql("tasks: read dependents"))
}

/// `id` is done: each pending dependent has one unmet dependency fewer, and those with
/// none left become ready.
pub(super) fn release(
    txn: &Transaction<'_>,
    id: TaskId,
    now: Millis,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    for dependent in dependents_of(txn, id)? {
        let left: Option<(i64, String)> = txn
            .prepare_cached(
                "UPDATE tasks SET unmet = unmet - 1, updated_at = ?2
                 WHERE id = ?1 AND status = 'pending' RETURNING unmet, title",
            )
            .and_then(|mut s| {
                s.query_row(params![dependent, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql("tasks: count unmet dependencies"))?;
        let Some((0, title)) = left else { continue };
        let new = machine::next(Status::Pending, Event::DependenciesDone)
            .map_err(|e| StoreError::corrupt("tasks: release", e))?;
        txn.prepare_cached("UPDATE tasks SET status = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![dependent, new.as_str()]))
            .map_err(sql("tasks: release dependent"))?;
        let transition = Transition {
            id: dependent,
            title: &title,
            old: Some(Status::Pending),
            new,
            progress: 0.0,
            note: None,
            agent: None,
        };
        events.push(log(txn, transition, now)?);
    }
    Ok(())
}

/// `id` ended without being done: every pending task that depends on it, directly or
/// through other pending tasks, can never run, and is blocked with `reason`.
pub(super) fn block(
    txn: &Transaction<'_>,
    id: TaskId,
    reason: &str,
    now: Millis,
    events: &mut Vec<TaskEvent>,
) -> Result<(), StoreError> {
    let error = format!("blocked: {reason}");
    let mut queue = vec![id];
    while let Some(current) = queue.pop() {
        for dependent in dependents_of(txn, current)? {
            let new = machine::next(Status::Pending, Event::DependencyLost)
                .map_err(|e| StoreError::corrupt("tasks: block", e))?;
            let title: Option<String> = txn
                .prepare_cached(
                    "UPDATE tasks SET status = ?2, error = ?3, due_at = NULL, updated_at = ?4
                     WHERE id = ?1 AND status = 'pending' RETURNING title",
                )
                .and_then(|mut s| {
                    s.query_row(params![dependent, new.as_str(), error, now], |r| r.get(0))
                        .optional()
                })
                .map_err(sql("tasks: block dependent"))?;
            let Some(title) = title else { continue };
            let transition = Transition {
                id: dependent,
                title: &title,
                old: Some(Status::Pending),
                new,
                progress: 0.0,
                note: Some(&error),
                agent: None,
            };
            events.push(log(txn, transition, now)?);
            queue.push(dependent);
        }
    }
    Ok(())
}
