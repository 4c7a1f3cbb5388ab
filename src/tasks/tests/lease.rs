//! Leases, heartbeats and deadlines on tokio's paused clock.

use super::*;

fn leased(agent: &str, secs: u64) -> ClaimRequest {
    ClaimRequest {
        lease: Some(Duration::from_secs(secs)),
        ..claim_as(agent)
    }
}

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_puts_the_task_back_with_its_attempt_counted() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "slow").await;
    let first = tasks
        .claim(leased("a", 5))
        .await
        .expect("claim")
        .expect("task");
    tokio::time::advance(3 * SECOND).await;
    // Progress renews the lease: it now ends 5s from here, not 2s.
    tasks
        .progress(&lease(&first), 30.0, None)
        .await
        .expect("progress");
    tokio::time::advance(4 * SECOND).await;
    assert!(tasks.claim(leased("b", 5)).await.expect("claim").is_none());
    tokio::time::advance(2 * SECOND).await;
    let again = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (again.status, again.attempts, again.progress),
        (Status::Ready, 1, 0.0)
    );
    assert!(again.agent.is_none());
    let second = tasks
        .claim(leased("b", 5))
        .await
        .expect("claim")
        .expect("task");
    assert_eq!((second.id, second.attempts), (id, 2));

    // The old lease is dead: the first agent learns it was claimed again.
    let err = tasks
        .complete(&lease(&first), None)
        .await
        .expect_err("stale");
    assert_eq!(
        err.to_string(),
        format!("task {id} is held by agent 'b', not 'a' (claim a task before completing it)")
    );
    let err = tasks
        .heartbeat(&Lease {
            agent: "b".into(),
            ..lease(&first)
        })
        .await
        .expect_err("old attempt");
    assert!(
        err.to_string().contains("as attempt 2, not attempt 1"),
        "{err}"
    );
    tasks
        .complete(&lease(&second), None)
        .await
        .expect("complete");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_lease_and_an_expired_one_is_refused() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "long").await;
    let t = tasks
        .claim(leased("a", 5))
        .await
        .expect("claim")
        .expect("task");
    for _ in 0..4 {
        tokio::time::advance(4 * SECOND).await;
        tasks.heartbeat(&lease(&t)).await.expect("heartbeat");
    }
    assert_eq!(status(&tasks, id).await, Status::Claimed);
    tokio::time::advance(6 * SECOND).await;
    // Nobody swept yet (no claim, no read): the holder is still refused.
    let err = tasks.complete(&lease(&t), None).await.expect_err("expired");
    assert!(
        err.to_string()
            .starts_with(&format!("the lease of task {id} (attempt 1) expired at ")),
        "{err}"
    );
    assert_eq!(status(&tasks, id).await, Status::Ready);
}

#[tokio::test(start_paused = true)]
async fn running_out_of_attempts_by_lapsing_fails_the_task() {
    let (_dir, tasks) = service().await;
    let id = tasks
        .add(TaskSpec {
            max_attempts: Some(1),
            ..spec("doomed")
        })
        .await
        .expect("add");
    let dependent = tasks
        .add(TaskSpec {
            depends_on: vec![id],
            ..spec("after")
        })
        .await
        .expect("add");
    tasks
        .claim(leased("a", 1))
        .await
        .expect("claim")
        .expect("task");
    tokio::time::advance(2 * SECOND).await;
    assert_eq!(tasks.sweep().await.expect("sweep"), 2);
    let t = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(t.status, Status::Failed);
    assert_eq!(
        t.error.as_deref(),
        Some("the lease of agent 'a' lapsed (attempt 1 of 1)")
    );
    assert_eq!(status(&tasks, dependent).await, Status::Blocked);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_times_the_task_out() {
    let (_dir, tasks) = service().await;
    let id = tasks
        .add(TaskSpec {
            deadline: Some(Duration::from_secs(60)),
            ..spec("urgent")
        })
        .await
        .expect("add");
    let t = claim(&tasks, "a").await;
    tokio::time::advance(30 * SECOND).await;
    assert_eq!(status(&tasks, id).await, Status::Claimed);
    tokio::time::advance(31 * SECOND).await;
    let timed_out = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(timed_out.status, Status::Timeout);
    assert!(
        timed_out
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("its deadline passed at "),
        "{:?}",
        timed_out.error
    );
    let err = tasks
        .complete(&lease(&t), None)
        .await
        .expect_err("too late");
    assert_eq!(err.to_string(), format!("task {id} is already timeout"));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_claim_wakes_when_a_lease_lapses() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "contested").await;
    tasks
        .claim(leased("a", 3))
        .await
        .expect("claim")
        .expect("task");
    let started = tokio::time::Instant::now();
    let t = tasks
        .claim(ClaimRequest {
            wait: Some(Duration::from_secs(30)),
            ..leased("b", 3)
        })
        .await
        .expect("claim")
        .expect("the lapsed task");
    assert_eq!((t.id, t.attempts), (id, 2));
    let waited = started.elapsed();
    assert!(waited >= 3 * SECOND && waited < 5 * SECOND, "{waited:?}");
}
}
