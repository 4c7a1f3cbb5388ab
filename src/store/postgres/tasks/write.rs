//! Every task transition, each in its caller's transaction; checks come first and refuse
//! without writing, and new statuses come from [`machine::next`], as on SQLite
//! (`store::sqlite::tasks::write`).

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::{count, due, log, status_of, task_of, Transition, TASK_COLUMNS};
use crate::store::postgres::pool::Conn;
use crate::store::{Millis, Refusable, StoreError};
use crate::tasks::machine::{self, Event};
use crate::tasks::{
    ClaimOutcome, ClaimQuery, DepRef, Lease, NewTask, Refusal, Status, TaskEvent, TaskId,
};

/// Lapsed leases and passed deadlines one claim applies before it looks for a task.
pub(super) const SWEEP_PER_CLAIM: usize = 64;

pub(super) async fn insert(
    c: &mut Conn,
    tasks: &[NewTask],
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    // Every check before the first write: a refusal must leave nothing behind. `FOR
    // SHARE` keeps each dependency's status as read until this transaction ends.
    let mut existing: HashMap<TaskId, Status> = HashMap::new();
    for t in tasks {
        for dep in &t.depends_on {
            let DepRef::Existing(id) = *dep else { continue };
            if existing.contains_key(&id) {
                continue;
            }
            let row = c
                .query_opt(
                    "tasks: read dependency",
                    "SELECT status FROM tasks WHERE id = $1 FOR SHARE",
                    &[&id],
                )
                .await?;
            match row {
                Some(r) => existing.insert(id, status_of(&r.get::<_, String>(0))?),
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
        // A task born blocked is final: its deadline no longer matters.
        let due_at = if status.is_final() { None } else { t.deadline };
        let row = c
            .query_one(
                "tasks: insert",
                "INSERT INTO tasks (plan_key, title, description, priority, status, category,
                     tags, payload, assignee, max_attempts, unmet, error, deadline, due_at,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
                 RETURNING id",
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
                    &unmet,
                    &error,
                    &t.deadline,
                    &due_at,
                    &now,
                ],
            )
            .await?;
        let id: TaskId = row.get(0);
        for (dep, _) in &deps {
            c.execute(
                "tasks: insert dependency",
                "INSERT INTO task_deps (task_id, depends_on) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&id, dep],
            )
            .await?;
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
        events.push(log(c, transition, now).await?);
    }
    Ok(Ok(events))
}

pub(super) async fn claim(
    c: &mut Conn,
    q: &ClaimQuery,
    now: Millis,
) -> Result<ClaimOutcome, StoreError> {
    let mut out = ClaimOutcome::default();
    due::sweep(c, now, SWEEP_PER_CLAIM, &mut out.events).await?;
    let (query, args) = ready_query(q);
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let Some(row) = c
        .query_opt("tasks: find a ready task", &query, &params)
        .await?
    else {
        out.next_expiry = c
            .query_one(
                "tasks: find the next lease expiry",
                "SELECT MIN(lease_until) FROM tasks WHERE lease_until IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        return Ok(out);
    };
    let id: TaskId = row.get(0);
    let new = machine::next(Status::Ready, Event::Claim)
        .map_err(|e| StoreError::corrupt("tasks: claim", e))?;
    let row = c
        .query_one(
            "tasks: claim",
            &format!(
                "UPDATE tasks SET status = $2, agent = $3, attempts = attempts + 1,
                     lease_ms = $4, lease_until = $5, progress = 0, note = NULL, updated_at = $6
                 WHERE id = $1 RETURNING {TASK_COLUMNS}"
            ),
            &[
                &id,
                &new.as_str(),
                &q.agent,
                &q.lease_ms,
                &(now + q.lease_ms),
                &now,
            ],
        )
        .await?;
    let task = task_of(&row)?;
    let transition = Transition {
        id,
        title: &task.title,
        old: Some(Status::Ready),
        new,
        progress: 0.0,
        note: None,
        agent: Some(&q.agent),
    };
    out.events.push(log(c, transition, now).await?);
    out.task = Some(task);
    Ok(out)
}

/// The claim's query and its arguments: the best ready task for `q` (highest priority,
/// then oldest), locked, skipping tasks another claimer holds locked right now.
pub(super) fn ready_query(q: &ClaimQuery) -> (String, Vec<String>) {
    let mut query = String::from(
        "SELECT id FROM tasks WHERE status = 'ready' AND (assignee IS NULL OR assignee = $1)",
    );
    let mut args: Vec<String> = vec![q.agent.clone()];
    if let Some(category) = &q.category {
        args.push(category.clone());
        query.push_str(&format!(
            " AND category IS NOT NULL AND category = ${}",
            args.len()
        ));
    }
    for tag in &q.tags {
        // Tags are stored as a JSON array and a tag cannot contain a quote, so the quoted
        // tag appears in the text exactly when the task carries it.
        args.push(format!("\"{tag}\""));
        query.push_str(&format!(" AND strpos(tags, ${}) > 0", args.len()));
    }
    query.push_str(" ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED");
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

/// Locks the task and refuses unless `lease` is its current, unexpired claim.
async fn check_lease(
    c: &mut Conn,
    lease: &Lease,
    now: Millis,
) -> Result<Refusable<Held>, StoreError> {
    let row = c
        .query_opt(
            "tasks: read lease",
            "SELECT status, agent, attempts, max_attempts, lease_until, lease_ms, title, progress
             FROM tasks WHERE id = $1 FOR UPDATE",
            &[&lease.id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Err(Refusal::NotFound(lease.id)));
    };
    let status = status_of(&r.get::<_, String>(0))?;
    let agent: Option<String> = r.get(1);
    let attempts = count(r.get(2));
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
    let until = r.get::<_, Option<i64>>(4).unwrap_or(now);
    if until <= now {
        return Ok(Err(Refusal::LeaseExpired {
            lease: lease.clone(),
            at: until,
        }));
    }
    Ok(Ok(Held {
        status,
        title: r.get(6),
        progress: r.get(7),
        lease_ms: r.get::<_, Option<i64>>(5).unwrap_or(0),
        attempts,
        max_attempts: count(r.get(3)),
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

pub(super) async fn heartbeat(
    c: &mut Conn,
    lease: &Lease,
    now: Millis,
) -> Result<Refusable<Millis>, StoreError> {
    let held = held!(check_lease(c, lease, now).await);
    let until = now + held.lease_ms;
    c.execute(
        "tasks: heartbeat",
        "UPDATE tasks SET lease_until = $2 WHERE id = $1",
        &[&lease.id, &until],
    )
    .await?;
    Ok(Ok(until))
}

pub(super) async fn progress(
    c: &mut Conn,
    lease: &Lease,
    pct: f64,
    note: Option<&str>,
    now: Millis,
) -> Result<Refusable<TaskEvent>, StoreError> {
    let held = held!(check_lease(c, lease, now).await);
    let new = machine::next(held.status, Event::Progress)
        .map_err(|e| StoreError::corrupt("tasks: progress", e))?;
    c.execute(
        "tasks: progress",
        "UPDATE tasks SET status = $2, progress = $3, note = $4, lease_until = $5,
             updated_at = $6 WHERE id = $1",
        &[
            &lease.id,
            &new.as_str(),
            &pct,
            &note,
            &(now + held.lease_ms),
            &now,
        ],
    )
    .await?;
    let transition = Transition {
        id: lease.id,
        title: &held.title,
        old: Some(held.status),
        new,
        progress: pct,
        note,
        agent: Some(&lease.agent),
    };
    Ok(Ok(log(c, transition, now).await?))
}

pub(super) async fn complete(
    c: &mut Conn,
    lease: &Lease,
    result: Option<&str>,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let held = held!(check_lease(c, lease, now).await);
    let new = machine::next(held.status, Event::Complete)
        .map_err(|e| StoreError::corrupt("tasks: complete", e))?;
    c.execute(
        "tasks: complete",
        "UPDATE tasks SET status = $2, result = $3, progress = 100, lease_until = NULL,
             due_at = NULL, updated_at = $4 WHERE id = $1",
        &[&lease.id, &new.as_str(), &result, &now],
    )
    .await?;
    let transition = Transition {
        id: lease.id,
        title: &held.title,
        old: Some(held.status),
        new,
        progress: 100.0,
        note: None,
        agent: Some(&lease.agent),
    };
    let mut events = vec![log(c, transition, now).await?];
    due::release(c, lease.id, now, &mut events).await?;
    Ok(Ok(events))
}

pub(super) async fn fail(
    c: &mut Conn,
    lease: &Lease,
    error: &str,
    retry: bool,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let held = held!(check_lease(c, lease, now).await);
    let attempts_left = held.attempts < held.max_attempts;
    let event = Event::Fail {
        retry,
        attempts_left,
    };
    let new =
        machine::next(held.status, event).map_err(|e| StoreError::corrupt("tasks: fail", e))?;
    end_attempt(c, lease.id, new, error, now).await?;
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
    let mut events = vec![log(c, transition, now).await?];
    if new != Status::Ready {
        let reason = format!("task {} ({}) failed: {error}", lease.id, held.title);
        due::block(c, lease.id, &reason, now, &mut events).await?;
    }
    Ok(Ok(events))
}

/// Ends the current attempt: back to `ready` for another claim (the holder forgotten, the
/// progress reset) or into a final status.
pub(super) async fn end_attempt(
    c: &mut Conn,
    id: TaskId,
    new: Status,
    error: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let stmt = if new == Status::Ready {
        "UPDATE tasks SET status = $2, error = $3, agent = NULL, lease_until = NULL,
             lease_ms = NULL, progress = 0, note = NULL, updated_at = $4 WHERE id = $1"
    } else {
        "UPDATE tasks SET status = $2, error = $3, lease_until = NULL, due_at = NULL,
             updated_at = $4 WHERE id = $1"
    };
    c.execute(
        "tasks: end attempt",
        stmt,
        &[&id, &new.as_str(), &error, &now],
    )
    .await?;
    Ok(())
}

pub(super) async fn cancel(
    c: &mut Conn,
    id: TaskId,
    reason: &str,
    now: Millis,
) -> Result<Refusable<Vec<TaskEvent>>, StoreError> {
    let row = c
        .query_opt(
            "tasks: read for cancel",
            "SELECT status, title, agent, progress FROM tasks WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(Err(Refusal::NotFound(id)));
    };
    let status = status_of(&r.get::<_, String>(0))?;
    let title: String = r.get(1);
    let agent: Option<String> = r.get(2);
    let progress: f64 = r.get(3);
    let Ok(new) = machine::next(status, Event::Cancel) else {
        return Ok(Err(Refusal::Final { id, status }));
    };
    end_attempt(c, id, new, reason, now).await?;
    let transition = Transition {
        id,
        title: &title,
        old: Some(status),
        new,
        progress,
        note: Some(reason),
        agent: agent.as_deref(),
    };
    let mut events = vec![log(c, transition, now).await?];
    let why = format!("task {id} ({title}) was cancelled: {reason}");
    due::block(c, id, &why, now, &mut events).await?;
    Ok(Ok(events))
}
