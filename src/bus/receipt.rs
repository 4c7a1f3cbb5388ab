//! Delivery confirmation: a [`Receipt`] from `send`, and `wait` for its outcome.
//!
//! In this process, whatever makes a message final (an ack, a nack, a claim finding it dead
//! or expired) wakes its waiters at once. A waiter also re-reads the store every
//! [`RECHECK`] so it notices an ack made by another process.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};

use super::{Bus, BusError, MessageId, MessageStatus, Outcome, RECHECK};

/// Proof that `send` stored a message (one per recipient for `broadcast`).
#[derive(Debug, Clone)]
pub struct Receipt {
    bus: Bus,
    ids: Vec<MessageId>,
}

impl Receipt {
    pub(crate) fn new(bus: Bus, ids: Vec<MessageId>) -> Receipt {
        Receipt { bus, ids }
    }

    /// The id of the (first) stored message.
    pub fn id(&self) -> MessageId {
        self.ids.first().copied().unwrap_or_default()
    }

    /// Every stored message: one, or one per agent for a broadcast.
    pub fn ids(&self) -> &[MessageId] {
        &self.ids
    }

    /// Current status of each message.
    pub async fn status(&self) -> Result<Vec<(MessageId, MessageStatus)>, BusError> {
        Ok(self.bus.inner.store.statuses(self.ids.clone()).await?)
    }

    /// Waits until every message is final and returns the outcome (for a broadcast, the
    /// worst one: dead > failed > expired > acked), or a `Timeout` error.
    pub async fn wait(&self, timeout: Duration) -> Result<Outcome, BusError> {
        let deadline = Instant::now() + timeout;
        let waiters = &self.bus.inner.waiters;
        // Registered before the first store read, so nothing that happens after it is missed.
        let mut notified: FuturesUnordered<_> = self
            .ids
            .iter()
            .map(|&id| {
                let rx = waiters.register(id);
                async move { (id, rx.await) }
            })
            .collect();
        let mut pending: HashSet<MessageId> = self.ids.iter().copied().collect();
        let mut worst = Outcome::Acked;
        let result = loop {
            let ids: Vec<MessageId> = pending.iter().copied().collect();
            let statuses = match self.bus.inner.store.statuses(ids.clone()).await {
                Ok(s) => s,
                Err(e) => break Err(e.into()),
            };
            if let Some(&missing) = ids
                .iter()
                .find(|id| !statuses.iter().any(|(s, _)| s == *id))
            {
                break Err(BusError::NotFound(missing));
            }
            for (id, status) in statuses {
                if let Some(outcome) = Outcome::of(status) {
                    pending.remove(&id);
                    worst = worst.max(outcome);
                }
            }
            if pending.is_empty() {
                break Ok(worst);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(BusError::Timeout {
                    what: "delivery confirmation",
                    after: timeout,
                });
            }
            let recheck = sleep_until((now + RECHECK).min(deadline));
            tokio::pin!(recheck);
            loop {
                tokio::select! {
                    Some((id, Ok(status))) = notified.next() => {
                        if let Some(outcome) = Outcome::of(status) {
                            pending.remove(&id);
                            worst = worst.max(outcome);
                        }
                        if pending.is_empty() {
                            break;
                        }
                    }
                    _ = &mut recheck => break,
                }
            }
            if pending.is_empty() {
                break Ok(worst);
            }
        };
        drop(notified);
        waiters.forget(&self.ids);
        result
    }
}

/// Receipt waiters by message id.
#[derive(Default)]
pub(crate) struct Waiters {
    /// How many are registered, so the ack path skips the lock when nobody waits.
    count: AtomicUsize,
    map: Mutex<HashMap<MessageId, Vec<oneshot::Sender<MessageStatus>>>>,
}

impl Waiters {
    fn register(&self, id: MessageId) -> oneshot::Receiver<MessageStatus> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.map.lock() {
            map.entry(id).or_default().push(tx);
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        rx
    }

    /// Tells everyone waiting on `id` that it is now `status` (final).
    pub(crate) fn finish(&self, id: MessageId, status: MessageStatus) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let senders = match self.map.lock() {
            Ok(mut map) => map.remove(&id),
            Err(_) => None,
        };
        for tx in senders.into_iter().flatten() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(status);
        }
    }

    /// Drops registrations whose waiter has gone (timed out or finished).
    fn forget(&self, ids: &[MessageId]) {
        if let Ok(mut map) = self.map.lock() {
            for id in ids {
                if let Some(senders) = map.get_mut(id) {
                    let before = senders.len();
                    senders.retain(|tx| !tx.is_closed());
                    self.count
                        .fetch_sub(before - senders.len(), Ordering::Relaxed);
                    if senders.is_empty() {
                        map.remove(id);
                    }
                }
            }
        }
    }
}
