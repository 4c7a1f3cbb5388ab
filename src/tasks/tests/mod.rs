//! The task service through its public API, on a real store: each test in
//! `on_each_backend!` runs on SQLite (a file in a temp directory) and on PostgreSQL (a
//! fresh schema); see `store::testing`. Time-dependent tests run on tokio's paused clock:
//! they never sleep for real.

mod claim;
mod deps;
mod lease;
mod lifecycle;
mod nodes;

use std::time::Duration;

use super::*;
use crate::bus::BusConfig;
use crate::store::testing::{on_each_backend, TestDb, TestStore};

/// A service on a fresh database of the running test's backend; keep the `TestDb` alive
/// for the test's duration.
async fn service() -> (TestDb, Tasks) {
    service_with(TasksConfig::default()).await
}

async fn service_with(config: TasksConfig) -> (TestDb, Tasks) {
    let (db, store) = TestDb::open().await;
    (db, over(store, config))
}

/// Another service over an existing store (another process, as far as wake-ups go).
fn over(store: TestStore, config: TasksConfig) -> Tasks {
    let bus = Bus::new(store.bus(), BusConfig::default()).expect("bus");
    Tasks::new(store.tasks(), bus, config).expect("tasks")
}

fn spec(title: &str) -> TaskSpec {
    TaskSpec {
        title: title.to_string(),
        ..TaskSpec::default()
    }
}

async fn add(tasks: &Tasks, title: &str) -> TaskId {
    tasks.add(spec(title)).await.expect("add")
}

fn claim_as(agent: &str) -> ClaimRequest {
    ClaimRequest {
        agent: agent.to_string(),
        ..ClaimRequest::default()
    }
}

/// Claims at once and fails the test if nothing was ready.
async fn claim(tasks: &Tasks, agent: &str) -> Task {
    tasks
        .claim(claim_as(agent))
        .await
        .expect("claim")
        .expect("a ready task")
}

async fn status(tasks: &Tasks, id: TaskId) -> Status {
    tasks.get(id).await.expect("get").expect("exists").status
}

fn lease(task: &Task) -> Lease {
    task.lease().expect("a held task has a lease")
}

const SECOND: Duration = Duration::from_secs(1);
