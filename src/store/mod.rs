//! Persistence behind traits.
//!
//! Domain code (the bus, tasks, schedules) never writes SQL itself: it calls a trait defined
//! here, and a backend implements the trait. [`sqlite`] is the embedded default (one file,
//! WAL mode, no setup); a PostgreSQL backend will implement the same traits for several nodes
//! sharing one swarm, with the same migration numbering.
//!
//! - [`BusStore`]: durable queue state, history and dead letters of the message bus.
//! - [`KvStore`]: small durable key/value state per namespace (a script's `dreamos.kv`).
//! - [`TaskStore`]: tasks, their dependencies and their transition log (`crate::tasks`).
//! - [`LeaseStore`]: which node runs what when several share one database, and the nodes.
//! - [`AgentStore`], [`ScheduleStore`], [`SocialStore`], [`DiscordOutboxStore`]: the
//!   agent supervisor's log, the scheduler, and the social and Discord outboxes.
//! - [`StoreError`]: every failure says what was being done and in which database.
//!
//! The traits return boxed futures (rather than `async fn`) so that callers can hold an
//! `Arc<dyn BusStore>` without knowing the backend.
//!
//! Time is always passed in by the caller as milliseconds since the Unix epoch ([`Millis`]):
//! the bus owns the clock (tokio time, so tests can pause it), the store only records.

pub mod agent_types;
pub mod backend;
pub mod bus_types;
pub mod copy;
#[cfg(test)]
mod lease_tests;
pub mod lease_types;
pub mod outbox_types;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod throwaway_pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use agent_types::*;
pub use backend::{AnyStore, StoreTarget};
pub use bus_types::*;
pub use lease_types::*;
pub use outbox_types::*;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;

/// Everything a running Dream.OS needs from its database: the union of the per-domain
/// traits, implemented by each backend. Commands and the daemon hold an `Arc<dyn Store>`
/// ([`SharedStore`]) and hand each service the trait it takes (`store.clone() as
/// Arc<dyn BusStore>`), so no code outside `store` knows which backend it runs on.
pub trait Store:
    BusStore
    + KvStore
    + TaskStore
    + AgentStore
    + ScheduleStore
    + SocialStore
    + DiscordOutboxStore
    + LeaseStore
{
    /// `sqlite` or `postgres`, for status lines and metrics.
    fn backend(&self) -> &'static str;

    /// The database file, when it is one: watchers of a local file can wake on its writes
    /// instead of polling.
    fn file(&self) -> Option<&Path> {
        None
    }
}

/// The opened store, shared by every service of a process.
pub type SharedStore = Arc<dyn Store>;

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn file(&self) -> Option<&Path> {
        Some(self.path())
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Milliseconds since the Unix epoch, as stored in every timestamp column.
pub type Millis = i64;

/// Opens (creating if needed) the embedded SQLite database at `path`: parent directories,
/// WAL mode, the group-commit writer thread and every pending migration. Fast enough to call
/// when a command first needs storage; callers decide when that is.
pub async fn open_sqlite(path: &Path) -> Result<Arc<SqliteStore>, StoreError> {
    SqliteStore::open(path).await.map(Arc::new)
}

/// Opens the store `[store]` configures, as every service takes it. The error says which
/// backend and database (password masked), and why.
pub async fn open_configured(config: &crate::config::Config) -> Result<SharedStore, String> {
    let target = StoreTarget::from_config(config)?;
    let opened = target
        .open()
        .await
        .map(|store| store.shared())
        .map_err(|e| format!("cannot open the store ({}): {e}", target.describe()))?;
    Ok(opened)
}

/// In tests only: keeps tokio's paused clock from jumping while a database round trip is
/// in flight. A paused clock advances to the next timer whenever the runtime is idle, and
/// waiting on a socket is idle, so a test's "wait up to 60 s" would time out during a
/// 1 ms query. Blocking-pool tasks hold the clock (SQLite's reads already run there), so
/// one waits here until the operation is done: PostgreSQL round trips and SQLite writes
/// (answered by the writer thread) go through it. Production code runs the plain future.
#[cfg(test)]
pub(crate) async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    });
    let out = operation.await;
    drop(done);
    let _ = holder.await;
    out
}

#[cfg(not(test))]
pub(crate) async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    operation.await
}

/// What went wrong in the store, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {} for the database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot restrict the database file {} to mode 0600: {source}", path.display())]
    Restrict {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {}: migration {version} ({name}) failed: {source}", path.display())]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, but this dreamos only knows up to {known}: \
         upgrade dreamos or point it at another database",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{what} failed in database {}: {source}", path.display())]
    Sql {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The commit of a group failed: nothing any job of that group wrote was saved.
    #[error("commit to database {} failed, so this write was not saved: {message}", path.display())]
    Commit { path: PathBuf, message: String },
    #[error("a database job panicked in {}: {message}", path.display())]
    JobPanicked { path: PathBuf, message: String },
    #[error("the database writer for {} has stopped; reopen the store", path.display())]
    WriterStopped { path: PathBuf },
    #[error("{what} in database {}: stored data is unreadable: {detail}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// A PostgreSQL statement, connection or migration failed. `db` is the connection URL
    /// with any password masked.
    #[error(
        "{what} failed in PostgreSQL database {db}: {}",
        postgres::describe(source)
    )]
    Postgres {
        what: std::borrow::Cow<'static, str>,
        db: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Wraps a SQL error with what was being done; the store fills in the database path
    /// when the error leaves it (jobs do not know the path).
    pub fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sql {
            what,
            path: PathBuf::new(),
            source,
        }
    }

    /// A stored value that does not decode (bad JSON, unknown status name, ...).
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what,
            path: PathBuf::new(),
            detail: detail.to_string(),
        }
    }

    /// Sets the database path on errors built inside jobs, which leave it empty.
    pub(crate) fn at(mut self, db: &Path) -> StoreError {
        match &mut self {
            StoreError::Sql { path, .. } | StoreError::Corrupt { path, .. }
                if path.as_os_str().is_empty() =>
            {
                *path = db.to_path_buf();
            }
            _ => {}
        }
        self
    }
}

/// Durable state of the message bus. Every method is one atomic step: it either happens
/// completely (and is committed before the future resolves) or not at all.
///
/// Semantics the bus relies on:
/// - `enqueue` stores all messages or none, and returns their ids in order. Ids increase
///   with insertion, which is what FIFO means within a channel and priority.
/// - `claim` hands out up to `max` visible messages of one channel, highest priority first
///   (lowest [`Priority`] number), then lowest id. A message is visible when it is `queued`
///   and its backoff has passed, or `delivered` and its visibility deadline has passed (its
///   consumer died): that redelivers it. Each delivery counts one attempt. Messages whose
///   ttl passed become `expired`; messages out of attempts become `dead`.
/// - `ack`/`nack` only apply to the current attempt of a `delivered` message; anything else
///   reports [`SettleOutcome::Stale`] and changes nothing.
/// - pruning never removes a message that is not final and acked or expired.
pub trait BusStore: Send + Sync + 'static {
    /// Stores new messages (all or none) and returns their ids.
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, StoreError>>;

    /// Claims up to `max` visible messages of `channel`, each under a visibility deadline of
    /// `now + visibility_ms`.
    fn claim(
        &self,
        channel: &str,
        max: usize,
        now: Millis,
        visibility_ms: i64,
    ) -> BoxFuture<'_, Result<Claimed, StoreError>>;

    /// Acknowledges deliveries (one result per input, same order).
    fn ack(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>>;

    /// Rejects one delivery. `retry_at = Some(t)`: queue it again, visible from `t`, unless
    /// it is out of attempts (then `dead`). `None`: it will never succeed, mark it `failed`.
    fn nack(
        &self,
        delivery: DeliveryRef,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>>;

    /// Undoes the claim of deliveries nobody started on (prefetched by a consumer that is
    /// stopping): each current one is `queued` again, visible at `now`, and its attempt is
    /// not counted. One result per input, same order.
    fn release(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>>;

    /// Moves the visibility deadline of a current delivery (a consumer that needs longer).
    fn extend(
        &self,
        delivery: DeliveryRef,
        deadline: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>>;

    /// Current status of each id that exists.
    fn statuses(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, MessageStatus)>, StoreError>>;

    /// Remembers an agent inbox channel (`agent:<name>`) so `broadcast` reaches it.
    fn register_inbox(&self, channel: String, now: Millis)
        -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every known agent inbox channel, sorted.
    fn inboxes(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// History records matching `query`, see [`HistoryQuery`] for order and paging.
    fn history(&self, query: HistoryQuery)
        -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>>;

    /// Dead letters (`failed` and `dead`), oldest first.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>>;

    /// Queues dead letters again with fresh attempts: one id, or all when `id` is `None`.
    /// Returns the ids requeued, with the channel of each.
    fn retry_dead(
        &self,
        id: Option<MessageId>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, String)>, StoreError>>;

    /// Deletes every dead letter; returns how many.
    fn purge_dead(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Queue depths and totals.
    fn stats(&self) -> BoxFuture<'_, Result<BusStats, StoreError>>;

    /// Marks queued messages whose ttl passed as `expired`, then deletes final messages
    /// (`acked`, `expired`) created before `older_than` and beyond the newest `keep_count`.
    /// Returns (expired, deleted).
    fn prune(
        &self,
        now: Millis,
        older_than: Millis,
        keep_count: u64,
    ) -> BoxFuture<'_, Result<(u64, u64), StoreError>>;

    /// Of `channels`, those holding a message a claim at `now` would look at (visible
    /// queued ones, and lapsed deliveries). One query for every channel a process waits
    /// on, instead of one claim per waiting consumer.
    fn ready_channels(
        &self,
        channels: Vec<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// A live feed of what every process sharing this store does on the bus (enqueues,
    /// published messages), when the store can push it (PostgreSQL's `LISTEN/NOTIFY`).
    /// `None`: it cannot, and the bus re-checks waiting channels on a timer instead (the
    /// embedded store, whose other processes are occasional CLI commands). The feed ends
    /// when its connection drops; the caller opens a new one.
    fn bus_signals(&self) -> Option<BoxFuture<'_, Result<BusSignals, StoreError>>> {
        None
    }

    /// Hands published (non-durable) messages, serialized, to the other processes'
    /// [`bus_signals`](BusStore::bus_signals) feeds. Best effort, as publishing is; a store
    /// without a feed has nobody to hand them to.
    fn publish_remote(&self, messages: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = messages;
        Box::pin(async { Ok(()) })
    }
}

/// Small durable key/value state, one namespace per script or agent. Values are JSON.
pub trait KvStore: Send + Sync + 'static {
    fn kv_get<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>>;

    fn kv_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Returns whether the key existed.
    fn kv_delete<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

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
/// Portable SQL: partial indexes and `RETURNING` exist in SQLite and PostgreSQL alike; a
/// PostgreSQL claim would add `FOR UPDATE SKIP LOCKED` so that claimers on several nodes
/// do not queue behind one row lock.
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

/// Durable state of the scheduler ([`crate::scheduler`]): schedules with their last and next
/// fire time, and run history. Every method is one atomic step, committed before its future
/// resolves.
///
/// `try_lead` elects the one scheduler that fires shared schedules when several nodes share
/// one database (see `crate::scheduler::leader`), and `start_runs` refuses a second start
/// of the same fire time, so each run fires once even while two nodes both believe they
/// lead (a paused process, a clock that jumped).
pub trait ScheduleStore: Send + Sync + 'static {
    /// Inserts or replaces a schedule (definition and state).
    fn put_schedule(
        &self,
        schedule: crate::scheduler::StoredSchedule,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    fn get_schedule(
        &self,
        name: String,
    ) -> BoxFuture<'_, Result<Option<crate::scheduler::StoredSchedule>, StoreError>>;

    /// Every schedule, by name.
    fn list_schedules(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::scheduler::StoredSchedule>, StoreError>>;

    /// Deletes a schedule and its history; returns whether it existed.
    fn delete_schedule(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Records fire times: for each `(name, fire, next)`, sets `last_fire = fire` and
    /// `next_fire = next` unless a later fire is already recorded. One call for everything
    /// due at once, so 10,000 schedules firing together cost one transaction.
    fn record_fires(
        &self,
        fires: Vec<(String, Millis, Option<Millis>)>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes `node` the scheduler leader until `until` if it leads already or the lead
    /// lapsed before `now`; returns whether `node` leads.
    fn try_lead(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// The holder of the lead and until when it holds it (`None` before anyone led).
    fn leader(&self) -> BoxFuture<'_, Result<Option<(String, Millis)>, StoreError>>;

    /// Makes `node` the leader until `until` if `holder` still holds the lead, whatever its
    /// end (the caller found `holder` dead); returns whether `node` leads.
    fn take_lead_from(
        &self,
        node: String,
        holder: String,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// A counter that moves whenever a schedule is added, removed, paused, resumed or
    /// redefined (by any process; fire-time updates do not count). A running scheduler
    /// polls it to pick up changes other processes made.
    fn schedule_version(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// The owners (scheduler node names) of runs still marked `running`; `None` for runs
    /// recorded before owners were kept.
    fn running_owners(&self) -> BoxFuture<'_, Result<Vec<Option<String>>, StoreError>>;

    /// Marks every run `owner` left `running` as `interrupted` with `error`, and returns
    /// those runs (as they were before).
    fn interrupt_runs(
        &self,
        owner: Option<String>,
        error: String,
    ) -> BoxFuture<'_, Result<Vec<crate::scheduler::RunRecord>, StoreError>>;

    /// Pauses or resumes; resuming resets the failure count. Returns whether it exists.
    fn set_paused(
        &self,
        name: String,
        paused: bool,
        next: Option<Millis>,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Records the starts of runs (or, with `outcome = "skipped"`, runs that did not
    /// happen) by scheduler `node`, in one transaction, and returns their ids in order.
    ///
    /// This is also the claim that makes each fire time run once across nodes: a
    /// scheduled or catch-up start for a (schedule, fire time) that another row already
    /// holds, from any node or earlier in the same call, is refused (`None`, nothing
    /// written), and its caller does not run it. Every row but a `manual` one holds its
    /// fire time, until it is marked `interrupted` (then the missed-run policy may run
    /// that fire time again).
    fn start_runs(
        &self,
        node: String,
        runs: Vec<crate::scheduler::RunStart>,
    ) -> BoxFuture<'_, Result<Vec<Option<i64>>, StoreError>>;

    /// Records the ends of runs and the schedule state each leaves, in one transaction;
    /// prunes old history.
    fn finish_runs(
        &self,
        ends: Vec<crate::scheduler::RunEnd>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The newest `limit` runs of a schedule, oldest first.
    fn schedule_runs(
        &self,
        name: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::scheduler::RunRecord>, StoreError>>;
}

/// Durable state of the social outbox ([`crate::social`]): posts and their transitions,
/// engagement samples, learned rate-limit budgets and refreshed tokens. Every method is
/// one atomic step, committed before its future resolves.
///
/// Semantics the outbox relies on:
/// - `insert_post` is idempotent per (account, idempotency key), and refuses the same
///   content hash within `dedup_since` as a duplicate; the row exists before any HTTP call.
/// - `claim_posts` moves due posts to `sending` under a lease: `queued` ones whose time has
///   come and whose parent (if any) is `posted`, and `sending` ones whose lease lapsed (their
///   sender died), which come back marked `unsure`. Two claimers never get the same post.
/// - `finish_post` applies only to a post that is still `sending`.
pub trait SocialStore: Send + Sync + 'static {
    fn insert_post(
        &self,
        post: crate::social::NewPost,
        content_hash: String,
        dedup_since: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<crate::social::Inserted, StoreError>>;

    /// Claims up to `limit` due posts (only post `only`, if given).
    fn claim_posts(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
        only: Option<crate::social::PostId>,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// Records how an attempt ended; returns the row afterwards, or `None` if it was no
    /// longer `sending`.
    fn finish_post(
        &self,
        id: crate::social::PostId,
        outcome: crate::social::Outcome,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    fn get_post(
        &self,
        id: crate::social::PostId,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// Newest first.
    fn list_posts(
        &self,
        filter: crate::social::PostFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// `failed`, `dead` or `cancelled` back to `queued` with fresh attempts, due `now`.
    /// Returns the row afterwards, or `None` when it is not in one of those states.
    fn retry_post(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// `queued` to `cancelled` (its queued replies too). `None` when it was not queued.
    fn cancel_post(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// `posted` to `deleted`.
    fn mark_deleted(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Times of the account's posts sent or being sent at or after `since`, ascending (for
    /// daily caps and minimum gaps), leaving out post `except` (the one being checked).
    fn send_times(
        &self,
        account: String,
        since: Millis,
        except: crate::social::PostId,
    ) -> BoxFuture<'_, Result<Vec<Millis>, StoreError>>;

    /// The earliest time anything is due: a queued post, a lapsing lease, a metrics read.
    fn next_due(&self) -> BoxFuture<'_, Result<Option<Millis>, StoreError>>;

    /// Posted posts whose next metrics read is due.
    fn metrics_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// Stores one sample (possibly empty) and sets when the next read is due (`None`: no
    /// more) and, if given, how many of the configured offsets are done.
    fn record_metrics(
        &self,
        id: crate::social::PostId,
        taken_at: Millis,
        metrics: Vec<(String, i64)>,
        next: Option<Millis>,
        done: Option<u32>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Samples of these posts, oldest first.
    fn metric_samples(
        &self,
        ids: Vec<crate::social::PostId>,
    ) -> BoxFuture<'_, Result<Vec<crate::social::MetricSample>, StoreError>>;

    /// Remembers what a response said about the budget `bucket` of (`account`, `op`);
    /// `blocked_until` is set when the budget is spent (or the platform said wait).
    fn save_budget(
        &self,
        account: String,
        op: String,
        bucket: String,
        info: serde_json::Value,
        blocked_until: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The latest `blocked_until` after `now` among the budgets of (`account`, `op`).
    fn blocked_until(
        &self,
        account: String,
        op: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<Millis>, StoreError>>;

    /// Every budget row: (account, op, bucket, info, blocked_until).
    #[allow(clippy::type_complexity)]
    fn budgets(
        &self,
    ) -> BoxFuture<
        '_,
        Result<Vec<(String, String, String, serde_json::Value, Option<Millis>)>, StoreError>,
    >;

    fn load_tokens(
        &self,
        account: String,
    ) -> BoxFuture<'_, Result<Option<crate::clients::social::Tokens>, StoreError>>;

    fn save_tokens(
        &self,
        account: String,
        tokens: crate::clients::social::Tokens,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
}
