//! Tasks claimed for an agent that declares `tasks = { category = ... }`.
//!
//! A small claimer task runs beside each live instance: it waits for a ready task of the
//! category (the task service wakes it when one becomes ready), claims it under a lease and
//! hands it to the runner over a channel of one. Claiming in its own task keeps the claim
//! out of the runner's `select!`, so a message or a tick arriving never drops a claim that
//! is half-way through the store (which would strand the task until its lease lapsed).
//! The runner completes the task with the handler's result, or fails it (with a retry)
//! when the handler errors or stalls.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::agent::TaskWork;
use crate::tasks::{ClaimRequest, Tasks};

/// How long one claim waits before asking again (the loop runs until the instance ends).
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// After a store error, wait before claiming again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Claimed tasks for one live instance; dropping it stops claiming.
pub struct TaskFeed {
    pub rx: mpsc::Receiver<TaskWork>,
    claimer: JoinHandle<()>,
    pub tasks: Tasks,
}

impl Drop for TaskFeed {
    fn drop(&mut self) {
        self.claimer.abort();
    }
}

impl TaskFeed {
    pub fn start(tasks: Tasks, agent: &str, category: &str) -> TaskFeed {
        let (tx, rx) = mpsc::channel(1);
        let request = ClaimRequest {
            agent: agent.to_string(),
            category: (!category.is_empty()).then(|| category.to_string()),
            wait: Some(CLAIM_WAIT),
            ..ClaimRequest::default()
        };
        let claimer = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                loop {
                    // Wait for room first: never hold a claimed task nobody will take.
                    let Ok(permit) = tx.reserve().await else {
                        return;
                    };
                    match tasks.claim(request.clone()).await {
                        Ok(Some(task)) => {
                            let Some(lease) = task.lease() else { continue };
                            let json = serde_json::to_value(&task).unwrap_or_default();
                            permit.send(TaskWork {
                                id: task.id,
                                lease,
                                task: json,
                            });
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(agent = %request.agent, error = %e, "task claim failed");
                            tokio::time::sleep(RETRY_AFTER_ERROR).await;
                        }
                    }
                }
            }
        });
        TaskFeed { rx, claimer, tasks }
    }
}
