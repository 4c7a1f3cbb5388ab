//! The DAG: dependents wait, are released the moment their last dependency is done, are
//! blocked (transitively) when one is lost; plans are all or nothing and cycles named.

use super::*;
use crate::tasks::plan::Plan;

fn after(title: &str, deps: &[TaskId]) -> TaskSpec {
    TaskSpec {
        depends_on: deps.to_vec(),
        ..spec(title)
    }
}

async fn finish(tasks: &Tasks, id: TaskId) {
    let t = claim(tasks, "w").await;
    assert_eq!(t.id, id, "expected to claim {id}");
    tasks.complete(&lease(&t), None).await.expect("complete");
}

on_each_backend! {
#[tokio::test]
async fn dependents_become_ready_when_their_last_dependency_is_done() {
    let (_dir, tasks) = service().await;
    let a = add(&tasks, "a").await;
    let b = add(&tasks, "b").await;
    let c = tasks.add(after("c", &[a, b, a])).await.expect("add");
    assert_eq!(status(&tasks, c).await, Status::Pending);
    assert_eq!(
        tasks.get(c).await.expect("get").expect("c").depends_on,
        vec![a, b]
    );
    finish(&tasks, a).await;
    assert_eq!(status(&tasks, c).await, Status::Pending);
    finish(&tasks, b).await;
    assert_eq!(status(&tasks, c).await, Status::Ready);
    // A task added after its dependency is done is ready at once.
    let d = tasks.add(after("d", &[a])).await.expect("add");
    assert_eq!(status(&tasks, d).await, Status::Ready);
}

#[tokio::test]
async fn a_lost_dependency_blocks_dependents_transitively_with_the_reason() {
    let (_dir, tasks) = service().await;
    let a = add(&tasks, "fetch").await;
    let b = tasks.add(after("build", &[a])).await.expect("add");
    let c = tasks.add(after("ship", &[b])).await.expect("add");
    let t = claim(&tasks, "w").await;
    tasks
        .fail(&lease(&t), "network down", false)
        .await
        .expect("fail");
    for id in [b, c] {
        let task = tasks.get(id).await.expect("get").expect("exists");
        assert_eq!(task.status, Status::Blocked);
        assert_eq!(
            task.error.as_deref(),
            Some(format!("blocked: task {a} (fetch) failed: network down").as_str())
        );
    }
    // New work on a lost dependency is born blocked.
    let d = tasks.add(after("late", &[b])).await.expect("add");
    assert_eq!(status(&tasks, d).await, Status::Blocked);

    let x = add(&tasks, "x").await;
    let y = tasks.add(after("y", &[x])).await.expect("add");
    tasks.cancel(x, "not needed").await.expect("cancel");
    assert_eq!(status(&tasks, y).await, Status::Blocked);
}

#[tokio::test]
async fn a_missing_dependency_is_refused() {
    let (_dir, tasks) = service().await;
    let err = tasks
        .add(after("orphan", &[42]))
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "'orphan' depends on task 42, which does not exist"
    );
    assert!(tasks.counts().await.expect("counts").is_empty());
}

}
const PLAN: &str = r#"
[[task]]
id = "ship"
title = "Ship it"
depends_on = ["build", "docs"]

[[task]]
id = "fetch"
title = "Fetch"
priority = "high"

[[task]]
id = "build"
title = "Build"
depends_on = ["fetch"]

[[task]]
id = "docs"
title = "Docs"
"#;

on_each_backend! {
#[tokio::test]
async fn a_plan_loads_in_dependency_order_with_symbols_resolved() {
    let (_dir, tasks) = service().await;
    let ids = tasks
        .import(Plan::parse(PLAN).expect("parse"))
        .await
        .expect("import");
    let keys: Vec<&str> = ids.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ship", "fetch", "build", "docs"]);
    let id = |k: &str| {
        ids.iter()
            .find(|(key, _)| key == k)
            .map(|(_, id)| *id)
            .expect("key")
    };
    let ship = tasks.get(id("ship")).await.expect("get").expect("ship");
    assert_eq!(ship.key.as_deref(), Some("ship"));
    assert_eq!(ship.depends_on, {
        let mut v = vec![id("build"), id("docs")];
        v.sort();
        v
    });
    assert_eq!(status(&tasks, id("ship")).await, Status::Pending);
    // fetch is high priority, so it is claimed first.
    finish(&tasks, id("fetch")).await;
    assert_eq!(status(&tasks, id("build")).await, Status::Ready);
}

#[tokio::test]
async fn a_plan_with_a_cycle_or_a_bad_reference_stores_nothing() {
    let (_dir, tasks) = service().await;
    let cyclic = "[[task]]\nid = \"a\"\ntitle = \"A\"\ndepends_on = [\"b\"]\n\
                  [[task]]\nid = \"b\"\ntitle = \"B\"\ndepends_on = [\"a\"]\n";
    let err = tasks
        .import(Plan::parse(cyclic).expect("parse"))
        .await
        .expect_err("cycle");
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");

    let typo = "[[task]]\nid = \"fetch\"\ntitle = \"F\"\n\
                [[task]]\nid = \"b\"\ntitle = \"B\"\ndepends_on = [\"fech\"]\n";
    let err = tasks
        .import(Plan::parse(typo).expect("parse"))
        .await
        .expect_err("typo");
    assert_eq!(
        err.to_string(),
        "task 'b' depends on 'fech', which the plan does not define (did you mean 'fetch'?)"
    );

    // The missing id is found inside the transaction, after earlier tasks were checked:
    // still nothing is stored.
    let missing = "[[task]]\nid = \"ok\"\ntitle = \"fine\"\n\
                   [[task]]\nid = \"bad\"\ntitle = \"B\"\ndepends_on = [\"ok\", 777]\n";
    let err = tasks
        .import(Plan::parse(missing).expect("parse"))
        .await
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "bad depends on task 777, which does not exist"
    );
    assert!(tasks.counts().await.expect("counts").is_empty());
}
}
