//! The firing loop under a paused tokio clock: cron and interval timing, DST days, missed
//! runs after a restart, overlap, failures and pausing. No test sleeps in real time.
//!
//! The store here is an in-memory [`ScheduleStore`]: the SQLite one answers from another
//! thread, which a paused clock does not wait for (it would jump timers ahead). The SQLite
//! implementation has its own test at the end, on real time.

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

impl ScheduleStore for MemStore {
    fn put_schedule(&self, s: StoredSchedule, _: Millis) -> BoxFuture<'_, Result<(), StoreError>> {
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
    fn set_paused(
        &self,
        name: String,
        paused: bool,
        next: Option<Millis>,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
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
    fn start_run(
        &self,
        name: String,
        kind: RunKind,
        scheduled: Millis,
        started: Millis,
        outcome: &'static str,
        error: Option<String>,
    ) -> BoxFuture<'_, Result<i64, StoreError>> {
        let mut runs = self.runs.lock().unwrap();
        let id = runs.len() as i64 + 1;
        runs.push(RunRecord {
            id,
            schedule: name,
            kind: kind.as_str().into(),
            scheduled,
            started: Some(started),
            ended: None,
            outcome: outcome.into(),
            error,
        });
        Box::pin(async move { Ok(id) })
    }
    fn finish_run(&self, end: RunEnd) -> BoxFuture<'_, Result<(), StoreError>> {
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

#[tokio::test(start_paused = true)]
async fn cron_fires_on_time_every_ten_seconds() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z");
        h.sched
            .add(cron("tick", "*/10 * * * * *", "UTC"), "test")
            .await
            .unwrap();
        advance(60).await;
        let started = h.runner.started.borrow().clone();
        assert_eq!(started.len(), 6, "{started:?}");
        for (i, (_, scheduled, at)) in started.iter().enumerate() {
            assert_eq!(
                *scheduled,
                ms("2026-01-01T00:00:00Z") + 10_000 * (i as i64 + 1)
            );
            assert!(at - scheduled < 5, "late by {}ms", at - scheduled);
        }
        let runs = h.store.runs_of("tick");
        assert!(
            runs.iter()
                .all(|r| r.outcome == "ok" && r.kind == "scheduled"),
            "{runs:?}"
        );
        h.stop.notify_one();
    })
    .await
}

async fn one_run_per_day(expr: &str, start: &str, days: u64) -> Vec<String> {
    let h = harness(FakeRunner::default(), start);
    h.sched
        .add(cron("dst", expr, "Europe/Berlin"), "test")
        .await
        .unwrap();
    for _ in 0..days * 24 {
        // An hour at a time; a run is due at most once per step.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
    h.stop.notify_one();
    let started = h.runner.started.borrow().clone();
    started
        .iter()
        .map(|(_, s, _)| trigger::format_time(*s, chrono_tz::Europe::Berlin))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn spring_forward_day_runs_once() {
    local(async {
        let fired = one_run_per_day("30 2 * * *", "2026-03-27T12:00:00Z", 3).await;
        assert_eq!(fired.len(), 3, "{fired:?}");
        assert!(
            fired[0].starts_with("2026-03-28T02:30:00+01:00"),
            "{fired:?}"
        );
        assert!(fired[1].starts_with("2026-03-29T03:"), "{fired:?}");
        assert!(
            fired[2].starts_with("2026-03-30T02:30:00+02:00"),
            "{fired:?}"
        );
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn fall_back_day_runs_once() {
    local(async {
        let fired = one_run_per_day("30 2 * * *", "2026-10-23T12:00:00Z", 3).await;
        assert_eq!(
            fired,
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00"
            ]
        );
    })
    .await
}

/// Adds a one-minute schedule, "stops the process" for three and a half minutes (three
/// due runs pass), starts a new scheduler over the same store and clock.
async fn restart_after_three_missed(
    policy: MissedPolicy,
) -> (Vec<RunRecord>, Vec<(String, Millis, Millis)>) {
    let store: Arc<MemStore> = Arc::default();
    let clock = Clock::starting_at(ms("2026-01-01T00:00:00Z"));
    let mut def = every("job", 60);
    def.missed = policy;
    {
        let first = Scheduler::with_clock(
            store.clone(),
            Rc::new(Rc::new(FakeRunner::default())),
            None,
            Settings::default(),
            clock.clone(),
        );
        first.add(def.clone(), "cli").await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(210)).await;
    let h = harness_with(store.clone(), FakeRunner::default(), clock);
    assert_eq!(h.sched.load().await.unwrap(), 1);
    advance(5).await;
    h.stop.notify_one();
    let started = h.runner.started.borrow().clone();
    (store.runs_of("job"), started)
}

#[tokio::test(start_paused = true)]
async fn missed_runs_after_restart_follow_the_policy() {
    local(async {
        let (runs, _) = restart_after_three_missed(MissedPolicy::Skip).await;
        assert!(runs.is_empty(), "{runs:?}");
        let (runs, started) = restart_after_three_missed(MissedPolicy::RunOnce).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].kind, "catchup");
        assert_eq!(
            started[0].1,
            ms("2026-01-01T00:03:00Z"),
            "the latest missed run"
        );
        let (runs, _) = restart_after_three_missed(MissedPolicy::RunAll).await;
        let scheduled: Vec<Millis> = runs.iter().map(|r| r.scheduled).collect();
        assert_eq!(
            scheduled,
            [
                ms("2026-01-01T00:01:00Z"),
                ms("2026-01-01T00:02:00Z"),
                ms("2026-01-01T00:03:00Z")
            ]
        );
        assert!(runs
            .iter()
            .all(|r| r.kind == "catchup" && r.outcome == "ok"));
    })
    .await
}

async fn overlap_starts(policy: OverlapPolicy) -> (Vec<Millis>, Vec<RunRecord>) {
    let runner = FakeRunner {
        takes: Duration::from_secs(25),
        ..Default::default()
    };
    let h = harness(runner, "2026-01-01T00:00:00Z");
    let mut def = every("slow", 10);
    def.overlap = policy;
    h.sched.add(def, "test").await.unwrap();
    advance(65).await;
    h.stop.notify_one();
    let base = ms("2026-01-01T00:00:00Z");
    let starts = h
        .runner
        .started
        .borrow()
        .iter()
        .map(|(_, _, at)| (at - base) / 1000)
        .collect();
    (starts, h.store.runs_of("slow"))
}

#[tokio::test(start_paused = true)]
async fn overlap_skip_queue_allow() {
    local(async {
        let (starts, runs) = overlap_starts(OverlapPolicy::Skip).await;
        assert_eq!(starts, [10, 40], "skip");
        let skipped = runs.iter().filter(|r| r.outcome == "skipped").count();
        assert_eq!(skipped, 4, "20, 30, 50 and 60 are skipped: {runs:?}");
        let (starts, _) = overlap_starts(OverlapPolicy::Queue).await;
        assert_eq!(starts, [10, 35, 60], "queue: one after another");
        let (starts, _) = overlap_starts(OverlapPolicy::Allow).await;
        assert_eq!(starts, [10, 20, 30, 40, 50, 60], "allow");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn max_failures_pauses_and_resume_restarts() {
    local(async {
        let runner = FakeRunner {
            fail: true,
            ..Default::default()
        };
        let h = harness(runner, "2026-01-01T00:00:00Z");
        let mut def = every("flaky", 10);
        def.max_failures = 3;
        h.sched.add(def, "test").await.unwrap();
        advance(60).await;
        assert_eq!(h.runner.started.borrow().len(), 3);
        let info = h.sched.list();
        assert!(info[0].paused && info[0].next.is_empty(), "{info:?}");
        assert_eq!(info[0].last_outcome.as_deref(), Some("failed"));
        assert!(h.store.rows.lock().unwrap()["flaky"].paused, "persisted");
        h.sched.set_paused("flaky", false).await.unwrap();
        advance(10).await;
        assert_eq!(h.runner.started.borrow().len(), 4);
        h.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_within_bounds_and_run_now_runs() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z");
        let mut def = every("spread", 60);
        def.jitter = Duration::from_secs(20);
        h.sched.add(def, "test").await.unwrap();
        advance(85).await;
        let started = h.runner.started.borrow().clone();
        assert_eq!(started.len(), 1);
        let late = started[0].2 - started[0].1;
        assert!((0..20_000).contains(&late), "{late}");
        h.sched.run_now("spread").unwrap();
        advance(1).await;
        assert_eq!(h.runner.started.borrow().len(), 2);
        assert_eq!(h.store.runs_of("spread")[1].kind, "manual");
        assert!(h.sched.run_now("nope").is_err());
        h.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn one_shot_fires_once_and_past_times_are_refused() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z");
        let mut def = ScheduleDef::new("once");
        def.at = Some("2026-01-01T00:00:30Z".into());
        h.sched.add(def.clone(), "test").await.unwrap();
        advance(120).await;
        assert_eq!(h.runner.started.borrow().len(), 1);
        assert!(h.sched.list()[0].next.is_empty());
        def.name = "past".into();
        def.at = Some("2025-01-01T00:00:00Z".into());
        let e = h.sched.add(def, "test").await.unwrap_err().to_string();
        assert!(e.contains("is in the past"), "{e}");
        h.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn two_nodes_fire_each_run_once_and_the_second_takes_over() {
    local(async {
        let store: Arc<MemStore> = Arc::default();
        let clock = Clock::starting_at(ms("2026-01-01T00:00:00Z"));
        let a = harness_with(store.clone(), FakeRunner::default(), clock.clone());
        let b = harness_with(store.clone(), FakeRunner::default(), clock);
        a.sched.add(every("shared", 10), "config").await.unwrap();
        b.sched.add(every("shared", 10), "config").await.unwrap();
        advance(35).await;
        let fired = |h: &Harness| -> Vec<Millis> {
            let base = ms("2026-01-01T00:00:00Z");
            h.runner
                .started
                .borrow()
                .iter()
                .map(|(_, s, _)| (s - base) / 1000)
                .collect()
        };
        assert_eq!(fired(&a), [10, 20, 30], "a leads");
        assert!(fired(&b).is_empty(), "b does not fire what a fires");
        // a stops and hands the lead over; b takes it at its next renewal (within 5 s)
        // and fires from the next due run on.
        a.stop.notify_one();
        advance(45).await;
        let b_fired = fired(&b);
        assert_eq!(b_fired, [40, 50, 60, 70, 80], "{b_fired:?}");
        let runs = store.runs_of("shared");
        let mut times: Vec<Millis> = runs.iter().map(|r| r.scheduled).collect();
        times.dedup();
        assert_eq!(times.len(), runs.len(), "no run fired twice: {runs:?}");
        b.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_idle_schedules_wake_the_loop_only_when_due() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:30Z");
        for i in 0..10_000 {
            h.sched
                .add(cron(&format!("s{i}"), "0 * * * *", "UTC"), "test")
                .await
                .unwrap();
        }
        // An hour of idling: nothing runs.
        advance(59 * 60).await;
        assert!(h.runner.started.borrow().is_empty());
        advance(60).await;
        // Ten thousand runs are ten thousand local tasks: let them all get polled.
        for _ in 0..100_000 {
            if h.runner.started.borrow().len() == 10_000 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(h.runner.started.borrow().len(), 10_000);
        h.stop.notify_one();
    })
    .await
}

#[tokio::test]
async fn sqlite_store_keeps_schedules_claims_and_pruned_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open_sqlite(&dir.path().join("s.db"))
        .await
        .unwrap();
    let mut row = StoredSchedule::new(every("job", 60), "cli");
    row.next_fire = Some(60_000);
    store.put_schedule(row.clone(), 0).await.unwrap();
    assert_eq!(store.get_schedule("job".into()).await.unwrap(), Some(row));
    store
        .record_fires(vec![("job".to_string(), 60_000, Some(120_000))])
        .await
        .unwrap();
    store
        .record_fires(vec![("job".to_string(), 0, Some(60_000))])
        .await
        .unwrap();
    assert!(store.try_lead("a".into(), 0, 15_000).await.unwrap());
    assert!(
        !store.try_lead("b".into(), 10_000, 25_000).await.unwrap(),
        "a leads until 15s"
    );
    assert!(
        store.try_lead("a".into(), 10_000, 25_000).await.unwrap(),
        "a renews"
    );
    assert!(
        store.try_lead("b".into(), 26_000, 41_000).await.unwrap(),
        "a lapsed: b takes over"
    );
    for i in 0..40 {
        let id = store
            .start_run("job".into(), RunKind::Scheduled, i, i, "running", None)
            .await
            .unwrap();
        let end = RunEnd {
            id,
            schedule: "job".into(),
            ended: i + 1,
            outcome: "failed",
            error: Some("boom".into()),
            failures: 3,
            pause: true,
            keep: 10,
        };
        store.finish_run(end).await.unwrap();
    }
    let runs = store.schedule_runs("job".into(), 1000).await.unwrap();
    assert!(runs.len() >= 10 && runs.len() < 10 + 16, "{}", runs.len());
    assert_eq!(runs.last().unwrap().error.as_deref(), Some("boom"));
    let got = store.get_schedule("job".into()).await.unwrap().unwrap();
    assert!(got.paused && got.failures == 3 && got.last_fire == Some(60_000));
    assert_eq!(got.next_fire, Some(120_000));
    assert!(store
        .set_paused("job".into(), false, Some(5))
        .await
        .unwrap());
    assert_eq!(store.list_schedules().await.unwrap()[0].failures, 0);
    assert!(store.delete_schedule("job".into()).await.unwrap());
    assert!(store
        .schedule_runs("job".into(), 10)
        .await
        .unwrap()
        .is_empty());
}

/// Real time (the bus and SQLite answer from other threads); the schedule fires every
/// 100 ms, so the test takes a fraction of a second.
#[tokio::test]
async fn failures_are_events_on_the_bus_and_agent_schedules_send_messages() {
    local(async {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_sqlite(&dir.path().join("s.db"))
            .await
            .unwrap();
        let bus = crate::bus::Bus::new(
            store.clone() as Arc<dyn crate::store::BusStore>,
            crate::bus::BusConfig::default(),
        )
        .unwrap();
        let mut events = bus.subscribe(TOPIC).unwrap();
        let runner = FakeRunner {
            fail: true,
            ..Default::default()
        };
        let h = harness_with_bus(store.clone(), runner, bus.clone());
        let mut def = ScheduleDef::new("flaky");
        def.every = Some(Duration::from_millis(100));
        def.max_failures = 1;
        h.sched.add(def, "test").await.unwrap();
        let mut seen = Vec::new();
        while !seen.contains(&"paused".to_string()) {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event within 5 s")
                .expect("subscription open");
            assert_eq!(event.payload["schedule"], "flaky");
            seen.push(
                event.payload["event"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        assert_eq!(seen, ["started", "failed", "paused"]);
        h.stop.notify_one();

        // An agent schedule puts its message in the agent's durable inbox.
        let config = Arc::new(crate::config::Config::default());
        let runner = runner::ScriptRunner::new(config, Some(bus.clone()));
        let mut def = ScheduleDef::new("nudge");
        def.agent = Some("scout".into());
        def.message = Some(serde_json::json!({"hello": "scout"}));
        runner.run(&def, 0).await.unwrap();
        let query = crate::store::HistoryQuery {
            channel: Some("agent:scout".into()),
            limit: 10,
            ..Default::default()
        };
        let sent = crate::store::BusStore::history(&*store, query)
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload["hello"], "scout");
        assert_eq!(sent[0].from, "schedule:nudge");
    })
    .await
}

fn harness_with_bus(
    store: Arc<crate::store::SqliteStore>,
    runner: FakeRunner,
    bus: crate::bus::Bus,
) -> Harness {
    let clock = Clock::new();
    *runner.clock.borrow_mut() = Some(clock.clone());
    let runner = Rc::new(runner);
    let sched = Scheduler::with_clock(
        store,
        Rc::new(runner.clone()),
        Some(bus),
        Settings::default(),
        clock,
    );
    let stop = Rc::new(tokio::sync::Notify::new());
    let (s, n) = (sched.clone(), stop.clone());
    tokio::task::spawn_local(async move { s.run(async move { n.notified().await }).await });
    Harness {
        store: Arc::default(),
        runner,
        sched,
        stop,
    }
}
