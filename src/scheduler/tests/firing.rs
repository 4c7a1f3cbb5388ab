//! Firing on a paused clock: timing, DST days, restarts, missed-run and overlap policies,
//! failures, jitter and one-shots.

use super::*;

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn cron_fires_on_time_every_ten_seconds() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z").await;
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
        let runs = runs_of(&*h.store, "tick").await;
        assert!(
            runs.iter()
                .all(|r| r.outcome == "ok" && r.kind == "scheduled"),
            "{runs:?}"
        );
        h.stop.notify_one();
    })
    .await
}

}

/// A function-handler schedule (`lua:`) on a scheduler that does not compete for the
/// lead: it fires by itself, and days of paused time do not cost a store read per sync
/// tick.
async fn one_run_per_day(expr: &str, start: &str, days: u64) -> Vec<String> {
    let (_db, store) = TestDb::open().await;
    let settings = Settings {
        lead: false,
        ..Settings::default()
    };
    let clock = Clock::starting_at(ms(start));
    let h = harness_with(store.schedules(), FakeRunner::default(), clock, settings);
    h.sched
        .add(cron("dst", expr, "Europe/Berlin"), "lua:dst.lua")
        .await
        .unwrap();
    advance(days * 24 * 3600).await;
    h.stop.notify_one();
    let started = h.runner.started.borrow().clone();
    started
        .iter()
        .map(|(_, s, _)| trigger::format_time(*s, chrono_tz::Europe::Berlin))
        .collect()
}

on_each_backend! {
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

}

/// Adds a one-minute schedule, "stops the process" for three and a half minutes (three
/// due runs pass), starts a new scheduler over the same database and clock.
async fn restart_after_three_missed(
    policy: MissedPolicy,
) -> (Vec<RunRecord>, Vec<(String, Millis, Millis)>) {
    let (_db, store) = TestDb::open().await;
    let clock = Clock::starting_at(ms("2026-01-01T00:00:00Z"));
    let mut def = every("job", 60);
    def.missed = policy;
    {
        let first = Scheduler::with_clock(
            store.schedules(),
            Rc::new(Rc::new(FakeRunner::default())),
            None,
            Settings::default(),
            clock.clone(),
        );
        first.add(def.clone(), "cli").await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(210)).await;
    let h = harness_with(
        store.schedules(),
        FakeRunner::default(),
        clock,
        Settings::default(),
    );
    assert_eq!(h.sched.load().await.unwrap(), 1);
    advance(5).await;
    h.stop.notify_one();
    let started = h.runner.started.borrow().clone();
    (runs_of(&*h.store, "job").await, started)
}

on_each_backend! {
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

}

async fn overlap_starts(policy: OverlapPolicy) -> (Vec<Millis>, Vec<RunRecord>) {
    let runner = FakeRunner {
        takes: Duration::from_secs(25),
        ..Default::default()
    };
    let h = harness(runner, "2026-01-01T00:00:00Z").await;
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
    (starts, runs_of(&*h.store, "slow").await)
}

on_each_backend! {
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
        let h = harness(runner, "2026-01-01T00:00:00Z").await;
        let mut def = every("flaky", 10);
        def.max_failures = 3;
        h.sched.add(def, "test").await.unwrap();
        advance(60).await;
        assert_eq!(h.runner.started.borrow().len(), 3);
        let info = h.sched.list();
        assert!(info[0].paused && info[0].next.is_empty(), "{info:?}");
        assert_eq!(info[0].last_outcome.as_deref(), Some("failed"));
        let row = h.store.get_schedule("flaky".into()).await.unwrap().unwrap();
        assert!(row.paused, "persisted");
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
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z").await;
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
        assert_eq!(runs_of(&*h.store, "spread").await[1].kind, "manual");
        assert!(h.sched.run_now("nope").is_err());
        h.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn one_shot_fires_once_and_past_times_are_refused() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z").await;
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
}
