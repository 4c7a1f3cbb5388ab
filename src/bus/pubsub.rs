//! Publish/subscribe: non-durable fan-out inside this process.
//!
//! `publish` hands one shared copy of the message to every subscription whose pattern
//! matches, without waiting: a subscriber that falls more than `bus.subscriber_buffer`
//! messages behind misses the newer ones (counted in [`Subscription::lagged`]) rather than
//! slowing the publisher or growing memory without bound. Durable delivery is `send`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc;

use super::channel::{validate_topic, Pattern};
use super::{check_sender, Bus, BusError, Millis};

/// A published message, shared by all its subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub topic: String,
    pub from: String,
    pub payload: serde_json::Value,
    pub at: Millis,
}

pub(crate) struct PubSub {
    next_id: AtomicU64,
    buffer: usize,
    subs: RwLock<Vec<Sub>>,
}

struct Sub {
    id: u64,
    pattern: Pattern,
    tx: mpsc::Sender<Arc<Published>>,
    lagged: Arc<AtomicU64>,
}

impl PubSub {
    pub(crate) fn new(buffer: usize) -> PubSub {
        PubSub {
            next_id: AtomicU64::new(1),
            buffer,
            subs: RwLock::new(Vec::new()),
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut subs) = self.subs.write() {
            subs.retain(|s| s.id != id);
        }
    }
}

/// A live subscription. Dropping it (or [`cancel`](Subscription::cancel)) unsubscribes.
pub struct Subscription {
    id: u64,
    pattern: String,
    rx: mpsc::Receiver<Arc<Published>>,
    lagged: Arc<AtomicU64>,
    registry: Weak<PubSub>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Subscription {
    /// The next matching message; `None` once cancelled (after what was already queued).
    pub async fn recv(&mut self) -> Option<Arc<Published>> {
        self.rx.recv().await
    }

    /// The next matching message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Published>> {
        self.rx.try_recv().ok()
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Messages dropped because this subscriber was too far behind.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// Stops delivery; messages already queued can still be received.
    pub fn cancel(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.id);
        }
        self.rx.close();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.id);
        }
    }
}

/// Counts serialized bytes without keeping them.
struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Bus {
    /// Fans `payload` out to every subscription matching `topic`; returns how many got it.
    /// Nothing is stored: a subscriber that is not listening now never sees it.
    pub fn publish(
        &self,
        from: &str,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<usize, BusError> {
        validate_topic(topic)?;
        check_sender(from)?;
        let mut size = ByteCounter(0);
        serde_json::to_writer(&mut size, &payload).map_err(|e| BusError::Payload(e.to_string()))?;
        self.check_size(size.0)?;
        let subs = match self.inner.pubsub.subs.read() {
            Ok(subs) => subs,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut message: Option<Arc<Published>> = None;
        let mut reached = 0;
        for sub in subs.iter().filter(|s| s.pattern.matches(topic)) {
            let message = message.get_or_insert_with(|| {
                Arc::new(Published {
                    topic: topic.to_string(),
                    from: from.to_string(),
                    payload: payload.clone(),
                    at: self.now(),
                })
            });
            match sub.tx.try_send(message.clone()) {
                Ok(()) => reached += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        Ok(reached)
    }

    /// Subscribes to every topic matching `pattern` (`tasks.*`, `agent:*`, `*`).
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        let compiled = Pattern::new(pattern)?;
        let pubsub = &self.inner.pubsub;
        let (tx, rx) = mpsc::channel(pubsub.buffer);
        let id = pubsub.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicU64::new(0));
        let mut subs = match pubsub.subs.write() {
            Ok(subs) => subs,
            Err(poisoned) => poisoned.into_inner(),
        };
        subs.push(Sub {
            id,
            pattern: compiled,
            tx,
            lagged: lagged.clone(),
        });
        Ok(Subscription {
            id,
            pattern: pattern.to_string(),
            rx,
            lagged,
            registry: Arc::downgrade(pubsub),
        })
    }

    /// Number of live subscriptions (for stats and tests).
    pub fn subscriber_count(&self) -> usize {
        self.inner.pubsub.subs.read().map_or(0, |s| s.len())
    }
}
