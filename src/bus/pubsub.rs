//! Publish/subscribe: non-durable fan-out to every subscriber, in this process and, when
//! the store connects nodes (PostgreSQL's `NOTIFY`), on the other nodes: a published
//! message is sent to them in the background and each node's watch task (`watch.rs`)
//! hands it to its own subscribers. A message whose serialized form exceeds
//! [`MAX_REMOTE`] bytes (PostgreSQL's notification limit) goes in pieces (`pieces.rs`).
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

/// Largest published message, serialized, that crosses nodes in one notification (a
/// PostgreSQL notification payload must stay under 8000 bytes); larger ones go in pieces.
pub const MAX_REMOTE: usize = 7900;

/// A published message as it travels between nodes.
#[derive(serde::Serialize)]
struct Wire<'a> {
    #[serde(rename = "o")]
    origin: &'a str,
    #[serde(rename = "t")]
    topic: &'a str,
    #[serde(rename = "f")]
    from: &'a str,
    #[serde(rename = "p")]
    payload: &'a serde_json::Value,
    #[serde(rename = "a")]
    at: Millis,
}

#[derive(serde::Deserialize)]
struct WireOwned {
    #[serde(rename = "o")]
    origin: String,
    #[serde(rename = "t")]
    topic: String,
    #[serde(rename = "f")]
    from: String,
    #[serde(rename = "p")]
    payload: serde_json::Value,
    #[serde(rename = "a")]
    at: Millis,
}

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
    /// Fans `payload` out to every subscription matching `topic` in this process, and
    /// hands it to the other nodes when the store connects them (PostgreSQL); returns how
    /// many local subscribers got it. Nothing is stored: a subscriber that is not
    /// listening now never sees it.
    pub fn publish(
        &self,
        from: &str,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<usize, BusError> {
        self.publish_with(from, topic, payload, self.inner.remote)
    }

    /// Like [`publish`](Bus::publish), to this process's subscribers only: for events
    /// that reach other nodes on a durable path of their own (task events, tailed from
    /// the store on every node), which would otherwise arrive there twice.
    pub fn publish_here(
        &self,
        from: &str,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<usize, BusError> {
        self.publish_with(from, topic, payload, false)
    }

    fn publish_with(
        &self,
        from: &str,
        topic: &str,
        payload: serde_json::Value,
        forward: bool,
    ) -> Result<usize, BusError> {
        validate_topic(topic)?;
        check_sender(from)?;
        let mut size = ByteCounter(0);
        serde_json::to_writer(&mut size, &payload).map_err(|e| BusError::Payload(e.to_string()))?;
        self.check_size(size.0)?;
        let at = self.now();
        if forward {
            self.forward(topic, from, &payload, at);
        }
        Ok(self.fan_out(topic, from, payload, at))
    }

    /// Hands a published message to the local subscriptions matching its topic.
    fn fan_out(&self, topic: &str, from: &str, payload: serde_json::Value, at: Millis) -> usize {
        let subs = match self.inner.pubsub.subs.read() {
            Ok(subs) => subs,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut message: Option<Arc<Published>> = None;
        let mut payload = Some(payload);
        let mut reached = 0;
        for sub in subs.iter().filter(|s| s.pattern.matches(topic)) {
            let message = message.get_or_insert_with(|| {
                Arc::new(Published {
                    topic: topic.to_string(),
                    from: from.to_string(),
                    payload: payload.take().unwrap_or_default(),
                    at,
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
        reached
    }

    /// Queues a published message for the other nodes; one task at a time sends what is
    /// queued, in one round trip. Too large for a notification, it goes in pieces.
    fn forward(&self, topic: &str, from: &str, payload: &serde_json::Value, at: Millis) {
        let wire = Wire {
            origin: &self.inner.origin,
            topic,
            from,
            payload,
            at,
        };
        let Ok(text) = serde_json::to_string(&wire) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let start = if text.len() > MAX_REMOTE {
            let seq = self.inner.pieces_sent.fetch_add(1, Ordering::Relaxed);
            let pieces = super::pieces::split(&self.inner.origin, seq, &text, MAX_REMOTE);
            pieces.into_iter().fold(false, |start, piece| {
                self.inner.outbound.push(piece).1 | start
            })
        } else {
            self.inner.outbound.push(text).1
        };
        if start {
            let bus = self.clone();
            runtime.spawn(async move {
                while let Some(batch) = bus.inner.outbound.take() {
                    let (texts, answers): (Vec<String>, Vec<_>) = batch.into_iter().unzip();
                    if let Err(e) = bus.inner.store.publish_remote(texts).await {
                        tracing::warn!("bus: publishing to other nodes failed: {e}");
                    }
                    drop(answers);
                }
            });
        }
    }

    /// A message another node published (see [`forward`](Bus::forward)).
    pub(crate) fn deliver_remote(&self, text: &str) {
        let whole;
        let text = if super::pieces::is_piece(text) {
            if text.starts_with(&format!("#{} ", self.inner.origin)) {
                return; // this bus's own message, back from the database
            }
            let mut pieces = match self.inner.pieces.lock() {
                Ok(pieces) => pieces,
                Err(poisoned) => poisoned.into_inner(),
            };
            match pieces.add(text) {
                Ok(Some((_, joined))) => {
                    whole = joined;
                    &whole
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("bus: published message from another node: {e}");
                    return;
                }
            }
        } else {
            text
        };
        match serde_json::from_str::<WireOwned>(text) {
            Ok(m) if m.origin == self.inner.origin => {}
            Ok(m) => {
                self.fan_out(&m.topic, &m.from, m.payload, m.at);
            }
            Err(e) => tracing::debug!("bus: unreadable published message from another node: {e}"),
        }
    }

    /// Subscribes to every topic matching `pattern` (`tasks.*`, `agent:*`, `*`), published
    /// on this node or, when the store connects nodes (PostgreSQL), on another.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        let compiled = Pattern::new(pattern)?;
        self.ensure_watcher();
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
