//! Several nodes over one store, many schedules, the SQLite store and bus events.

use super::*;

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
        let start = RunStart {
            schedule: "job".into(),
            kind: RunKind::Scheduled,
            scheduled: i,
            started: i,
            outcome: "running",
            error: None,
        };
        let ids = store.start_runs("n".into(), vec![start]).await.unwrap();
        let end = RunEnd {
            id: ids[0],
            schedule: "job".into(),
            ended: i + 1,
            outcome: "failed",
            error: Some("boom".into()),
            failures: 3,
            pause: true,
            keep: 10,
        };
        store.finish_runs(vec![end]).await.unwrap();
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
