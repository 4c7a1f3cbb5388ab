//! The task service's durable state: [`TaskStore`].

use futures_util::future::BoxFuture;

use super::*;

/// A task operation the store may refuse (nothing changed) before it does anything.
pub type Refusable<T> = Result<T, crate::tasks::Refusal>;

/// Durable state of the task service ([`crate::tasks`]). Every method is one atomic step,
/// committed before its future resolves; every transition it applies is also appended to
/// the transition log and returned as a [`TaskEvent`](crate::tasks::TaskEvent), so the
/// service can publish exactly what was committed.
///
/// Semantics the service relies on (the status rules themselves are
/// [`crate::tasks::machine::next`]):
/// - `insert_tasks` stores the whole batch or nothing. The batch is in dependency order.
/// - `claim_task` first applies what time made due (lapsed leases back to `ready` or
///   `failed`, passed deadlines to `timeout`), then hands out the highest-priority
///   `ready` task matching the query, oldest first, counting one attempt. Two claims never
///   get the same task: claims run one at a time against the current state.
/// - Holder operations (`heartbeat`, `progress`, `complete`, `fail`) check the lease:
///   same agent, same attempt, not expired, else a [`Refusal`](crate::tasks::Refusal).
/// - Ending a task without `done` blocks its pending dependents, transitively; `done`
///   makes each dependent whose dependencies are now all done `ready`.
/// - Tasks are never deleted; the transition log is pruned to the newest `keep` events.
///
/// Portable SQL: partial indexes and `RETURNING` exist in SQLite and PostgreSQL alike; the
/// PostgreSQL claim adds `FOR UPDATE SKIP LOCKED` so that claimers on several nodes do not
/// queue behind one row lock.
pub trait TaskStore: Send + Sync + 'static {
    /// Inserts new tasks (all or none); one creation event per task, in batch order.
    fn insert_tasks(
        &self,
        tasks: Vec<crate::tasks::NewTask>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<crate::tasks::TaskEvent>>, StoreError>>;

    /// Applies due expiries, then claims the best matching ready task, if any.
    fn claim_task(
        &self,
        query: crate::tasks::ClaimQuery,
        now: Millis,
    ) -> BoxFuture<'_, Result<crate::tasks::ClaimOutcome, StoreError>>;

    /// Extends the lease by its own length from `now`; returns the new end.
    fn heartbeat_task(
        &self,
        lease: crate::tasks::Lease,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Millis>, StoreError>>;

    /// Records progress (0..=100) and a note; the task is `running` afterwards and its
    /// lease is extended as by a heartbeat.
    fn progress_task(
        &self,
        lease: crate::tasks::Lease,
        pct: f64,
        note: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<crate::tasks::TaskEvent>, StoreError>>;

    /// Marks the task `done` with an optional result (serialized JSON).
    fn complete_task(
        &self,
        lease: crate::tasks::Lease,
        result: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<crate::tasks::TaskEvent>>, StoreError>>;

    /// Fails the current attempt: back to `ready` if `retry` and attempts remain, else
    /// `failed`.
    fn fail_task(
        &self,
        lease: crate::tasks::Lease,
        error: String,
        retry: bool,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<crate::tasks::TaskEvent>>, StoreError>>;

    /// Cancels a task that is not final.
    fn cancel_task(
        &self,
        id: crate::tasks::TaskId,
        reason: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<crate::tasks::TaskEvent>>, StoreError>>;

    /// Applies up to `limit` due lease lapses and deadlines without claiming.
    fn sweep_tasks(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::tasks::TaskEvent>, StoreError>>;

    /// One task with its dependencies' ids.
    fn get_task(
        &self,
        id: crate::tasks::TaskId,
    ) -> BoxFuture<'_, Result<Option<crate::tasks::Task>, StoreError>>;

    /// Tasks matching `filter`, by priority then age.
    fn list_tasks(
        &self,
        filter: crate::tasks::ListFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::tasks::Task>, StoreError>>;

    /// How many tasks are in each status (statuses with none left out).
    fn task_counts(&self) -> BoxFuture<'_, Result<Vec<(crate::tasks::Status, u64)>, StoreError>>;

    /// Per agent, how many tasks it holds or finished, by status.
    fn agent_summary(&self) -> BoxFuture<'_, Result<Vec<crate::tasks::AgentSummary>, StoreError>>;

    /// Dependency edges `(task, depends_on)` touching `ids` (either end), or all edges.
    fn task_edges(
        &self,
        ids: Option<Vec<crate::tasks::TaskId>>,
    ) -> BoxFuture<'_, Result<Vec<(crate::tasks::TaskId, crate::tasks::TaskId)>, StoreError>>;

    /// Logged transitions after event `after`, oldest first (of one task if given).
    fn task_events(
        &self,
        after: i64,
        limit: usize,
        task: Option<crate::tasks::TaskId>,
    ) -> BoxFuture<'_, Result<Vec<crate::tasks::TaskEvent>, StoreError>>;

    /// The newest logged event's `seq` (0 when none): where a tail starts.
    fn last_task_event(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Deletes all but the newest `keep` logged events; returns how many went.
    fn prune_task_events(&self, keep: u64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The logged events among `seqs` (those that exist), oldest first: an event tail
    /// looks again for numbers it skipped, which a transaction still open held back.
    fn task_events_at(
        &self,
        seqs: Vec<i64>,
    ) -> BoxFuture<'_, Result<Vec<crate::tasks::TaskEvent>, StoreError>>;

    /// A wake-up for every batch of task transitions any node commits from now on, for a
    /// store that several nodes share (PostgreSQL: `LISTEN`); `None` where this process
    /// is the only writer that matters (SQLite).
    fn listen_tasks(&self) -> BoxFuture<'_, Result<Option<TaskListener>, StoreError>>;
}

/// Wake-ups from [`TaskStore::listen_tasks`]: `recv` returns once per notification and
/// `None` when the connection is gone.
pub type TaskListener = postgres::BusListener;
