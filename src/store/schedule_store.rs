//! The scheduler's durable state: [`ScheduleStore`].

use futures_util::future::BoxFuture;

use super::*;

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
