//! The firing loop under a paused tokio clock, on a real store: each test in
//! `on_each_backend!` runs on SQLite (a file in a temp directory) and on PostgreSQL (a
//! fresh schema); see `store::testing`. Cron and interval timing, DST days, missed runs
//! after a restart, overlap, failures and pausing, several nodes. No test sleeps in real
//! time: the paused clock moves only while nothing runs and no store operation is in
//! flight (`store::hold_test_clock`), so each timer fires at its time and what it starts
//! is in the store before time moves on.
//!
//! - `firing.rs`: timing, DST days, restarts and each policy.
//! - `changes.rs`: what other processes change; runs of dead processes.
//! - `nodes.rs`: several nodes on one database, many schedules, the bus.
//! - `store.rs`: the store's own semantics (claims, leadership, history, the change
//!   counter), also under concurrent nodes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::*;
use crate::store::testing::{on_each_backend, TestDb};
use crate::store::ScheduleStore;

/// The runs of `name` the store holds, oldest first.
async fn runs_of(store: &dyn ScheduleStore, name: &str) -> Vec<RunRecord> {
    store
        .schedule_runs(name.to_string(), 10_000)
        .await
        .expect("history")
}

/// Records each run's name, fire time and start; takes `takes` and fails if `fail`.
#[derive(Default)]
struct FakeRunner {
    started: RefCell<Vec<(String, Millis, Millis)>>,
    /// Runs the scheduler asked for, executed or not (a refused start is built, never run).
    built: std::cell::Cell<usize>,
    takes: Duration,
    fail: bool,
    clock: RefCell<Option<Clock>>,
}

impl Runner for Rc<FakeRunner> {
    fn run(
        &self,
        def: &ScheduleDef,
        scheduled: Millis,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        self.built.set(self.built.get() + 1);
        let (this, name) = (self.clone(), def.name.clone());
        let (takes, fail) = (self.takes, self.fail);
        // Recorded when the run executes, which is after its start claimed its fire time:
        // a run the store refused never gets here.
        Box::pin(async move {
            let now = this.clock.borrow().as_ref().map_or(0, |c| c.now());
            this.started.borrow_mut().push((name, scheduled, now));
            tokio::time::sleep(takes).await;
            if fail {
                Err("boom".into())
            } else {
                Ok(())
            }
        })
    }
}

fn ms(rfc: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .unwrap()
        .timestamp_millis()
}

struct Harness {
    store: Arc<dyn ScheduleStore>,
    runner: Rc<FakeRunner>,
    sched: Scheduler,
    stop: Rc<tokio::sync::Notify>,
    /// The loop; aborting it models a process that dies (no hand-over of the lead).
    task: tokio::task::JoinHandle<()>,
    /// The database, when this harness opened it.
    _db: Option<TestDb>,
}

impl Harness {
    /// Fire times (seconds after `base`) of the runs this node executed.
    fn fired(&self, base: Millis) -> Vec<Millis> {
        let started = self.runner.started.borrow();
        started.iter().map(|(_, s, _)| (s - base) / 1000).collect()
    }
}

fn harness_with(
    store: Arc<dyn ScheduleStore>,
    runner: FakeRunner,
    clock: Clock,
    settings: Settings,
) -> Harness {
    harness_on(store, runner, clock, settings, None)
}

/// A scheduler with its loop running, publishing its events on `bus` if given.
fn harness_on(
    store: Arc<dyn ScheduleStore>,
    runner: FakeRunner,
    clock: Clock,
    settings: Settings,
    bus: Option<crate::bus::Bus>,
) -> Harness {
    *runner.clock.borrow_mut() = Some(clock.clone());
    let runner = Rc::new(runner);
    let sched = Scheduler::with_clock(store.clone(), Rc::new(runner.clone()), bus, settings, clock);
    let stop = Rc::new(tokio::sync::Notify::new());
    let (s, n) = (sched.clone(), stop.clone());
    let task =
        tokio::task::spawn_local(async move { s.run(async move { n.notified().await }).await });
    Harness {
        store,
        runner,
        sched,
        stop,
        task,
        _db: None,
    }
}

/// A scheduler on a fresh database of the running test's backend, its clock at `start`.
async fn harness(runner: FakeRunner, start: &str) -> Harness {
    let (db, store) = TestDb::open().await;
    let clock = Clock::starting_at(ms(start));
    let mut h = harness_with(store.schedules(), runner, clock, Settings::default());
    h._db = Some(db);
    h
}

fn every(name: &str, secs: u64) -> ScheduleDef {
    let mut def = ScheduleDef::new(name);
    def.every = Some(Duration::from_secs(secs));
    def
}

fn cron(name: &str, expr: &str, tz: &str) -> ScheduleDef {
    let mut def = ScheduleDef::new(name);
    def.cron = Some(expr.into());
    def.timezone = Some(tz.into());
    def
}

/// Lets `secs` pass on the paused clock: every timer due in between fires at its time,
/// and time moves on only once what it started is idle (its store writes done). The last
/// millisecond lets what fired at the final instant settle too.
async fn advance(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn local<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::LocalSet::new().run_until(f).await
}

mod changes;
mod firing;
mod nodes;
mod store;
