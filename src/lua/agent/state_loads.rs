//! `self.state` loads of agents starting together, coalesced into one store read.
//!
//! When the daemon starts thousands of agents, each one's start reads its state. One read
//! each meant thousands of trips through the blocking pool; here the first agent to ask
//! waits one scheduler pass for the others starting beside it, then reads for all of them
//! at once and hands each its answer. Agents live on one thread (the daemon's `LocalSet`),
//! so the queue is thread-local and needs no lock.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::store::SharedStore;

type Answer = oneshot::Sender<Result<Option<serde_json::Value>, String>>;

/// Loads waiting for the next read of one store.
struct Queue {
    store: SharedStore,
    waiting: Vec<(String, Answer)>,
}

thread_local! {
    static QUEUES: RefCell<Vec<Queue>> = const { RefCell::new(Vec::new()) };
}

/// The saved `self.state` of `agent`, read together with those of other agents asking now.
pub async fn load(store: &SharedStore, agent: &str) -> Result<Option<serde_json::Value>, String> {
    let (tx, rx) = oneshot::channel();
    let lead = QUEUES.with(|queues| {
        let mut queues = queues.borrow_mut();
        match queues.iter_mut().find(|q| Arc::ptr_eq(&q.store, store)) {
            Some(q) => {
                q.waiting.push((agent.to_string(), tx));
                false
            }
            None => {
                queues.push(Queue {
                    store: store.clone(),
                    waiting: vec![(agent.to_string(), tx)],
                });
                true
            }
        }
    });
    if lead {
        // Everyone starting in this pass of the scheduler joins the queue first.
        tokio::task::yield_now().await;
        read_queued(store).await;
    }
    rx.await
        .map_err(|_| "the batched state read was abandoned".to_string())?
}

/// Takes every load queued for `store` and answers them from one read.
async fn read_queued(store: &SharedStore) {
    let waiting = QUEUES.with(|queues| {
        let mut queues = queues.borrow_mut();
        let i = queues.iter().position(|q| Arc::ptr_eq(&q.store, store));
        i.map(|i| queues.swap_remove(i).waiting)
    });
    let Some(waiting) = waiting else { return };
    let (names, answers): (Vec<String>, Vec<Answer>) = waiting.into_iter().unzip();
    match store.load_agent_states(names).await {
        Ok(states) => {
            for (answer, state) in answers.into_iter().zip(states) {
                let _ = answer.send(Ok(state));
            }
        }
        Err(e) => {
            let e = e.to_string();
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}
