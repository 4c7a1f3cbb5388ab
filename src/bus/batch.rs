//! Batching of the two hot writes, sends and acks.
//!
//! Each call joins a shared queue; one flusher task at a time hands everything queued to
//! the store as a single job, and while that commit is on its way to disk the next calls
//! gather behind it. So a thousand senders (or consumers acking) cost the writer thread
//! one job, not a thousand — the writer is the one thread everything durable goes
//! through, so work kept off it is throughput.
//!
//! Nothing is answered before its commit: the flusher hears from the store only after the
//! group transaction holding the batch has committed.
//!
//! [`Bus::ack_queued`] queues the ack *when called* and returns a future for its commit.
//! A consumer that must go fast moves on to its next message without awaiting it (the
//! ack still commits; a crash before that redelivers the message, which at-least-once
//! allows for a message in flight). Receipts are resolved by the flusher either way.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Bus, BusError, Delivery};
use crate::store::{DeliveryRef, MessageId, NewMessage, SettleOutcome, StoreError};

pub(crate) type Answer<T> = oneshot::Sender<Result<T, Arc<StoreError>>>;

/// Items waiting for the next flush, each with where its answer goes.
pub(crate) type Waiting<T, R> = Vec<(T, Answer<R>)>;

/// Calls waiting for the next flush, and whether a flusher is running.
pub(crate) struct Queue<T, R> {
    state: Mutex<(Waiting<T, R>, bool)>,
}

impl<T, R> Default for Queue<T, R> {
    fn default() -> Self {
        Queue {
            state: Mutex::new((Vec::new(), false)),
        }
    }
}

impl<T, R> Queue<T, R> {
    /// Adds an item; returns the answer's receiver and whether the caller must start a
    /// flusher (none was running).
    pub(crate) fn push(&self, item: T) -> (oneshot::Receiver<Result<R, Arc<StoreError>>>, bool) {
        let (tx, rx) = oneshot::channel();
        let start = match self.state.lock() {
            Ok(mut state) => {
                state.0.push((item, tx));
                !std::mem::replace(&mut state.1, true)
            }
            // Poisoned: the answer's sender is dropped, which the caller reports.
            Err(_) => false,
        };
        (rx, start)
    }

    /// Everything queued, or `None` (and the flusher stops) when the queue is empty.
    pub(crate) fn take(&self) -> Option<Waiting<T, R>> {
        let mut state = self.state.lock().ok()?;
        if state.0.is_empty() {
            state.1 = false;
            return None;
        }
        Some(std::mem::take(&mut state.0))
    }
}

fn dropped() -> BusError {
    BusError::Batch(Arc::new(StoreError::Io {
        what: "bus: a batched write was dropped before it was stored".into(),
        source: std::io::Error::other("batch queue poisoned"),
    }))
}

impl Bus {
    /// Stores messages through the send batch; returns their ids once committed.
    pub(crate) async fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageId>, BusError> {
        let (rx, start) = self.inner.sends.push(messages);
        if start {
            let bus = self.clone();
            tokio::spawn(async move { bus.flush_sends().await });
        }
        match rx.await {
            Ok(result) => result.map_err(BusError::Batch),
            Err(_) => Err(dropped()),
        }
    }

    async fn flush_sends(&self) {
        while let Some(batch) = self.inner.sends.take() {
            let counts: Vec<usize> = batch.iter().map(|(m, _)| m.len()).collect();
            let mut channels = HashSet::new();
            let mut all = Vec::with_capacity(counts.iter().sum());
            let mut answers = Vec::with_capacity(batch.len());
            for (messages, answer) in batch {
                for m in &messages {
                    if !channels.contains(&m.channel) {
                        channels.insert(m.channel.clone());
                    }
                }
                all.extend(messages);
                answers.push(answer);
            }
            match self.inner.store.enqueue(all).await {
                Ok(ids) => {
                    self.inner.counters.sent(ids.len());
                    for channel in &channels {
                        self.wake(channel);
                    }
                    let mut ids = ids.into_iter();
                    for (answer, count) in answers.into_iter().zip(counts) {
                        let _ = answer.send(Ok(ids.by_ref().take(count).collect()));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Acknowledges a delivery: the message is done and its sender's receipt says `acked`.
    /// Returns once that is committed.
    pub async fn ack(&self, delivery: &Delivery) -> Result<(), BusError> {
        self.ack_queued(delivery).await
    }

    /// Queues the ack now and returns a future that resolves when it is committed.
    /// Dropping the future does not cancel the ack.
    pub fn ack_queued(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), BusError>> + Send + 'static {
        let reference = delivery.reference();
        let (rx, start) = self.inner.acks.push(reference);
        if start {
            let bus = self.clone();
            tokio::spawn(async move { bus.flush_acks().await });
        }
        let bus = self.clone();
        async move {
            match rx.await {
                Ok(Ok(outcome)) => bus.settled(reference, outcome).map(|_| ()),
                Ok(Err(e)) => Err(BusError::Batch(e)),
                Err(_) => Err(dropped()),
            }
        }
    }

    async fn flush_acks(&self) {
        while let Some(batch) = self.inner.acks.take() {
            let refs: Vec<DeliveryRef> = batch.iter().map(|(r, _)| *r).collect();
            match self.inner.store.ack(refs, self.now()).await {
                Ok(outcomes) => {
                    for ((reference, answer), outcome) in batch.into_iter().zip(outcomes) {
                        if let SettleOutcome::Applied(status) = outcome {
                            self.inner.counters.finished(status);
                            self.inner.waiters.finish(reference.id, status);
                        }
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for (_, answer) in batch {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
