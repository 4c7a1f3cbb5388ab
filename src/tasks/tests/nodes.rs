//! Several nodes on one database: two stores opened on it (two connection pools on
//! PostgreSQL, two writers on one file on SQLite), each with its own task service, as two
//! `dreamos serve` processes would have.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

on_each_backend! {
/// Claim loops on two nodes at once, with leases short enough to lapse: some claimers walk
/// away from their first attempt (a crashed worker), so those tasks come back when the
/// lease ends. Every attempt goes to one claimer only, every task is completed exactly
/// once, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimers_on_two_nodes_share_tasks_exactly_once_as_leases_lapse() {
    const TASKS: usize = 300;
    const CLAIMERS: usize = 24;
    let (db, first) = service().await;
    let second = over(db.open_again().await, TasksConfig::default());
    for i in 0..TASKS {
        let node = if i % 2 == 0 { &first } else { &second };
        node.add(TaskSpec {
            // Generous: under a loaded machine an attempt may also lapse by accident.
            max_attempts: Some(50),
            ..spec(&format!("job {i}"))
        })
        .await
        .expect("add");
    }
    let attempts: Arc<Mutex<HashMap<(TaskId, u32), String>>> = Arc::default();
    let completed: Arc<Mutex<Vec<TaskId>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for c in 0..CLAIMERS {
        let tasks = if c % 2 == 0 { first.clone() } else { second.clone() };
        let (attempts, completed, done) = (attempts.clone(), completed.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let agent = format!("agent-{c}");
            while done.load(Ordering::SeqCst) < TASKS {
                let request = ClaimRequest {
                    lease: Some(Duration::from_millis(300)),
                    wait: Some(Duration::from_millis(500)),
                    ..claim_as(&agent)
                };
                let Some(t) = tasks.claim(request).await.expect("claim") else {
                    continue;
                };
                let previous = attempts
                    .lock()
                    .expect("lock")
                    .insert((t.id, t.attempts), agent.clone());
                assert_eq!(previous, None, "task {} attempt {} claimed twice", t.id, t.attempts);
                if t.attempts == 1 && t.id % 4 == 0 {
                    continue; // walks away: the lease lapses and the task comes back
                }
                // A lease that lapsed meanwhile is refused; the task comes back instead.
                if tasks.complete(&lease(&t), None).await.is_ok() {
                    completed.lock().expect("lock").push(t.id);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("claimer");
    }
    let completed = completed.lock().expect("lock").clone();
    let unique: HashSet<TaskId> = completed.iter().copied().collect();
    assert_eq!(completed.len(), TASKS, "one completion per task");
    assert_eq!(unique.len(), TASKS, "no task completed twice");
    let attempts = attempts.lock().expect("lock").clone();
    let abandoned = unique.iter().filter(|id| **id % 4 == 0);
    for id in abandoned {
        assert!(
            attempts.contains_key(&(*id, 2)),
            "task {id} was taken again after its lease lapsed"
        );
    }
    for node in [&first, &second] {
        assert_eq!(
            node.counts().await.expect("counts"),
            vec![(Status::Done, TASKS as u64)]
        );
    }
}
}

/// The next `tasks.events` event on `sub`: its number, task and new status. Fails the
/// test after a generous deadline (another node's event arrives through the database).
async fn next_event(sub: &mut crate::bus::Subscription) -> (i64, TaskId, Status) {
    let message = tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("an event within 30 s")
        .expect("subscription open");
    let p = &message.payload;
    let number = |key: &str| p[key].as_i64().expect("a number");
    let status = p["new"]
        .as_str()
        .expect("a status")
        .parse()
        .expect("status");
    (number("seq"), number("id"), status)
}

/// Events committed on one node reach `tasks.events` on the other, and each node still
/// hears its own events once. Runs on PostgreSQL only: a SQLite store has one daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_on_one_node_are_published_on_every_node() {
    if crate::store::testing::postgres_url().is_none() {
        return; // postgres_url said why, once for all the PostgreSQL tests
    }
    let (db, store) = TestDb::open_on(crate::store::testing::Backend::Postgres).await;
    let a = over(store, TasksConfig::default());
    let b = over(db.open_again().await, TasksConfig::default());
    let (mut on_a, mut on_b) = (a.subscribe().expect("sub a"), b.subscribe().expect("sub b"));
    a.following().await;
    b.following().await;

    let from_a = add(&a, "added on a").await;
    let from_b = add(&b, "added on b").await;
    let t = claim(&b, "worker").await;
    b.complete(&lease(&t), None).await.expect("complete");
    // Last, one task from each node: the tail reads in commit order, so once a node heard
    // the other's last task, it would have heard any repeat of the earlier events too.
    let last_a = add(&a, "the last one from a").await;
    let last_b = add(&b, "the last one from b").await;

    for (name, sub, others_last) in [("a", &mut on_a, last_b), ("b", &mut on_b, last_a)] {
        let (mut seen, mut numbers) = (Vec::new(), HashSet::new());
        while !seen.contains(&(others_last, Status::Ready)) {
            let (seq, id, status) = next_event(sub).await;
            assert!(
                numbers.insert(seq),
                "node {name} heard event {seq} twice: {seen:?}"
            );
            seen.push((id, status));
        }
        for expected in [
            (from_a, Status::Ready),
            (from_b, Status::Ready),
            (t.id, Status::Claimed),
            (t.id, Status::Done),
        ] {
            assert!(
                seen.contains(&expected),
                "node {name} missed {expected:?}: {seen:?}"
            );
        }
    }
}
