//! The schedule store's own semantics, on each backend: what it keeps, the claim of a
//! fire time, leadership and the change counter, also with two nodes (two connections to
//! one database) writing at once.

use super::*;

fn start(name: &str, kind: RunKind, at: Millis) -> RunStart {
    RunStart {
        schedule: name.into(),
        kind,
        scheduled: at,
        started: at,
        outcome: "running",
        error: None,
    }
}

fn stored(name: &str, next: Millis) -> StoredSchedule {
    let mut row = StoredSchedule::new(every(name, 60), "cli");
    row.next_fire = Some(next);
    row
}

on_each_backend! {
#[tokio::test]
async fn keeps_schedules_fire_times_and_pruned_history() {
    let (_db, store) = TestDb::open().await;
    let store = store.schedules();
    let row = stored("job", 60_000);
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
    for i in 0..40 {
        let ids = store
            .start_runs("n".into(), vec![start("job", RunKind::Scheduled, i)])
            .await
            .unwrap();
        let end = RunEnd {
            id: ids[0].expect("a new fire time is not refused"),
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
    let runs = runs_of(&*store, "job").await;
    assert!(runs.len() >= 10 && runs.len() < 10 + 16, "{}", runs.len());
    assert_eq!(runs.last().unwrap().error.as_deref(), Some("boom"));
    let got = store.get_schedule("job".into()).await.unwrap().unwrap();
    assert!(got.paused && got.failures == 3 && got.last_fire == Some(60_000));
    assert_eq!(got.next_fire, Some(120_000));
    assert_eq!(got.last_outcome.as_deref(), Some("failed"));
    assert!(store
        .set_paused("job".into(), false, Some(5))
        .await
        .unwrap());
    let resumed = &store.list_schedules().await.unwrap()[0];
    assert_eq!((resumed.paused, resumed.failures, resumed.next_fire), (false, 0, Some(5)));
    assert!(!store.set_paused("nope".into(), true, None).await.unwrap());
    assert!(store.delete_schedule("job".into()).await.unwrap());
    assert!(!store.delete_schedule("job".into()).await.unwrap());
    assert!(runs_of(&*store, "job").await.is_empty());
}

#[tokio::test]
async fn a_fire_time_is_started_once_until_its_run_is_interrupted() {
    let (_db, store) = TestDb::open().await;
    let store = store.schedules();
    store.put_schedule(stored("job", 10), 0).await.unwrap();
    let first = store
        .start_runs("a".into(), vec![start("job", RunKind::Scheduled, 10)])
        .await
        .unwrap();
    assert!(first[0].is_some());
    // Another node, the same fire (as a catch-up, too), and a duplicate in one batch.
    let again = store
        .start_runs(
            "b".into(),
            vec![
                start("job", RunKind::Catchup, 10),
                start("job", RunKind::Scheduled, 20),
                start("job", RunKind::Scheduled, 20),
                start("job", RunKind::Manual, 10),
                start("job", RunKind::Manual, 10),
            ],
        )
        .await
        .unwrap();
    assert_eq!(again[0], None, "10 is taken");
    assert!(again[1].is_some(), "20 is new");
    assert_eq!(again[2], None, "20 was taken earlier in the batch");
    assert!(again[3].is_some() && again[4].is_some(), "manual runs hold no fire time");
    assert_ne!(again[3], again[4]);
    // A skipped fire holds its time too.
    let mut skipped = start("job", RunKind::Scheduled, 30);
    skipped.outcome = "skipped";
    assert!(store.start_runs("a".into(), vec![skipped.clone()]).await.unwrap()[0].is_some());
    assert_eq!(store.start_runs("b".into(), vec![skipped]).await.unwrap()[0], None);
    let row = store.get_schedule("job".into()).await.unwrap().unwrap();
    assert_eq!(row.last_outcome.as_deref(), Some("skipped"));

    // a dies: its run of 10 is interrupted, which frees 10 for a catch-up.
    let mut owners = store.running_owners().await.unwrap();
    owners.sort();
    assert_eq!(owners, [Some("a".to_string()), Some("b".to_string())]);
    let interrupted = store
        .interrupt_runs(Some("a".into()), "a ended".into())
        .await
        .unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!((interrupted[0].scheduled, interrupted[0].outcome.as_str()), (10, "running"));
    assert!(store
        .interrupt_runs(Some("a".into()), "a ended".into())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.running_owners().await.unwrap(), [Some("b".to_string())]);
    let row = store.get_schedule("job".into()).await.unwrap().unwrap();
    assert_eq!(row.last_outcome.as_deref(), Some("interrupted"));
    let catchup = store
        .start_runs("b".into(), vec![start("job", RunKind::Catchup, 10)])
        .await
        .unwrap();
    assert!(catchup[0].is_some(), "an interrupted fire can run again");
    let runs = runs_of(&*store, "job").await;
    let of_10: Vec<(&str, &str)> = runs
        .iter()
        .filter(|r| r.scheduled == 10)
        .map(|r| (r.kind.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        of_10,
        [
            ("scheduled", "interrupted"),
            ("manual", "running"),
            ("manual", "running"),
            ("catchup", "running")
        ]
    );
    assert_eq!(runs[0].error.as_deref(), Some("a ended"));
}

/// Two nodes start the same hundred fire times at once, in opposite orders: each fire
/// time is granted to exactly one of them.
#[tokio::test]
async fn concurrent_starts_of_the_same_fires_grant_each_once() {
    let (db, store) = TestDb::open().await;
    let (a, b) = (store.schedules(), db.open_again().await.schedules());
    let fires: Vec<RunStart> = (0..100)
        .map(|i| start(&format!("s{}", i % 10), RunKind::Scheduled, i))
        .collect();
    let reversed: Vec<RunStart> = fires.iter().rev().cloned().collect();
    for round in 0..5 {
        let shift = |runs: &[RunStart]| -> Vec<RunStart> {
            runs.iter()
                .cloned()
                .map(|mut r| {
                    r.scheduled += round * 1000;
                    r
                })
                .collect()
        };
        let (got_a, got_b) = futures_util::future::join(
            a.start_runs("a".into(), shift(&fires)),
            b.start_runs("b".into(), shift(&reversed)),
        )
        .await;
        let (got_a, mut got_b) = (got_a.unwrap(), got_b.unwrap());
        got_b.reverse();
        for (i, (x, y)) in got_a.iter().zip(&got_b).enumerate() {
            assert!(x.is_some() != y.is_some(), "round {round}, fire {i}: {x:?} {y:?}");
        }
    }
}

/// Many nodes try to take a lapsed lead at once: exactly one gets it; the holder renews,
/// the others do not, and a holder found dead is replaced only if it still holds it.
#[tokio::test]
async fn one_of_many_concurrent_nodes_takes_the_lead() {
    let (db, store) = TestDb::open().await;
    let mut nodes = vec![store.schedules()];
    for _ in 0..3 {
        nodes.push(db.open_again().await.schedules());
    }
    assert_eq!(nodes[0].leader().await.unwrap(), None);
    for round in 0..5i64 {
        let now = round * 100_000;
        let tries = (0..8).map(|i| {
            let store = nodes[i % nodes.len()].clone();
            async move { store.try_lead(format!("n{i}"), now, now + 15_000).await }
        });
        let got: Vec<bool> = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.iter().filter(|l| **l).count(), 1, "round {round}: {got:?}");
        let (holder, until) = nodes[1].leader().await.unwrap().unwrap();
        assert_eq!(until, now + 15_000);
        assert!(nodes[2].try_lead(holder.clone(), now + 1, now + 16_000).await.unwrap());
        assert!(!nodes[3].try_lead("late".into(), now + 2, now + 17_000).await.unwrap());
    }
    let (holder, _) = nodes[0].leader().await.unwrap().unwrap();
    assert!(!nodes[0].take_lead_from("x".into(), "not the holder".into(), 1).await.unwrap());
    assert!(nodes[0].take_lead_from("x".into(), holder, 1).await.unwrap());
    assert_eq!(nodes[3].leader().await.unwrap(), Some(("x".to_string(), 1)));
}

#[tokio::test]
async fn the_change_counter_moves_on_edits_not_on_fires_or_runs() {
    let (db, store) = TestDb::open().await;
    let (store, other) = (store.schedules(), db.open_again().await.schedules());
    let version = || async { other.schedule_version().await.unwrap() };
    let v0 = version().await;
    let row = stored("job", 60_000);
    store.put_schedule(row.clone(), 0).await.unwrap();
    let v1 = version().await;
    assert!(v1 > v0, "added");
    store.put_schedule(row.clone(), 1).await.unwrap();
    store
        .record_fires(vec![("job".into(), 60_000, Some(120_000))])
        .await
        .unwrap();
    let ids = store
        .start_runs("n".into(), vec![start("job", RunKind::Scheduled, 60_000)])
        .await
        .unwrap();
    let end = RunEnd {
        id: ids[0].unwrap(),
        schedule: "job".into(),
        ended: 60_001,
        outcome: "ok",
        error: None,
        failures: 0,
        pause: false,
        keep: 10,
    };
    store.finish_runs(vec![end]).await.unwrap();
    assert_eq!(version().await, v1, "unchanged, fired, ran: no change");
    store.set_paused("job".into(), true, None).await.unwrap();
    let v2 = version().await;
    assert!(v2 > v1, "paused");
    store.set_paused("job".into(), false, Some(1)).await.unwrap();
    let v3 = version().await;
    assert!(v3 > v2, "resumed");
    store.put_schedule(stored("job", 0), 2).await.unwrap();
    assert_eq!(version().await, v3, "only fire state differs: no change");
    let mut redefined = stored("job", 0);
    redefined.def.every = Some(Duration::from_secs(30));
    store.put_schedule(redefined, 3).await.unwrap();
    let v4 = version().await;
    assert!(v4 > v3, "redefined");
    store.delete_schedule("job".into()).await.unwrap();
    assert!(version().await > v4, "removed");
}
}
