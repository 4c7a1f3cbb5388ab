//! The state machine end to end: add, claim, progress, complete, fail, cancel, and the
//! refusals that leave state unchanged.

use super::*;

on_each_backend! {
#[tokio::test]
async fn a_task_goes_ready_claimed_running_done_with_events() {
    let (_dir, tasks) = service().await;
    let mut events = tasks.subscribe().expect("subscribe");
    let id = add(&tasks, "write the report").await;
    assert_eq!(status(&tasks, id).await, Status::Ready);

    let task = claim(&tasks, "scout").await;
    assert_eq!(
        (task.id, task.status, task.attempts),
        (id, Status::Claimed, 1)
    );
    assert_eq!(task.agent.as_deref(), Some("scout"));

    tasks
        .progress(&lease(&task), 40.0, Some("halfway".into()))
        .await
        .expect("progress");
    let running = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!((running.status, running.progress), (Status::Running, 40.0));
    assert_eq!(running.note.as_deref(), Some("halfway"));

    tasks
        .complete(&lease(&task), Some(serde_json::json!({"pages": 3})))
        .await
        .expect("complete");
    let done = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.result, Some(serde_json::json!({"pages": 3})));

    let mut seen = Vec::new();
    while let Some(e) = events.try_recv() {
        seen.push((
            e.payload["old"].as_str().map(String::from),
            e.payload["new"].as_str().unwrap_or("?").to_string(),
        ));
        assert_eq!(e.payload["id"], id);
    }
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        seen,
        vec![
            (None, "ready".into()),
            (s("ready"), "claimed".into()),
            (s("claimed"), "running".into()),
            (s("running"), "done".into()),
        ]
    );
    // The same transitions are in the store's log, for other processes.
    let logged = tasks
        .store()
        .task_events(0, 100, Some(id))
        .await
        .expect("log");
    assert_eq!(logged.len(), 4);
    assert_eq!(logged[2].note.as_deref(), Some("halfway"));
}

#[tokio::test]
async fn fail_retries_until_attempts_run_out() {
    let (_dir, tasks) = service().await;
    let id = tasks
        .add(TaskSpec {
            max_attempts: Some(2),
            ..spec("flaky")
        })
        .await
        .expect("add");
    let first = claim(&tasks, "a").await;
    let after = tasks
        .fail(&lease(&first), "timeout talking to api", true)
        .await;
    assert_eq!(after.expect("fail"), Status::Ready);
    let second = claim(&tasks, "b").await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.error.as_deref(), Some("timeout talking to api"));
    let after = tasks.fail(&lease(&second), "still down", true).await;
    assert_eq!(after.expect("fail"), Status::Failed);
    let failed = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(failed.error.as_deref(), Some("still down"));
    assert!(tasks.claim(claim_as("c")).await.expect("claim").is_none());
}

#[tokio::test]
async fn fail_without_retry_is_final_at_once() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "bad input").await;
    let t = claim(&tasks, "a").await;
    assert_eq!(
        tasks
            .fail(&lease(&t), "unparseable", false)
            .await
            .expect("fail"),
        Status::Failed
    );
    assert_eq!(status(&tasks, id).await, Status::Failed);
}

#[tokio::test]
async fn only_the_holder_may_finish_a_task_and_refusals_change_nothing() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "mine").await;
    let t = claim(&tasks, "owner").await;
    let stranger = Lease {
        agent: "stranger".into(),
        ..lease(&t)
    };
    let err = tasks.complete(&stranger, None).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!("task {id} is held by agent 'owner', not 'stranger' (claim a task before completing it)")
    );
    let err = tasks
        .progress(&lease(&t), 101.0, None)
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "progress must be between 0 and 100, got 101"
    );
    let err = tasks
        .progress(&lease(&t), -1.0, None)
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "progress must be between 0 and 100, got -1"
    );
    assert_eq!(status(&tasks, id).await, Status::Claimed);

    // A task nobody claimed is held by nobody.
    let other = add(&tasks, "unclaimed").await;
    let ghost = Lease {
        id: other,
        agent: "owner".into(),
        attempt: 1,
    };
    let err = tasks.complete(&ghost, None).await.expect_err("refused");
    assert!(
        err.to_string().starts_with(&format!(
            "agent 'owner' does not hold task {other}: it is ready"
        )),
        "{err}"
    );
    tasks.complete(&lease(&t), None).await.expect("complete");
    let err = tasks.complete(&lease(&t), None).await.expect_err("twice");
    assert_eq!(err.to_string(), format!("task {id} is already done"));
}

#[tokio::test]
async fn cancel_is_final_and_explains_itself() {
    let (_dir, tasks) = service().await;
    let id = add(&tasks, "obsolete").await;
    tasks.cancel(id, "plan changed").await.expect("cancel");
    let t = tasks.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (t.status, t.error.as_deref()),
        (Status::Cancelled, Some("plan changed"))
    );
    let err = tasks.cancel(id, "again").await.expect_err("final");
    assert_eq!(err.to_string(), format!("task {id} is already cancelled"));
    let err = tasks.cancel(9999, "x").await.expect_err("missing");
    assert_eq!(err.to_string(), "no task 9999");
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_stored() {
    let (_dir, tasks) = service().await;
    let cases = [
        (spec(""), "title is required (a non-empty string)"),
        (
            TaskSpec {
                tags: vec!["has space".into()],
                ..spec("t")
            },
            "tag 'has space' must be 1 to 64 letters, digits or _ - . : /",
        ),
        (
            TaskSpec {
                max_attempts: Some(0),
                ..spec("t")
            },
            "max_attempts must be between 1 and 1000, got 0",
        ),
    ];
    for (bad, message) in cases {
        let err = tasks.add(bad).await.expect_err("refused");
        assert_eq!(err.to_string(), message);
        assert!(!err.is_world());
    }
    let err = tasks
        .claim(ClaimRequest {
            lease: Some(Duration::ZERO),
            ..claim_as("a")
        })
        .await
        .expect_err("expired lease");
    assert_eq!(
        err.to_string(),
        "lease must be at least 10ms, got 0s (a lease that has already expired cannot hold a task)"
    );
    assert!(tasks.counts().await.expect("counts").is_empty());
}

#[tokio::test]
async fn the_event_log_is_pruned_to_the_newest_events_but_tasks_stay() {
    let (_dir, tasks) = service().await;
    for i in 0..5 {
        add(&tasks, &format!("t{i}")).await;
    }
    let store = tasks.store();
    assert_eq!(store.last_task_event().await.expect("last"), 5);
    assert_eq!(store.prune_task_events(2).await.expect("prune"), 3);
    assert_eq!(store.prune_task_events(2).await.expect("prune"), 0);
    let left: Vec<i64> = store
        .task_events(0, 100, None)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![4, 5]);
    // New events continue after the newest, never reusing a pruned number.
    add(&tasks, "t5").await;
    assert_eq!(store.last_task_event().await.expect("last"), 6);
    assert_eq!(
        tasks.counts().await.expect("counts"),
        vec![(Status::Ready, 6)]
    );
}
}
