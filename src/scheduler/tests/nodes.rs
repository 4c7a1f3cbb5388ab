//! Several nodes on one database (each with its own connection, as separate processes
//! have), many schedules, and bus events.

use super::*;

/// Two nodes on one database and one clock, each a scheduler with its own store handle.
async fn two_nodes(clock: &Clock) -> (TestDb, Harness, Harness) {
    let (db, store) = TestDb::open().await;
    let other = db.open_again().await;
    let node = |store: Arc<dyn ScheduleStore>| {
        harness_with(
            store,
            FakeRunner::default(),
            clock.clone(),
            Settings::default(),
        )
    };
    let a = node(store.schedules());
    let b = node(other.schedules());
    (db, a, b)
}

/// Every fire time in `store`'s history of `name` that some run holds, asserting that
/// none is held twice (a manual run holds none; an interrupted one no longer does).
async fn held_once(store: &dyn ScheduleStore, name: &str, base: Millis) -> Vec<Millis> {
    let runs = runs_of(store, name).await;
    let mut held: Vec<Millis> = runs
        .iter()
        .filter(|r| r.kind != "manual" && r.outcome != "interrupted")
        .map(|r| (r.scheduled - base) / 1000)
        .collect();
    held.sort_unstable();
    let mut once = held.clone();
    once.dedup();
    assert_eq!(once, held, "a fire time held twice: {runs:?}");
    held
}

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn two_nodes_fire_each_run_once_and_the_second_takes_over() {
    local(async {
        let base = ms("2026-01-01T00:00:00Z");
        let clock = Clock::starting_at(base);
        let (_db, a, b) = two_nodes(&clock).await;
        a.sched.add(every("shared", 10), "config").await.unwrap();
        b.sched.add(every("shared", 10), "config").await.unwrap();
        advance(35).await;
        assert_eq!(a.fired(base), [10, 20, 30], "a leads");
        assert!(b.fired(base).is_empty(), "b does not fire what a fires");
        // a stops and hands the lead over; b takes it at its next look (within 1 s) and
        // fires from the next due run on.
        a.stop.notify_one();
        advance(45).await;
        assert_eq!(b.fired(base), [40, 50, 60, 70, 80]);
        let held = held_once(&*a.store, "shared", base).await;
        assert_eq!(held, [10, 20, 30, 40, 50, 60, 70, 80]);
        b.stop.notify_one();
    })
    .await
}

/// The leader dies without handing over (its loop is gone mid-flight, as with kill -9;
/// its pid is this test's, alive, so the other node waits for the lead to lapse). Every
/// due time fires exactly once across both nodes: the ones due while nobody led are
/// caught up by the node that took over (`missed = run_all`).
#[tokio::test(start_paused = true)]
async fn after_the_leader_dies_the_other_node_fires_every_due_time_once() {
    local(async {
        let base = ms("2026-01-01T00:00:00Z");
        let clock = Clock::starting_at(base);
        let (_db, a, b) = two_nodes(&clock).await;
        let mut def = every("shared", 10);
        def.missed = MissedPolicy::RunAll;
        a.sched.add(def.clone(), "config").await.unwrap();
        b.sched.add(def, "config").await.unwrap();
        advance(35).await;
        assert_eq!(a.fired(base), [10, 20, 30], "a leads");
        a.task.abort();
        advance(65).await;
        assert_eq!(a.fired(base), [10, 20, 30], "a is dead");
        let b_fired = b.fired(base);
        assert_eq!(
            b_fired,
            [40, 50, 60, 70, 80, 90, 100],
            "b caught up what was due while the lead lapsed, then fired on time"
        );
        let held = held_once(&*b.store, "shared", base).await;
        assert_eq!(held, (1..=10).map(|i| i * 10).collect::<Vec<_>>());
        b.stop.notify_one();
    })
    .await
}

/// Two nodes that both believe they lead (a process paused past its lead, a clock that
/// jumped): both fire the shared schedule, and the store lets each fire time's first
/// start through and refuses the second, which does not run.
#[tokio::test(start_paused = true)]
async fn two_nodes_that_both_believe_they_lead_run_each_fire_once() {
    local(async {
        let base = ms("2026-01-01T00:00:00Z");
        let clock = Clock::starting_at(base);
        let (_db, a, b) = two_nodes(&clock).await;
        a.sched.add(every("shared", 1), "config").await.unwrap();
        b.sched.add(every("shared", 1), "config").await.unwrap();
        advance(3).await;
        assert!(a.sched.is_leader() && !b.sched.is_leader());
        // b believes it leads until its keeper next writes the lead (within 1 s) and
        // learns otherwise.
        b.sched
            .inner
            .lead_until
            .set(clock.now() + leader::LEAD_FOR);
        assert!(b.sched.is_leader());
        advance(12).await;
        assert!(!b.sched.is_leader(), "b learnt that a leads");
        let mut fired = a.fired(base);
        fired.extend(b.fired(base));
        fired.sort_unstable();
        assert_eq!(fired, (1..=15).collect::<Vec<_>>(), "each fire ran once");
        let built = a.runner.built.get() + b.runner.built.get();
        assert!(built > 15, "both fired some times ({built} runs built for 15 fires)");
        let held = held_once(&*a.store, "shared", base).await;
        assert_eq!(held, (1..=15).collect::<Vec<_>>());
        a.stop.notify_one();
        b.stop.notify_one();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_idle_schedules_wake_the_loop_only_when_due() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:30Z").await;
        // Added 500 at a time, as `dreamos bench scheduler` does: concurrent adds share
        // SQLite's group commits.
        for chunk in 0..20 {
            let adds = (0..500).map(|i| {
                let name = format!("s{}", chunk * 500 + i);
                h.sched.add(cron(&name, "0 * * * *", "UTC"), "test")
            });
            for added in futures_util::future::join_all(adds).await {
                added.unwrap();
            }
        }
        // An hour of idling: nothing runs.
        advance(59 * 60).await;
        assert!(h.runner.started.borrow().is_empty());
        advance(60).await;
        assert_eq!(h.runner.started.borrow().len(), 10_000);
        h.stop.notify_one();
    })
    .await
}

/// Real time (the bus and SQLite answer from other threads); the schedule fires every
/// 100 ms, so the test takes a fraction of a second.
#[tokio::test]
async fn failures_are_events_on_the_bus_and_agent_schedules_send_messages() {
    local(async {
        let (_db, store) = TestDb::open().await;
        let bus = crate::bus::Bus::new(store.bus(), crate::bus::BusConfig::default()).unwrap();
        let mut events = bus.subscribe(TOPIC).unwrap();
        let runner = FakeRunner {
            fail: true,
            ..Default::default()
        };
        let settings = Settings::default();
        let h = harness_on(store.schedules(), runner, Clock::new(), settings, Some(bus.clone()));
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
        let sent = store.bus().history(query).await.unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload["hello"], "scout");
        assert_eq!(sent[0].from, "schedule:nudge");
    })
    .await
}
}
