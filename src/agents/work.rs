//! Tasks claimed for an agent that declares `tasks = { category = ..., concurrency = N }`.
//!
//! A small claimer task runs beside each live instance: it waits for a ready task of the
//! category (the task service wakes it when one becomes ready), claims it under a lease and
//! hands it to the runner. Claiming in its own task keeps the claim out of the runner's
//! `select!`, so a message or a tick arriving never drops a claim that is half-way through
//! the store (which would strand the task until its lease lapsed).
//!
//! Concurrency is a semaphore of N permits: the claimer takes a permit before each claim,
//! and the permit travels with the task until it is settled. So an agent never holds more
//! claimed tasks than it works on — nothing waits under a lease for a free handler.
//! With N > 1 and an agent that offers a [`TaskWorker`], each task runs in its own local
//! task ([`InFlight`]), beside the runner's event loop; otherwise the runner handles one
//! at a time inline. Either way the task is completed with the handler's result, or failed
//! (with a retry) when the handler errors or stalls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::agent::{TaskOutcome, TaskWork, TaskWorker};
use super::handler::call;
use crate::tasks::{ClaimRequest, Lease, Tasks};

/// How long one claim waits before asking again (the loop runs until the instance ends).
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// After a store error, wait before claiming again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// A claimed task and the permit that counts it against the agent's concurrency.
pub struct Claimed {
    pub work: TaskWork,
    pub permit: OwnedSemaphorePermit,
}

/// Claimed tasks for one live instance.
pub struct TaskFeed {
    pub rx: mpsc::Receiver<Claimed>,
    claimer: JoinHandle<()>,
    pub tasks: Tasks,
}

impl TaskFeed {
    pub fn start(tasks: Tasks, agent: &str, category: &str, concurrency: usize) -> TaskFeed {
        let concurrency = concurrency.max(1);
        let (tx, rx) = mpsc::channel(concurrency);
        let permits = Arc::new(Semaphore::new(concurrency));
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
                    // A free handler first: never hold a claimed task nobody will take.
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    match tasks.claim(request.clone()).await {
                        Ok(Some(task)) => {
                            let Some(lease) = task.lease() else { continue };
                            let json = serde_json::to_value(&task).unwrap_or_default();
                            let work = TaskWork {
                                id: task.id,
                                lease,
                                task: json,
                            };
                            if let Err(unsent) = tx.send(Claimed { work, permit }).await {
                                give_back(&tasks, &unsent.0.work.lease).await;
                                return;
                            }
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

    /// Stops claiming and hands back what was claimed but not started, so it is ready for
    /// another agent (or the next start) now instead of when its lease lapses.
    pub async fn close(mut self) {
        self.claimer.abort();
        self.rx.close();
        while let Some(claimed) = self.rx.recv().await {
            give_back(&self.tasks, &claimed.work.lease).await;
        }
    }
}

impl Drop for TaskFeed {
    fn drop(&mut self) {
        self.claimer.abort();
    }
}

/// Fails a claimed task that no handler started, with a retry.
async fn give_back(tasks: &Tasks, lease: &Lease) {
    if let Err(e) = tasks
        .fail(lease, "the agent stopped before starting it", true)
        .await
    {
        tracing::warn!(task = lease.id, error = %e, "cannot hand back a claimed task");
    }
}

/// Completes or fails a task from its handler's outcome (`Err` is why the handler failed).
/// A refusal (the lease lapsed while the handler ran) is logged: the task service already
/// moved the task on.
pub async fn settle_task(tasks: &Tasks, lease: &Lease, result: &Result<serde_json::Value, String>) {
    let outcome = match result {
        Ok(value) => {
            let value = (!value.is_null()).then(|| value.clone());
            tasks.complete(lease, value).await
        }
        Err(why) => tasks.fail(lease, why, true).await.map(|_| ()),
    };
    if let Err(e) = outcome {
        tracing::warn!(task = lease.id, error = %e, "cannot settle task");
    }
}

/// How a task run by [`InFlight`] ended.
pub struct Finished {
    /// Why the handler failed or stalled (the agent then crashes), if it did.
    pub failure: Option<String>,
    /// The handler asked the agent to stop.
    pub stop: Option<String>,
}

/// Tasks running side by side in one instance, each in its own local task so they make
/// progress while the runner handles a message or a tick.
#[derive(Default)]
pub struct InFlight {
    set: JoinSet<Finished>,
    /// Leases of running tasks, to hand them back if the instance crashes under them.
    leases: HashMap<tokio::task::Id, Lease>,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Starts `claimed` on `worker`; it settles itself when done.
    pub fn spawn(
        &mut self,
        worker: &TaskWorker,
        claimed: Claimed,
        tasks: Tasks,
        stall: Option<Duration>,
    ) {
        let lease = claimed.work.lease.clone();
        let handler = worker(claimed.work);
        let permit = claimed.permit;
        let settle_lease = lease.clone();
        let handle = self.set.spawn_local(async move {
            let mut stop = None;
            let result = call(stall, "on_task", async {
                let TaskOutcome {
                    result,
                    stop: asked,
                } = handler.await;
                stop = asked;
                result
            })
            .await;
            settle_task(&tasks, &settle_lease, &result).await;
            drop(permit);
            Finished {
                failure: result.err(),
                stop,
            }
        });
        self.leases.insert(handle.id(), lease);
    }

    /// The next task to finish; pending forever while none runs (for `select!`).
    pub async fn next(&mut self) -> Finished {
        loop {
            match self.set.join_next_with_id().await {
                Some(Ok((id, finished))) => {
                    self.leases.remove(&id);
                    return finished;
                }
                Some(Err(e)) => {
                    self.leases.remove(&e.id());
                    if e.is_panic() {
                        return Finished {
                            failure: Some("on_task panicked".into()),
                            stop: None,
                        };
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Ends the instance's tasks: an orderly exit lets each finish (bounded by the stall
    /// timeout); after a crash they are interrupted and handed back for a retry.
    pub async fn finish(mut self, tasks: Option<&Tasks>, crashed: bool) {
        if !crashed {
            while self.set.join_next().await.is_some() {}
            return;
        }
        self.set.abort_all();
        while let Some(joined) = self.set.join_next_with_id().await {
            // Those that finished before the abort settled themselves.
            if let Ok((id, _)) = joined {
                self.leases.remove(&id);
            }
        }
        if let Some(tasks) = tasks {
            for lease in self.leases.values() {
                give_back(tasks, lease).await;
            }
        }
    }
}
