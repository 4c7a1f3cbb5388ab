//! [`TaskStore`] on PostgreSQL: the tables and transitions of `store::sqlite::tasks`, for
//! writers that run concurrently.
//!
//! Concurrency, where SQLite has one writer:
//! - a claim takes the best ready task `FOR UPDATE SKIP LOCKED`, and the sweep it runs
//!   first (lapsed leases, passed deadlines) skips rows another transaction holds, so
//!   claimers on every node pass each other instead of queueing;
//! - holder operations (heartbeat, progress, complete, fail) and cancel lock the task row
//!   before checking it, so a lapse applied by a sweep and a completion cannot both win;
//! - inserting a task reads its dependencies `FOR SHARE`: a dependency cannot finish
//!   between the insert reading its status and the new dependency edge being committed
//!   (which would leave the new task waiting for a release that already happened).

mod batch;
mod due;
mod quick;
mod read;
mod write;

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

pub(crate) use batch::TaskBatches;

use super::pool::Conn;
use super::{hold_test_clock, PgStore};
use crate::store::{Millis, Priority, Refusable, StoreError, TaskListener, TaskStore};
use crate::tasks::{
    AgentSummary, ClaimOutcome, ClaimQuery, Lease, ListFilter, NewTask, Status, Task, TaskEvent,
    TaskId,
};

/// Columns [`task_of`] reads, in order.
pub(super) const TASK_COLUMNS: &str = "id, plan_key, title, description, priority, status, \
    category, tags, payload, assignee, agent, attempts, max_attempts, progress, note, result, \
    error, lease_until, deadline, created_at, updated_at";

/// A row of [`TASK_COLUMNS`]; corrupt JSON or names are errors, not panics.
pub(super) fn task_of(row: &Row) -> Result<Task, StoreError> {
    let what = "tasks: read a task";
    let bad = |e: &dyn std::fmt::Display| StoreError::corrupt(what, e);
    let get = |e: tokio_postgres::Error| StoreError::corrupt(what, e);
    let rank: i64 = row.try_get(4).map_err(get)?;
    let status: String = row.try_get(5).map_err(get)?;
    let json = |i: usize| -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<String> = row.try_get(i).map_err(get)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| bad(&e)))
            .transpose()
    };
    let tags: Option<String> = row.try_get(7).map_err(get)?;
    Ok(Task {
        id: row.try_get(0).map_err(get)?,
        key: row.try_get(1).map_err(get)?,
        title: row.try_get(2).map_err(get)?,
        description: row.try_get(3).map_err(get)?,
        priority: Priority::from_rank(rank).ok_or_else(|| bad(&format!("priority {rank}")))?,
        status: status_of(&status)?,
        category: row.try_get(6).map_err(get)?,
        tags: match tags {
            Some(t) => serde_json::from_str(&t).map_err(|e| bad(&e))?,
            None => Vec::new(),
        },
        payload: json(8)?,
        assignee: row.try_get(9).map_err(get)?,
        agent: row.try_get(10).map_err(get)?,
        attempts: count(row.try_get(11).map_err(get)?),
        max_attempts: count(row.try_get(12).map_err(get)?),
        progress: row.try_get(13).map_err(get)?,
        note: row.try_get(14).map_err(get)?,
        result: json(15)?,
        error: row.try_get(16).map_err(get)?,
        lease_until: row.try_get(17).map_err(get)?,
        deadline: row.try_get(18).map_err(get)?,
        created_at: row.try_get(19).map_err(get)?,
        updated_at: row.try_get(20).map_err(get)?,
        depends_on: Vec::new(),
    })
}

pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn status_of(text: &str) -> Result<Status, StoreError> {
    text.parse()
        .map_err(|e| StoreError::corrupt("tasks: read status", e))
}

/// One transition to log: everything but its `seq`, which the insert assigns.
pub(super) struct Transition<'a> {
    pub id: TaskId,
    pub title: &'a str,
    pub old: Option<Status>,
    pub new: Status,
    pub progress: f64,
    pub note: Option<&'a str>,
    pub agent: Option<&'a str>,
}

/// Appends a transition to `task_events` and returns it as the event to publish.
pub(super) async fn log(
    c: &mut Conn,
    t: Transition<'_>,
    now: Millis,
) -> Result<TaskEvent, StoreError> {
    let row = c
        .query_one(
            "tasks: log transition",
            "INSERT INTO task_events (task_id, old_status, new_status, progress, note, agent, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &t.id,
                &t.old.map(Status::as_str),
                &t.new.as_str(),
                &t.progress,
                &t.note,
                &t.agent,
                &now,
            ],
        )
        .await?;
    Ok(TaskEvent {
        seq: row.get(0),
        id: t.id,
        title: t.title.to_string(),
        old: t.old,
        new: t.new,
        progress: t.progress,
        note: t.note.map(str::to_string),
        agent: t.agent.map(str::to_string),
        at: now,
    })
}

impl PgStore {
    /// Passes `result` through, announcing it to other nodes when `changed` says it
    /// committed transitions.
    fn announced<T>(
        &self,
        result: Result<T, StoreError>,
        changed: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        if result.as_ref().is_ok_and(changed) {
            self.task_batches.announce();
        }
        result
    }
}

impl TaskStore for PgStore {
    fn insert_tasks(
        &self,
        tasks: Vec<NewTask>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(async move {
            if let [t] = tasks.as_slice() {
                if t.depends_on.is_empty() {
                    let batched = self.task_batches.insert(t.clone(), now);
                    return match hold_test_clock(batched).await {
                        Ok(event) => {
                            self.task_batches.announce();
                            Ok(Ok(vec![event]))
                        }
                        // Nothing of a failed batch was stored; this caller's own error.
                        Err(e) => Err(StoreError::Io {
                            what: "tasks: add a task".into(),
                            source: std::io::Error::other(e.to_string()),
                        }),
                    };
                }
            }
            let inserted = self
                .in_transaction(move |c| {
                    Box::pin(async move { write::insert(c, &tasks, now).await })
                })
                .await;
            self.announced(inserted, |r| matches!(r, Ok(e) if !e.is_empty()))
        })
    }

    fn claim_task(
        &self,
        query: ClaimQuery,
        now: Millis,
    ) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            let batched = self.task_batches.claim(query.clone(), now);
            let claimed = match hold_test_clock(batched).await {
                Ok(outcome) => Ok(outcome),
                // The batch failed: this claim alone, with its own sweep and its own error.
                Err(_) => {
                    self.in_transaction(move |c| {
                        Box::pin(async move { write::claim(c, &query, now).await })
                    })
                    .await
                }
            };
            self.announced(claimed, |o| !o.events.is_empty())
        })
    }

    fn heartbeat_task(
        &self,
        lease: Lease,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Millis>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move { write::heartbeat(c, &lease, now).await })
        }))
    }

    fn progress_task(
        &self,
        lease: Lease,
        pct: f64,
        note: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<TaskEvent>, StoreError>> {
        Box::pin(async move {
            let progressed = self
                .in_transaction(move |c| {
                    Box::pin(
                        async move { write::progress(c, &lease, pct, note.as_deref(), now).await },
                    )
                })
                .await;
            self.announced(progressed, Result::is_ok)
        })
    }

    fn complete_task(
        &self,
        lease: Lease,
        result: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(async move {
            let batched = self
                .task_batches
                .complete(lease.clone(), result.clone(), now);
            if let Ok(Some(event)) = hold_test_clock(batched).await {
                self.task_batches.announce();
                return Ok(Ok(vec![event]));
            }
            // A refusal to explain, dependents to release, or a failed batch: the full
            // completion, in a transaction.
            let completed = self
                .in_transaction(move |c| {
                    Box::pin(
                        async move { write::complete(c, &lease, result.as_deref(), now).await },
                    )
                })
                .await;
            self.announced(completed, Result::is_ok)
        })
    }

    fn fail_task(
        &self,
        lease: Lease,
        error: String,
        retry: bool,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(async move {
            let failed = self
                .in_transaction(move |c| {
                    Box::pin(async move { write::fail(c, &lease, &error, retry, now).await })
                })
                .await;
            self.announced(failed, Result::is_ok)
        })
    }

    fn cancel_task(
        &self,
        id: TaskId,
        reason: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(async move {
            let cancelled = self
                .in_transaction(move |c| {
                    Box::pin(async move { write::cancel(c, id, &reason, now).await })
                })
                .await;
            self.announced(cancelled, Result::is_ok)
        })
    }

    fn sweep_tasks(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        Box::pin(async move {
            let swept = self
                .in_transaction(move |c| {
                    Box::pin(async move {
                        let mut events = Vec::new();
                        due::sweep(c, now, limit, &mut events).await?;
                        Ok(events)
                    })
                })
                .await;
            self.announced(swept, |e| !e.is_empty())
        })
    }

    fn get_task(&self, id: TaskId) -> BoxFuture<'_, Result<Option<Task>, StoreError>> {
        Box::pin(self.on_connection(move |c| Box::pin(async move { read::get(c, id).await })))
    }

    fn list_tasks(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Task>, StoreError>> {
        Box::pin(self.on_connection(move |c| Box::pin(async move { read::list(c, &filter).await })))
    }

    fn task_counts(&self) -> BoxFuture<'_, Result<Vec<(Status, u64)>, StoreError>> {
        Box::pin(self.on_connection(|c| Box::pin(async move { read::counts(c).await })))
    }

    fn agent_summary(&self) -> BoxFuture<'_, Result<Vec<AgentSummary>, StoreError>> {
        Box::pin(self.on_connection(|c| Box::pin(async move { read::agent_summary(c).await })))
    }

    fn task_edges(
        &self,
        ids: Option<Vec<TaskId>>,
    ) -> BoxFuture<'_, Result<Vec<(TaskId, TaskId)>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { read::edges(c, ids.as_deref()).await })
            }),
        )
    }

    fn task_events(
        &self,
        after: i64,
        limit: usize,
        task: Option<TaskId>,
    ) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { read::events(c, after, limit, task).await })
        }))
    }

    fn last_task_event(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.on_connection(|c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "tasks: read last event",
                        "SELECT COALESCE(MAX(id), 0)::bigint FROM task_events",
                        &[],
                    )
                    .await?;
                Ok(row.get(0))
            })
        }))
    }

    fn prune_task_events(&self, keep: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(
            self.on_connection(move |c| Box::pin(async move { due::prune_events(c, keep).await })),
        )
    }

    fn task_events_at(&self, seqs: Vec<i64>) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| Box::pin(async move { read::events_at(c, &seqs).await })),
        )
    }

    fn listen_tasks(&self) -> BoxFuture<'_, Result<Option<TaskListener>, StoreError>> {
        Box::pin(async move {
            let listener = self.listen_on(self.task_batches.channel()).await?;
            Ok(Some(listener))
        })
    }
}
