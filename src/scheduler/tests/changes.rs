//! What other processes do while a scheduler runs: schedules added, paused, resumed and
//! removed in the store are picked up without a restart; runs a dead process left
//! `running` are marked interrupted and the missed-run policy decides what runs again.

use super::*;

/// A stored row as `dreamos schedule add` writes it: due first at `next`.
fn row(def: ScheduleDef, next: Millis) -> StoredSchedule {
    let mut s = StoredSchedule::new(def, "cli");
    s.next_fire = Some(next);
    s
}

fn started(h: &Harness, name: &str) -> usize {
    h.runner
        .started
        .borrow()
        .iter()
        .filter(|r| r.0 == name)
        .count()
}

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn changes_by_another_process_apply_without_a_restart() {
    local(async {
        let h = harness(FakeRunner::default(), "2026-01-01T00:00:00Z").await;
        let start = ms("2026-01-01T00:00:00Z");
        // Another process, with its own connection to the database, adds a schedule
        // firing every 10 s.
        let other = h._db.as_ref().expect("a database").open_again().await.schedules();
        other
            .put_schedule(row(every("ext", 10), start + 10_000), start)
            .await
            .unwrap();
        advance(31).await;
        assert_eq!(started(&h, "ext"), 3, "added: fires without a restart");
        assert_eq!(h.sched.list().len(), 1);

        other.set_paused("ext".into(), true, None).await.unwrap();
        advance(1).await;
        assert!(h.sched.list()[0].paused, "the pause is seen");
        advance(60).await;
        assert_eq!(started(&h, "ext"), 3, "paused: no more runs");

        let now = h.sched.now();
        other
            .set_paused("ext".into(), false, Some(now + 5_000))
            .await
            .unwrap();
        advance(6).await;
        assert_eq!(
            started(&h, "ext"),
            4,
            "resumed at the time the resumer stored"
        );

        // Redefined: every 20 s from its stored next time.
        let now = h.sched.now();
        other
            .put_schedule(row(every("ext", 20), now + 20_000), now)
            .await
            .unwrap();
        advance(41).await;
        assert_eq!(started(&h, "ext"), 6, "the new interval applies");
        assert_eq!(h.sched.list()[0].expr, "every 20s");

        other.delete_schedule("ext".into()).await.unwrap();
        advance(1).await;
        assert!(h.sched.list().is_empty(), "removed");
        advance(60).await;
        assert_eq!(started(&h, "ext"), 6, "removed: no more runs");
        h.stop.notify_one();
    })
    .await
}
}

/// A node name of this host whose process has ended.
fn dead_node() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let me = leader::node_id();
    let (rest, _) = me.rsplit_once(':').unwrap();
    let (place, _) = rest.rsplit_once(':').unwrap();
    format!("{place}:{pid}:1")
}

#[test]
fn only_ended_processes_of_this_host_are_dead() {
    assert!(leader::is_dead(&dead_node()));
    assert!(!leader::is_dead(&leader::node_id()), "this process");
    let pid = std::process::id();
    assert!(!leader::is_dead(&format!("elsewhere/1:{pid}:1")));
    assert!(!leader::is_dead("not a node name"));
}

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn runs_of_a_dead_process_are_interrupted_and_the_policy_decides() {
    local(async {
        let (db, store) = TestDb::open().await;
        let store = store.schedules();
        let now = ms("2026-01-01T09:00:30Z");
        let today = ms("2026-01-01T09:00:00Z");
        let tomorrow = ms("2026-01-02T09:00:00Z");
        let dead = dead_node();
        for (name, policy) in [
            ("once", MissedPolicy::RunOnce),
            ("skip", MissedPolicy::Skip),
            ("live", MissedPolicy::RunOnce),
        ] {
            let mut def = cron(name, "0 9 * * *", "UTC");
            def.missed = policy;
            let mut s = row(def, tomorrow);
            s.last_fire = Some(today);
            store.put_schedule(s, now).await.unwrap();
            let owner = if name == "live" {
                leader::node_id()
            } else {
                dead.clone()
            };
            let start = RunStart {
                schedule: name.into(),
                kind: RunKind::Scheduled,
                scheduled: today,
                started: today,
                outcome: "running",
                error: None,
            };
            store.start_runs(owner, vec![start]).await.unwrap();
        }
        let clock = Clock::starting_at(now);
        let h = harness_with(store, FakeRunner::default(), clock, Settings::default());
        h.sched.load().await.unwrap();
        advance(2).await;
        let mut runs = std::collections::HashMap::new();
        for name in ["once", "skip", "live"] {
            runs.insert(name, runs_of(&*h.store, name).await);
        }
        let outcomes = |name: &str| -> Vec<(String, String)> {
            runs[name]
                .iter()
                .map(|r| (r.kind.clone(), r.outcome.clone()))
                .collect()
        };
        let interrupted = ("scheduled".to_string(), "interrupted".to_string());
        assert_eq!(
            outcomes("once"),
            [interrupted.clone(), ("catchup".into(), "ok".into())],
            "run_once: the interrupted run runs again"
        );
        assert_eq!(outcomes("skip"), [interrupted], "skip: not again");
        assert_eq!(
            outcomes("live"),
            [("scheduled".to_string(), "running".to_string())],
            "a live owner's run is left alone"
        );
        let error = runs["once"][0].error.clone().unwrap_or_default();
        assert!(error.contains(&dead), "{error}");
        h.stop.notify_one();
        drop(db);
    })
    .await
}
}
