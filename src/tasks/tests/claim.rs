//! Claim order, filters, waiting, and many claimers at once.

use std::collections::HashSet;

use super::*;

fn with_priority(title: &str, priority: Priority) -> TaskSpec {
    TaskSpec {
        priority,
        ..spec(title)
    }
}

on_each_backend! {
#[tokio::test]
async fn highest_priority_first_then_oldest_first() {
    let (_dir, tasks) = service().await;
    let low = tasks
        .add(with_priority("low", Priority::Low))
        .await
        .expect("add");
    let n1 = add(&tasks, "normal 1").await;
    let crit = tasks
        .add(with_priority("crit", Priority::Critical))
        .await
        .expect("add");
    let n2 = add(&tasks, "normal 2").await;
    let high = tasks
        .add(with_priority("high", Priority::High))
        .await
        .expect("add");
    let mut order = Vec::new();
    while let Some(t) = tasks.claim(claim_as("w")).await.expect("claim") {
        order.push(t.id);
    }
    assert_eq!(order, vec![crit, high, n1, n2, low]);

    // list sorts the same way.
    let listed: Vec<TaskId> = tasks
        .list(ListFilter::default())
        .await
        .expect("list")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, order);
}

#[tokio::test]
async fn filters_pick_only_matching_tasks() {
    let (_dir, tasks) = service().await;
    let plain = add(&tasks, "plain").await;
    let gpu = tasks
        .add(TaskSpec {
            category: Some("render".into()),
            tags: vec!["gpu".into(), "4k".into()],
            ..spec("render 4k")
        })
        .await
        .expect("add");
    let reserved = tasks
        .add(TaskSpec {
            assignee: Some("scout".into()),
            ..spec("for scout only")
        })
        .await
        .expect("add");
    let by = |category: Option<&str>, tags: &[&str]| ClaimRequest {
        category: category.map(String::from),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..claim_as("worker")
    };
    assert!(tasks
        .claim(by(Some("email"), &[]))
        .await
        .expect("claim")
        .is_none());
    assert!(tasks
        .claim(by(None, &["gpu", "8k"]))
        .await
        .expect("claim")
        .is_none());
    let t = tasks
        .claim(by(None, &["4k"]))
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(t.id, gpu);
    // Only scout may take the reserved task; others skip it.
    let t = tasks
        .claim(claim_as("worker"))
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(t.id, plain);
    assert!(tasks
        .claim(claim_as("worker"))
        .await
        .expect("claim")
        .is_none());
    let t = tasks
        .claim(claim_as("scout"))
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(t.id, reserved);

    let mine = tasks
        .list(ListFilter {
            assignee: Some("scout".into()),
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        mine.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![reserved]
    );
    let summary = tasks.summary_by_agent().await.expect("summary");
    let agents: Vec<&str> = summary.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(agents, ["scout", "worker"]);
    assert_eq!(summary[1].counts, vec![(Status::Claimed, 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_claim_is_woken_by_an_add_in_this_process() {
    let (_dir, tasks) = service().await;
    let waiter = {
        let tasks = tasks.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let t = tasks
                .claim(ClaimRequest {
                    wait: Some(Duration::from_secs(60)),
                    ..claim_as("patient")
                })
                .await;
            (t, started.elapsed())
        })
    };
    tokio::task::yield_now().await;
    let id = add(&tasks, "arrives later").await;
    let (t, waited) = waiter.await.expect("join");
    assert_eq!(t.expect("claim").expect("task").id, id);
    // Woken by the add, not by the one-minute timeout (re-checks may pass meanwhile).
    assert!(waited < Duration::from_secs(60), "{waited:?}");

    // And with nothing coming, the wait ends empty at its limit.
    let started = tokio::time::Instant::now();
    let none = tasks
        .claim(ClaimRequest {
            wait: Some(Duration::from_secs(5)),
            ..claim_as("patient")
        })
        .await
        .expect("claim");
    assert!(none.is_none());
    assert!(started.elapsed() >= Duration::from_secs(5));
}

/// Many claimers, in two "processes" (two stores on one database: two writers on one
/// file, or two connection pools): every task is handed out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_get_the_same_task() {
    let (dir, tasks) = service().await;
    const TASKS: usize = 400;
    const CLAIMERS: usize = 32;
    for i in 0..TASKS {
        add(&tasks, &format!("job {i}")).await;
    }
    let second_store = dir.open_again().await;
    let other = over(second_store, TasksConfig::default());
    let mut handles = Vec::new();
    for c in 0..CLAIMERS {
        let tasks = if c % 2 == 0 {
            tasks.clone()
        } else {
            other.clone()
        };
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let agent = format!("agent-{c}");
            while let Some(t) = tasks.claim(claim_as(&agent)).await.expect("claim") {
                got.push(t.id);
                tasks.complete(&lease(&t), None).await.expect("complete");
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("join"));
    }
    let unique: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!(all.len(), TASKS, "every task claimed once");
    assert_eq!(unique.len(), TASKS, "no task claimed twice");
    assert_eq!(
        tasks.counts().await.expect("counts"),
        vec![(Status::Done, TASKS as u64)]
    );
}
}
