//! Tasks: the unit of work the swarm shares. Plain Rust; `lua/tasks.rs` binds it as
//! `dreamos.tasks` and `cli/task` drives it from the command line.
//!
//! How the pieces fit:
//! - [`Tasks`] is a cheap handle (clone it freely) over the durable state in a
//!   [`TaskStore`] plus what only lives in this process: the wake-up for waiting claims
//!   and the bus that carries `tasks.events`.
//! - [`machine`] is the state machine every backend applies; [`dag`] orders a batch of new
//!   tasks by dependency or names its cycle; [`plan`] reads plan files; [`graph`] draws the
//!   dependency tree; [`validate`] checks arguments the same way for every caller.
//! - [`claim`](Tasks::claim) is atomic because the store applies claims one at a time
//!   (SQLite: one writer thread; PostgreSQL: `FOR UPDATE SKIP LOCKED`). A claim that waits
//!   sleeps on a `Notify` woken by every transition to `ready` in this process, and on a
//!   timer for the next lease expiry and for a slow re-check that notices other processes.
//!
//! Events: every committed transition is logged in the store *and* published on the bus
//! topic [`TOPIC`] in this process. On a store several nodes share (PostgreSQL), each
//! process also tails the log and publishes what other nodes committed, once ([`follow`]),
//! so watchers and waiting claims on every node hear every node. A `dreamos task watch`
//! terminal on SQLite cannot hear another process's bus; it tails the store's event log
//! itself, woken by the kernel when the database's write-ahead log is written (inotify;
//! elsewhere every `tasks.watch_interval`), see `cli/task/wake.rs`.
//!
//! Time comes from tokio's clock ([`Clock`]), so tests pause and advance it.

pub mod config;
pub mod dag;
mod error;
mod follow;
pub mod graph;
pub mod machine;
pub mod plan;
mod types;
pub mod validate;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use config::TasksConfig;
pub use error::TaskError;
pub use types::*;

use crate::bus::clock::{millis, Clock};
use crate::bus::{Bus, Subscription};
use crate::store::TaskStore;

/// The bus topic every transition is published on.
pub const TOPIC: &str = "tasks.events";
/// Lapsed leases and deadlines one explicit sweep applies.
const SWEEP_LIMIT: usize = 1000;
/// Reads sweep first at most this often, so a loop of `list` calls does not queue a
/// write behind every read.
const READ_SWEEP_EVERY: i64 = 100;
/// How often, at most, the event log is trimmed to `tasks.event_retention`.
const PRUNE_EVERY: i64 = 60_000;

/// A task as a caller describes it to [`Tasks::add`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSpec {
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub depends_on: Vec<TaskId>,
    pub assignee: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub payload: Option<serde_json::Value>,
    /// `tasks.max_attempts` when `None`.
    pub max_attempts: Option<u32>,
    /// From now.
    pub deadline: Option<Duration>,
}

/// What [`Tasks::claim`] asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimRequest {
    pub agent: String,
    pub category: Option<String>,
    /// Only tasks carrying every one of these tags.
    pub tags: Vec<String>,
    /// `tasks.lease` when `None`.
    pub lease: Option<Duration>,
    /// Wait up to this long for a matching task; `None` answers at once.
    pub wait: Option<Duration>,
}

/// The task service. Clone it to share; all clones are the same service.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TaskStore>,
    /// Carries [`TOPIC`] to subscribers in this process (`tasks.watch`, `bus.subscribe`).
    bus: Bus,
    config: TasksConfig,
    clock: Clock,
    /// Shared by every service over the same store in this process (each Lua state has
    /// its own service): the wake-up of waiting claims, woken whenever a transition to
    /// `ready` commits, so they try again at once instead of polling; and the tail of
    /// other nodes' events.
    node: Arc<follow::Node>,
    /// When reads last swept, and when the event log was last trimmed (ms).
    last_read_sweep: AtomicI64,
    last_prune: AtomicI64,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Tasks {
    /// A service over `store`, publishing on `bus`. Fails only if `config` does not validate.
    pub fn new(
        store: Arc<dyn TaskStore>,
        bus: Bus,
        config: TasksConfig,
    ) -> Result<Tasks, TaskError> {
        config
            .validate()
            .map_err(|reason| TaskError::invalid("tasks", reason))?;
        let clock = Clock::new();
        let now = clock.now();
        let node = follow::node_of(&store, &bus);
        Ok(Tasks {
            inner: Arc::new(Inner {
                store,
                bus,
                config,
                clock,
                node,
                last_read_sweep: AtomicI64::new(i64::MIN),
                last_prune: AtomicI64::new(now),
            }),
        })
    }

    pub fn config(&self) -> &TasksConfig {
        &self.inner.config
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.inner.store
    }

    /// The service's current time (ms since the epoch), on tokio's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Whether two handles are the same service.
    pub fn same(&self, other: &Tasks) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Adds one task; returns its id once it is committed.
    pub async fn add(&self, spec: TaskSpec) -> Result<TaskId, TaskError> {
        validate::spec(&spec)?;
        let mut depends_on = spec.depends_on.clone();
        depends_on.sort_unstable();
        depends_on.dedup();
        let deps = depends_on.into_iter().map(DepRef::Existing).collect();
        let new = self.prepare(spec, None, deps)?;
        let events = self.insert(vec![new]).await?;
        events
            .first()
            .map(|e| e.id)
            .ok_or_else(|| TaskError::Plan("the store created no task".into()))
    }

    /// Validates and serializes one task for insertion.
    fn prepare(
        &self,
        spec: TaskSpec,
        key: Option<String>,
        depends_on: Vec<DepRef>,
    ) -> Result<NewTask, TaskError> {
        let payload = match &spec.payload {
            Some(v) => {
                let text = serde_json::to_string(v)
                    .map_err(|e| TaskError::invalid("payload", format!("payload: {e}")))?;
                validate::json_size("payload", &text, self.inner.config.max_payload)?;
                Some(text)
            }
            None => None,
        };
        let now = self.now();
        Ok(NewTask {
            key,
            title: spec.title,
            description: spec.description,
            priority: spec.priority,
            category: spec.category,
            tags: spec.tags,
            payload,
            assignee: spec.assignee,
            max_attempts: spec.max_attempts.unwrap_or(self.inner.config.max_attempts),
            deadline: spec.deadline.map(|d| now.saturating_add(millis(d))),
            depends_on,
        })
    }

    /// Stores a batch in dependency order (all or nothing) and publishes its events.
    async fn insert(&self, batch: Vec<NewTask>) -> Result<Vec<TaskEvent>, TaskError> {
        let events = self.inner.store.insert_tasks(batch, self.now()).await??;
        self.publish(&events);
        Ok(events)
    }

    /// Claims the best ready task matching `req` under a lease, waiting up to `req.wait`.
    /// `None` when nothing matched in time.
    pub async fn claim(&self, req: ClaimRequest) -> Result<Option<Task>, TaskError> {
        validate::name("agent", &req.agent)?;
        if let Some(c) = &req.category {
            validate::name("category", c)?;
        }
        validate::tags(&req.tags)?;
        let lease = req.lease.unwrap_or(self.inner.config.lease);
        validate::lease(lease)?;
        let query = ClaimQuery {
            agent: req.agent,
            category: req.category,
            tags: req.tags,
            lease_ms: millis(lease),
        };
        let deadline = req.wait.map(|w| Instant::now() + w);
        loop {
            // Registered before the attempt, so a task that becomes ready while the claim
            // is on its way to the store still wakes this waiter.
            let notified = self.inner.node.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let outcome = self
                .inner
                .store
                .claim_task(query.clone(), self.now())
                .await?;
            self.publish(&outcome.events);
            if outcome.task.is_some() {
                return Ok(outcome.task);
            }
            let Some(deadline) = deadline else {
                return Ok(None);
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let mut wake = deadline.min(now + self.inner.config.claim_recheck);
            if let Some(at) = outcome.next_expiry {
                // A lease lapsing puts a task back: look again just after it does.
                wake = wake.min(self.inner.clock.instant_of(at.saturating_add(1)));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Renews the lease for its full length from now; returns when it now ends.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<Millis, TaskError> {
        Ok(self
            .inner
            .store
            .heartbeat_task(lease.clone(), self.now())
            .await??)
    }

    /// Reports progress (0 to 100) with an optional note; also renews the lease.
    pub async fn progress(
        &self,
        lease: &Lease,
        pct: f64,
        note: Option<String>,
    ) -> Result<(), TaskError> {
        validate::progress(pct)?;
        if let Some(n) = &note {
            validate::text("note", n, validate::MAX_TEXT)?;
        }
        let event = self
            .inner
            .store
            .progress_task(lease.clone(), pct, note, self.now())
            .await??;
        self.publish(std::slice::from_ref(&event));
        Ok(())
    }

    /// Completes the task with an optional result; dependents may become ready.
    pub async fn complete(
        &self,
        lease: &Lease,
        result: Option<serde_json::Value>,
    ) -> Result<(), TaskError> {
        let result = match result {
            Some(v) => {
                let text = serde_json::to_string(&v)
                    .map_err(|e| TaskError::invalid("result", format!("result: {e}")))?;
                validate::json_size("result", &text, self.inner.config.max_payload)?;
                Some(text)
            }
            None => None,
        };
        let events = self
            .inner
            .store
            .complete_task(lease.clone(), result, self.now())
            .await??;
        self.publish(&events);
        Ok(())
    }

    /// Fails the current attempt. With `retry` and attempts left, the task is `ready`
    /// again; otherwise `failed` and its dependents `blocked`. Returns the new status.
    pub async fn fail(&self, lease: &Lease, error: &str, retry: bool) -> Result<Status, TaskError> {
        validate::text("error", error, validate::MAX_TEXT)?;
        let events = self
            .inner
            .store
            .fail_task(lease.clone(), error.to_string(), retry, self.now())
            .await??;
        self.publish(&events);
        Ok(events.first().map_or(Status::Failed, |e| e.new))
    }

    /// Cancels a task that is not final; its dependents are `blocked`.
    pub async fn cancel(&self, id: TaskId, reason: &str) -> Result<(), TaskError> {
        validate::text("reason", reason, validate::MAX_TEXT)?;
        let events = self
            .inner
            .store
            .cancel_task(id, reason.to_string(), self.now())
            .await??;
        self.publish(&events);
        Ok(())
    }

    /// Applies lapsed leases and passed deadlines now (claims do this on their own);
    /// returns how many transitions that made.
    pub async fn sweep(&self) -> Result<usize, TaskError> {
        let now = self.now();
        self.inner.last_read_sweep.store(now, Ordering::Relaxed);
        let events = self.inner.store.sweep_tasks(now, SWEEP_LIMIT).await?;
        self.publish(&events);
        Ok(events.len())
    }

    /// Reads show what time made due, but sweep at most every [`READ_SWEEP_EVERY`] ms.
    async fn sweep_before_read(&self) -> Result<(), TaskError> {
        let last = self.inner.last_read_sweep.load(Ordering::Relaxed);
        if self.now().saturating_sub(last) >= READ_SWEEP_EVERY {
            self.sweep().await?;
        }
        Ok(())
    }

    /// One task, with the ids it depends on.
    pub async fn get(&self, id: TaskId) -> Result<Option<Task>, TaskError> {
        self.sweep_before_read().await?;
        Ok(self.inner.store.get_task(id).await?)
    }

    /// Tasks matching `filter`, by priority then age; `limit` 0 means 100.
    pub async fn list(&self, mut filter: ListFilter) -> Result<Vec<Task>, TaskError> {
        self.sweep_before_read().await?;
        if filter.limit == 0 {
            filter.limit = 100;
        }
        Ok(self.inner.store.list_tasks(filter).await?)
    }

    /// How many tasks are in each status.
    pub async fn counts(&self) -> Result<Vec<(Status, u64)>, TaskError> {
        self.sweep_before_read().await?;
        Ok(self.inner.store.task_counts().await?)
    }

    /// Per agent, its tasks by status.
    pub async fn summary_by_agent(&self) -> Result<Vec<AgentSummary>, TaskError> {
        self.sweep_before_read().await?;
        Ok(self.inner.store.agent_summary().await?)
    }

    /// Returns once transitions other nodes commit from now on reach this process's bus
    /// and wake its claims (at once on a store only this process writes).
    pub async fn following(&self) {
        self.inner.node.following().await;
    }

    /// Subscribes to [`TOPIC`] on this service's bus.
    pub fn subscribe(&self) -> Result<Subscription, TaskError> {
        self.inner
            .bus
            .subscribe(TOPIC)
            .map_err(|e| TaskError::invalid("watch", e.to_string()))
    }

    /// Publishes committed transitions and wakes waiting claims if any made a task ready.
    fn publish(&self, events: &[TaskEvent]) {
        follow::publish_local(&self.inner.node, &self.inner.bus, events);
        self.maybe_prune();
    }

    /// Trims the event log in the background, at most every [`PRUNE_EVERY`] ms.
    fn maybe_prune(&self) {
        let now = self.now();
        let last = self.inner.last_prune.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PRUNE_EVERY
            || self
                .inner
                .last_prune
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (store, keep) = (self.inner.store.clone(), self.inner.config.event_retention);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // One chunk per write job, so the writer never stops for long.
                while let Ok(n) = store.prune_task_events(keep).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    }
}
