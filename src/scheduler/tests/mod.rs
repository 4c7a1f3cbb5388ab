//! The firing loop under a paused tokio clock: cron and interval timing, DST days, missed
//! runs after a restart, overlap, failures and pausing. No test sleeps in real time.
//!
//! The store here is an in-memory [`ScheduleStore`]: the SQLite one answers from another
//! thread, which a paused clock does not wait for (it would jump timers ahead). The SQLite
//! implementation has its own test in `nodes.rs`, on real time.
//!
//! - `firing.rs`: timing, DST days, restarts and each policy.
//! - `nodes.rs`: several nodes, many schedules, the SQLite store and the bus.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, LocalBoxFuture};

use super::*;
use crate::store::ScheduleStore;

#[derive(Default)]
struct MemStore {
    rows: Mutex<BTreeMap<String, StoredSchedule>>,
    leader: Mutex<Option<(String, Millis)>>,
    runs: Mutex<Vec<RunRecord>>,
    /// The node of each run in `runs`.
    owners: Mutex<Vec<String>>,
    version: std::sync::atomic::AtomicI64,
}

impl MemStore {
    fn runs_of(&self, name: &str) -> Vec<RunRecord> {
        let runs = self.runs.lock().unwrap();
        runs.iter()
            .filter(|r| r.schedule == name)
            .cloned()
            .collect()
    }
}

impl MemStore {
    /// What another process's add, removal or pause does to the change counter.
    fn changed(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ScheduleStore for MemStore {
    fn put_schedule(&self, s: StoredSchedule, _: Millis) -> BoxFuture<'_, Result<(), StoreError>> {
        self.changed();
        self.rows.lock().unwrap().insert(s.def.name.clone(), s);
        Box::pin(async { Ok(()) })
    }
    fn get_schedule(
        &self,
        name: String,
    ) -> BoxFuture<'_, Result<Option<StoredSchedule>, StoreError>> {
        let row = self.rows.lock().unwrap().get(&name).cloned();
        Box::pin(async move { Ok(row) })
    }
    fn list_schedules(&self) -> BoxFuture<'_, Result<Vec<StoredSchedule>, StoreError>> {
        let rows = self.rows.lock().unwrap().values().cloned().collect();
        Box::pin(async move { Ok(rows) })
    }
    fn delete_schedule(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.changed();
        let existed = self.rows.lock().unwrap().remove(&name).is_some();
        Box::pin(async move { Ok(existed) })
    }
    fn record_fires(
        &self,
        fires: Vec<(String, Millis, Option<Millis>)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut rows = self.rows.lock().unwrap();
        for (name, fire, next) in fires {
            if let Some(row) = rows.get_mut(&name) {
                if row.last_fire.is_none_or(|l| l <= fire) {
                    row.last_fire = Some(fire);
                    row.next_fire = next;
                }
            }
        }
        Box::pin(async { Ok(()) })
    }
    fn try_lead(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut leader = self.leader.lock().unwrap();
        let take = match &*leader {
            Some((who, end)) => *who == node || *end < now,
            None => true,
        };
        if take {
            *leader = Some((node.clone(), until));
        }
        let leads = leader.as_ref().is_some_and(|(who, _)| *who == node);
        Box::pin(async move { Ok(leads) })
    }
    fn leader(&self) -> BoxFuture<'_, Result<Option<(String, Millis)>, StoreError>> {
        let leader = self.leader.lock().unwrap().clone();
        Box::pin(async move { Ok(leader) })
    }
    fn take_lead_from(
        &self,
        node: String,
        holder: String,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut leader = self.leader.lock().unwrap();
        let take = leader.as_ref().is_some_and(|(who, _)| *who == holder);
        if take {
            *leader = Some((node, until));
        }
        Box::pin(async move { Ok(take) })
    }
    fn schedule_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        let v = self.version.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok(v) })
    }
    fn running_owners(&self) -> BoxFuture<'_, Result<Vec<Option<String>>, StoreError>> {
        let runs = self.runs.lock().unwrap();
        let owners = self.owners.lock().unwrap();
        let mut out: Vec<Option<String>> = runs
            .iter()
            .zip(owners.iter())
            .filter(|(r, _)| r.outcome == "running")
            .map(|(_, o)| Some(o.clone()))
            .collect();
        out.dedup();
        Box::pin(async move { Ok(out) })
    }
    fn interrupt_runs(
        &self,
        owner: Option<String>,
        error: String,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        let mut runs = self.runs.lock().unwrap();
        let owners = self.owners.lock().unwrap();
        let mut out = Vec::new();
        for (run, o) in runs.iter_mut().zip(owners.iter()) {
            if run.outcome == "running" && owner.as_deref() == Some(o.as_str()) {
                out.push(run.clone());
                run.outcome = "interrupted".into();
                run.error = Some(error.clone());
            }
        }
        Box::pin(async move { Ok(out) })
    }
    fn set_paused(
        &self,
        name: String,
        paused: bool,
        next: Option<Millis>,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.changed();
        let mut rows = self.rows.lock().unwrap();
        let found = rows.get_mut(&name).map(|row| {
            row.paused = paused;
            if !paused {
                row.failures = 0;
                row.next_fire = next;
            }
        });
        Box::pin(async move { Ok(found.is_some()) })
    }
    fn start_runs(
        &self,
        node: String,
        starts: Vec<RunStart>,
    ) -> BoxFuture<'_, Result<Vec<i64>, StoreError>> {
        let mut runs = self.runs.lock().unwrap();
        let mut owners = self.owners.lock().unwrap();
        let mut ids = Vec::new();
        for r in starts {
            let id = runs.len() as i64 + 1;
            runs.push(RunRecord {
                id,
                schedule: r.schedule,
                kind: r.kind.as_str().into(),
                scheduled: r.scheduled,
                started: Some(r.started),
                ended: None,
                outcome: r.outcome.into(),
                error: r.error,
            });
            owners.push(node.clone());
            ids.push(id);
        }
        Box::pin(async move { Ok(ids) })
    }
    fn finish_runs(&self, ends: Vec<RunEnd>) -> BoxFuture<'_, Result<(), StoreError>> {
        for end in ends {
            if let Some(run) = self.runs.lock().unwrap().get_mut(end.id as usize - 1) {
                run.ended = Some(end.ended);
                run.outcome = end.outcome.into();
                run.error = end.error.clone();
            }
            if let Some(row) = self.rows.lock().unwrap().get_mut(&end.schedule) {
                row.failures = end.failures;
                row.last_outcome = Some(end.outcome.into());
                row.paused |= end.pause;
            }
        }
        Box::pin(async { Ok(()) })
    }
    fn schedule_runs(
        &self,
        name: String,
        _: usize,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        let runs = self.runs_of(&name);
        Box::pin(async move { Ok(runs) })
    }
}

/// Records each run's fire time and start; takes `takes` and fails if `fail`.
#[derive(Default)]
struct FakeRunner {
    started: RefCell<Vec<(String, Millis, Millis)>>,
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
        let now = self.clock.borrow().as_ref().map_or(0, |c| c.now());
        self.started
            .borrow_mut()
            .push((def.name.clone(), scheduled, now));
        let (takes, fail) = (self.takes, self.fail);
        Box::pin(async move {
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
    store: Arc<MemStore>,
    runner: Rc<FakeRunner>,
    sched: Scheduler,
    stop: Rc<tokio::sync::Notify>,
}

fn harness_with(store: Arc<MemStore>, runner: FakeRunner, clock: Clock) -> Harness {
    *runner.clock.borrow_mut() = Some(clock.clone());
    let runner = Rc::new(runner);
    let sched = Scheduler::with_clock(
        store.clone(),
        Rc::new(runner.clone()),
        None,
        Settings::default(),
        clock,
    );
    let stop = Rc::new(tokio::sync::Notify::new());
    let (s, n) = (sched.clone(), stop.clone());
    tokio::task::spawn_local(async move { s.run(async move { n.notified().await }).await });
    Harness {
        store,
        runner,
        sched,
        stop,
    }
}

fn harness(runner: FakeRunner, start: &str) -> Harness {
    harness_with(Arc::default(), runner, Clock::starting_at(ms(start)))
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

/// Advances the paused clock in one-second steps so every timer fires at its time.
async fn advance(secs: u64) {
    for _ in 0..secs {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
}

async fn local<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::LocalSet::new().run_until(f).await
}

mod changes;
mod firing;
mod nodes;
