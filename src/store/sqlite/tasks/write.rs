//! Every task transition, each inside the writer's group transaction. Checks come first
//! and refuse without writing (a refusal is returned as `Ok(Err(..))`, which commits
//! nothing because nothing was written); the new status always comes from
//! [`machine::next`], so the rules live in one place.

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};

use super::{deps, due, log, read_err, status_of, task_of, Transition, TASK_COLUMNS};
use crate::store::{Millis, Refusable, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{
    ClaimOutcome, ClaimQuery, DepRef, Lease, NewTask, Refusal, Status, TaskEvent, TaskId,
};

/// Lapsed leases and passed deadlines one claim applies before it looks for a task; more
/// wait for the next claim or sweep, so one claim never holds the writer for long.
const SWEEP_PER_CLAIM: usize = 64;

/// When the next lease lapses, for claims waiting on nothing else.
pub(super) const NEXT_EXPIRY: &str =
    "SELECT MIN(lease_until) FROM tasks WHERE lease_until IS NOT NULL";

pub(super) fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    StoreError::sql(what)
}

pub(super) fn insert(
    txn: &Transaction<'_>,
    tasks: &[NewTask],
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    // Every check before the first write: a refusal must leave nothing behind.
    let mut existing: HashMap<TaskId, Status> = HashMap::new();
    for t in tasks {
        for dep in &t.depends_on {
            let DepRef::Existing(id) = *dep else { continue };
            if existing.contains_key(&id) {
                continue;
            }
            let status: Option<String> = txn
                .prepare_cached("SELECT status FROM tasks WHERE id = ?1")
                .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
                .map_err(sql("tasks: read dependency"))?;
            match status {
                Some(s) => existing.insert(id, status_of(&s)?),
                None => {
                    let task = t.key.clone().unwrap_or_else(|| format!("'{}'", t.title));
                    return Ok(Err(Refusal::MissingDependency { task, missing: id }));
                }
            };
        }
    }
    let mut placed: Vec<(TaskId, Status)> = Vec::with_capacity(tasks.len());
    let mut events = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut deps = Vec::with_capacity(t.depends_on.len());
        for dep in &t.depends_on {
            deps.push(match *dep {
                DepRef::Existing(id) => (id, existing.get(&id).copied().unwrap_or(Status::Done)),
                DepRef::Batch(i) => *placed.get(i).ok_or_else(|| {
                    StoreError::corrupt("tasks: insert", "a batch task depends on a later one")
                })?,
            });
        }
        let statuses: Vec<Status> = deps.iter().map(|d| d.1).collect();
        let status = machine::initial(&statuses);
        let unmet = statuses.iter().filter(|s| **s != Status::Done).count() as i64;
        let error = deps
            .iter()
            .find(|(_, s)| machine::blocks_dependents(*s))
            .map(|(id, s)| format!("blocked: dependency {id} is {s}"));
        let tags = if t.tags.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&t.tags).map_err(|e| StoreError::corrupt("tags", e))?)
        };
        txn.prepare_cached(
            "INSERT INTO tasks (plan_key, title, description, priority, status, category, tags,
                 payload, assignee, max_attempts, unmet, error, deadline, due_at, created_at,
                 updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
        )
        .and_then(|mut s| {
            s.execute(params![
                t.key,
                t.title,
                t.description,
                t.priority.rank(),
                status.as_str(),
                t.category,
                tags,
                t.payload,
                t.assignee,
                t.max_attempts,
                unmet,
                error,
                t.deadline,
                // A task born blocked is final: its deadline no longer matters.
                if status.is_final() { None } else { t.deadline },
                now
            ])
        })
        .map_err(sql("tasks: insert"))?;
        let id = txn.last_insert_rowid();
        for (dep, _) in &deps {
            txn.prepare_cached(
                "INSERT INTO task_deps (task_id, depends_on) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![id, dep]))
            .map_err(sql("tasks: insert dependency"))?;
        }
        placed.push((id, status));
        let transition = Transition {
            id,
            title: &t.title,
            old: None,
            new: status,
            progress: 0.0,
            note: error.as_deref(),
            agent: None,
        };
        events.push(log(txn, transition, now)?);
    }
    Ok(Ok(events))
}

pub(super) fn claim(
    txn: &Transaction<'_>,
    q: &ClaimQuery,
    now: Millis,
) -> Result<ClaimOutcome, StoreError> {
    let mut out = ClaimOutcome::default();
    due::sweep(txn, now, SWEEP_PER_CLAIM, &mut out.events)?;
    let Some(id) = next_ready(txn, q)? else {
        out.next_expiry = txn
            .prepare_cached(NEXT_EXPIRY)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sql("tasks: find the next lease expiry"))?;
        return Ok(out);
    };
    let new = machine::next(Status::Ready, Event::Claim)
        .map_err(|e| StoreError::corrupt("tasks: claim", e))?;
    // An UPDATE, then a read of the row by id: cheaper than `UPDATE ... RETURNING`, which
    // stages the returned row in a temporary table.
    txn.prepare_cached(
        "UPDATE tasks SET status = ?2, agent = ?3, attempts = attempts + 1, lease_ms = ?4,
             lease_until = ?5, progress = 0, note = NULL, updated_at = ?6
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            new.as_str(),
            q.agent,
            q.lease_ms,
            now + q.lease_ms,
            now
        ])
    })
    .map_err(sql("tasks: claim"))?;
    let task = txn
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
        .and_then(|mut s| s.query_row(params![id], task_of))
        .map_err(read_err("tasks: read the claimed task"))?;
    let transition = Transition {
        id,
        title: &task.title,
        old: Some(Status::Ready),
        new,
        progress: 0.0,
        note: None,
        agent: Some(&q.agent),
    };
    out.events.push(log(txn, transition, now)?);
    out.task = Some(task);
    Ok(out)
}

/// The best ready task for `q`: highest priority, then oldest.
fn next_ready(txn: &Transaction<'_>, q: &ClaimQuery) -> Result<Option<TaskId>, StoreError> {
    let (query, args) = ready_query(q);
    txn.prepare_cached(&query)
        .and_then(|mut s| {
            s.query_row(params_from_iter(args.iter()), |r| r.get(0))
                .optional()
        })
        .map_err(sql("tasks: find a ready task"))
}

/// The claim's query and its arguments. It walks the ready prefix of an index in claim
/// order; the filters (reservation, tags) only skip entries, so with no filters the answer
/// is the first entry, and with a category it is the first entry of that category's index.
pub(super) fn ready_query(q: &ClaimQuery) -> (String, Vec<String>) {
    let mut query = String::from(
        "SELECT id FROM tasks WHERE status = 'ready' AND (assignee IS NULL OR assignee = ?1)",
    );
    let mut args: Vec<String> = vec![q.agent.clone()];
    if let Some(category) = &q.category {
        args.push(category.clone());
        query.push_str(&format!(
            " AND category IS NOT NULL AND category = ?{}",
            args.len()
        ));
    }
    for tag in &q.tags {
        // Tags are stored as a JSON array and a tag cannot contain a quote, so the quoted
        // tag appears in the text exactly when the task carries it.
        args.push(format!("\"{tag}\""));
        query.push_str(&format!(" AND instr(tags, ?{}) > 0", args.len()));
    }
    query.push_str(" ORDER BY priority, id LIMIT 1");
    (query, args)
}

/// The current holder's view of a task, once its lease checked out.
struct Held {
    status: Status,
    title: String,
    progress: f64,
    lease_ms: i64,
    attempts: u32,
    max_attempts: u32,
}

/// Refuses unless `lease` is the current, unexpired claim of its task.
fn check_lease(
    txn: &Transaction<'_>,
    lease: &Lease,
    now: Millis,
) -> Result<Refusable<Held>, StoreError> {
    type Row = (
        String,
        Option<String>,
        u32,
        u32,
        Option<i64>,
        Option<i64>,
        String,
        f64,
    );
    let row: Option<Row> = txn
        .prepare_cached(
            "SELECT status, agent, attempts, max_attempts, lease_until, lease_ms, title, progress
             FROM tasks WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![lease.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()
        })
        .map_err(sql("tasks: read lease"))?;
    let Some((status, agent, attempts, max_attempts, lease_until, lease_ms, title, progress)) = row
    else {
        return Ok(Err(Refusal::NotFound(lease.id)));
    };
    let status = status_of(&status)?;
    if status.is_final() {
        return Ok(Err(Refusal::Final {
            id: lease.id,
            status,
        }));
    }
    if !status.is_held() || agent.as_deref() != Some(&lease.agent) || attempts != lease.attempt {
        return Ok(Err(Refusal::NotHeld {
            lease: lease.clone(),
            status,
            holder: agent,
            attempts,
        }));
    }
    let until = lease_until.unwrap_or(now);
    if until <= now {
        return Ok(Err(Refusal::LeaseExpired {
            lease: lease.clone(),
            at: until,
        }));
    }
    Ok(Ok(Held {
        status,
        title,
        progress,
        lease_ms: lease_ms.unwrap_or(0),
        attempts,
        max_attempts,
    }))
}

/// Unwraps a refusal into an early `Ok(Err(..))` return.
macro_rules! held {
    ($e:expr) => {
        match $e? {
            Ok(h) => h,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

pub(super) fn heartbeat(
    txn: &Transaction<'_>,
    lease: &Lease,
    now: Millis,
) -> Result<Refusable<Millis>, StoreError> {
    let held = held!(check_lease(txn, lease, now));
    let until = now + held.lease_ms;
    txn.prepare_cached("UPDATE tasks SET lease_until = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![lease.id, until]))
        .map_err(sql("tasks: heartbeat"))?;
    Ok(Ok(until))
}

pub(super) fn progress(
    txn: &Transaction<'_>,
    lease: &Lease,
    pct: f64,
    note: Option<&str>,
    now: Millis,
) -> Result<Refusable<TaskEvent>, StoreError> {
    let held = held!(check_lease(txn, lease, now));
    let new = machine::next(held.status, Event::Progress)
        .map_err(|e| StoreError::corrupt("tasks: progress", e))?;
    txn.prepare_cached(
        "UPDATE tasks SET status = ?2, progress = ?3, note = ?4, lease_until = ?5,
             updated_at = ?6 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            lease.id,
            new.as_str(),
            pct,
            note,
            now + held.lease_ms,
            now
        ])
    })
    .map_err(sql("tasks: progress"))?;
    let transition = Transition {
        id: lease.id,
        title: &held.title,
        old: Some(held.status),
        new,
        progress: pct,
        note,
        agent: Some(&lease.agent),
    };
    Ok(Ok(log(txn, transition, now)?))
}

pub(super) fn complete(
    txn: &Transaction<'_>,
    lease: &Lease,
    result: Option<&str>,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let held = held!(check_lease(txn, lease, now));
    let new = machine::next(held.status, Event::Complete)
        .map_err(|e| StoreError::corrupt("tasks: complete", e))?;
    txn.prepare_cached(
        "UPDATE tasks SET status = ?2, result = ?3, progress = 100, lease_until = NULL,
             due_at = NULL, updated_at = ?4 WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![lease.id, new.as_str(), result, now]))
    .map_err(sql("tasks: complete"))?;
    let transition = Transition {
        id: lease.id,
        title: &held.title,
        old: Some(held.status),
        new,
        progress: 100.0,
        note: None,
        agent: Some(&lease.agent),
    };
    let mut events = vec![log(txn, transition, now)?];
    deps::release(txn, lease.id, now, &mut events)?;
    Ok(Ok(events))
}

pub(super) fn fail(
    txn: &Transaction<'_>,
    lease: &Lease,
    error: &str,
    retry: bool,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let held = held!(check_lease(txn, lease, now));
    let attempts_left = held.attempts < held.max_attempts;
    let event = Event::Fail {
        retry,
        attempts_left,
    };
    let new =
        machine::next(held.status, event).map_err(|e| StoreError::corrupt("tasks: fail", e))?;
    let mut events = Vec::new();
    end_attempt(txn, lease.id, new, error, now)?;
    let transition = Transition {
        id: lease.id,
        title: &held.title,
        old: Some(held.status),
        new,
        progress: if new == Status::Ready {
            0.0
        } else {
            held.progress
        },
        note: Some(error),
        agent: Some(&lease.agent),
    };
    events.push(log(txn, transition, now)?);
    if new != Status::Ready {
        let reason = format!("task {} ({}) failed: {error}", lease.id, held.title);
        deps::block(txn, lease.id, &reason, now, &mut events)?;
    }
    Ok(Ok(events))
}

/// Ends the current attempt: back to `ready` for another claim (the holder forgotten, the
/// progress reset, since progress belongs to an attempt) or into a final status.
pub(super) fn end_attempt(
    txn: &Transaction<'_>,
    id: TaskId,
    new: Status,
    error: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let stmt = if new == Status::Ready {
        "UPDATE tasks SET status = ?2, error = ?3, agent = NULL, lease_until = NULL,
             lease_ms = NULL, progress = 0, note = NULL, updated_at = ?4 WHERE id = ?1"
    } else {
        "UPDATE tasks SET status = ?2, error = ?3, lease_until = NULL, due_at = NULL,
             updated_at = ?4 WHERE id = ?1"
    };
    txn.prepare_cached(stmt)
        .and_then(|mut s| s.execute(params![id, new.as_str(), error, now]))
        .map_err(sql("tasks: end attempt"))?;
    Ok(())
}

pub(super) fn cancel(
    txn: &Transaction<'_>,
    id: TaskId,
    reason: &str,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let row: Option<(String, String, Option<String>, f64)> = txn
        .prepare_cached("SELECT status, title, agent, progress FROM tasks WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(sql("tasks: read for cancel"))?;
    let Some((status, title, agent, progress)) = row else {
        return Ok(Err(Refusal::NotFound(id)));
    };
    let status = status_of(&status)?;
    let Ok(new) = machine::next(status, Event::Cancel) else {
        return Ok(Err(Refusal::Final { id, status }));
    };
    end_attempt(txn, id, new, reason, now)?;
    let transition = Transition {
        id,
        title: &title,
        old: Some(status),
        new,
        progress,
        note: Some(reason),
        agent: agent.as_deref(),
    };
    let mut events = vec![log(txn, transition, now)?];
    let why = format!("task {id} ({title}) was cancelled: {reason}");
    deps::block(txn, id, &why, now, &mut events)?;
    Ok(Ok(events))
}
