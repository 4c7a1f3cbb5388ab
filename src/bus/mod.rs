//! The message bus: durable point-to-point delivery with confirmation, retries, dead letters
//! and history, plus non-durable publish/subscribe. Plain Rust; `lua/bus.rs` binds it.
//!
//! How the pieces fit:
//! - [`Bus`] is a cheap handle (clone it freely) over the durable state in a
//!   [`BusStore`](crate::store::BusStore) and the in-process state that makes it fast:
//!   per-channel wake-ups and prefetch buffers, receipt waiters, subscribers.
//! - `send` ([`mod.rs`](self)) validates, serializes, checks the size, stores, and only then
//!   returns a [`Receipt`] — the store's group commit has put it on disk.
//! - [`queue`]: `recv`, `nack`, `extend`. Sends and acks are batched (`batch.rs`). A consumer holds a [`Delivery`] until its
//!   visibility deadline; `nack` retries after exponential backoff with jitter, then the
//!   message is dead. A consumer that never answers loses the message to the next `recv`
//!   after the deadline. Waiting consumers sleep on a notification, never in a poll loop.
//! - [`receipt`]: `Receipt::wait` — `acked`, `failed`, `dead` (or `expired`) once final.
//! - [`pubsub`]: `publish`/`subscribe` with glob patterns, in memory only, best-effort.
//! - [`request`]: `request`/`reply` on top of `send` with correlation ids.
//! - [`history`]: history, export, dead-letter queue, stats, retention.
//! - [`bench`]: the throughput benchmark behind `dreamos bench bus`.
//!
//! Time comes from tokio's clock ([`clock`]) so tests pause and advance it.
//!
//! Semantics chosen here (documented for users in `dreamos.bus` stubs):
//! - Priorities are `critical`, `high`, `normal` (default), `low`; higher first, FIFO per
//!   channel within a priority. A fast consumer may prefetch a few messages, so a
//!   `critical` message can wait behind at most one prefetched batch (milliseconds).
//! - `broadcast` stores one copy per known agent inbox (an inbox becomes known when its
//!   agent first receives), except the sender's own inbox.
//! - `publish` does not go to history: history is the record of durable messages.

pub(crate) mod batch;
pub mod bench;
pub mod channel;
pub mod clock;
pub mod config;
mod counters;
mod error;
pub mod history;
pub mod message;
mod pieces;
pub mod pubsub;
pub mod queue;
pub mod receipt;
pub mod request;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use channel::{Pattern, BROADCAST, CAPTAIN};
pub use config::BusConfig;
pub use counters::BusCounts;
pub use error::BusError;
pub use message::{Delivery, Message, Outcome, SendOptions};
pub use pubsub::{Published, Subscription};
pub use receipt::Receipt;

pub use crate::store::{
    BusStats, ChannelDepth, HistoryQuery, HistoryRecord, MessageId, MessageStatus, Millis,
    Priority, Transition,
};
use crate::store::{BusStore, NewMessage};

use clock::{millis, Clock, Jitter};

/// Without signals from the store (SQLite), the bus re-checks its waiting channels this
/// often, to notice what another process (a CLI `send`) did ([`watch`]); receipt waiters
/// re-read their messages this often to notice acks made elsewhere. In-process events wake
/// both at once.
pub const RECHECK: Duration = Duration::from_secs(1);
pub use watch::FALLBACK;

/// The bus. Clone it to share; all clones are the same bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn BusStore>,
    config: BusConfig,
    clock: Clock,
    /// Jitter for backoff, and tokens for request ids.
    jitter: Jitter,
    /// Per-channel wake-up and prefetch state, created on first use by a consumer or sender.
    channels: Mutex<HashMap<String, Arc<queue::ChannelState>>>,
    /// Agent inboxes this process already registered, to register each only once.
    known_inboxes: Mutex<HashSet<String>>,
    /// Receipt waiters, woken when their message becomes final in this process.
    waiters: receipt::Waiters,
    /// Sends and acks waiting for the next batch (see `batch.rs`).
    sends: batch::Queue<Vec<NewMessage>, Vec<MessageId>>,
    acks: batch::Queue<crate::store::DeliveryRef, crate::store::SettleOutcome>,
    pubsub: Arc<pubsub::PubSub>,
    /// Sent/acked/dead/failed since creation, for `/metrics`.
    counters: counters::Counters,
    /// The task noticing other processes' sends (`watch.rs`).
    watcher: watch::Watcher,
    /// Published messages on their way to other nodes (`pubsub.rs`).
    outbound: batch::Queue<String, ()>,
    /// Names this bus in what it publishes to other nodes, so it skips its own.
    origin: String,
    /// Numbers the published messages sent to other nodes in pieces (`pieces.rs`).
    pieces_sent: std::sync::atomic::AtomicU64,
    /// Pieces of other nodes' large published messages, until each is whole.
    pieces: Mutex<pieces::Pieces>,
    /// Whether the store carries signals between processes (published messages then go
    /// to other nodes too).
    remote: bool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Bus {
    /// A bus over `store`. Fails only if `config` does not validate.
    pub fn new(store: Arc<dyn BusStore>, config: BusConfig) -> Result<Bus, BusError> {
        config
            .validate()
            .map_err(|reason| BusError::InvalidOption {
                name: "bus",
                reason,
            })?;
        let remote = store.bus_signals().is_some();
        Ok(Bus {
            inner: Arc::new(Inner {
                pubsub: Arc::new(pubsub::PubSub::new(config.subscriber_buffer)),
                config,
                clock: Clock::new(),
                jitter: Jitter::new(),
                channels: Mutex::new(HashMap::new()),
                known_inboxes: Mutex::new(HashSet::new()),
                waiters: receipt::Waiters::default(),
                sends: batch::Queue::default(),
                acks: batch::Queue::default(),
                counters: counters::Counters::default(),
                watcher: watch::Watcher::default(),
                outbound: batch::Queue::default(),
                origin: Jitter::new().token(),
                pieces_sent: Default::default(),
                pieces: Default::default(),
                remote,
                store,
            }),
        })
    }

    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn BusStore> {
        &self.inner.store
    }

    /// The bus's current time (ms since the epoch), on tokio's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Sends `payload` to `to` (`agent:<name>`, `captain`, `broadcast` or a named queue).
    /// Returns once the message is committed to disk; `from` names the sender in history.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        payload: &serde_json::Value,
        opts: SendOptions,
    ) -> Result<Receipt, BusError> {
        let message = self.prepare(from, to, payload, opts)?;
        let messages = if to == BROADCAST {
            self.broadcast_copies(message).await?
        } else {
            vec![message]
        };
        let ids = self.enqueue(messages).await?;
        Ok(Receipt::new(self.clone(), ids))
    }

    /// Validates and serializes everything before anything is stored.
    fn prepare(
        &self,
        from: &str,
        to: &str,
        payload: &serde_json::Value,
        opts: SendOptions,
    ) -> Result<NewMessage, BusError> {
        channel::validate_send_target(to)?;
        check_sender(from)?;
        opts.check()?;
        let payload =
            serde_json::to_string(payload).map_err(|e| BusError::Payload(e.to_string()))?;
        let headers = if opts.headers.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&opts.headers)
                    .map_err(|e| BusError::Payload(e.to_string()))?,
            )
        };
        let size = (payload.len() + headers.as_ref().map_or(0, String::len)) as u64;
        self.check_size(size)?;
        let now = self.now();
        Ok(NewMessage {
            channel: to.to_string(),
            recipient: to.to_string(),
            sender: from.to_string(),
            priority: opts.priority,
            payload,
            headers,
            correlation_id: opts.correlation_id,
            reply_to: opts.reply_to,
            max_attempts: opts.max_attempts.unwrap_or(self.inner.config.max_attempts),
            backoff_ms: opts.backoff.map(millis),
            expires_at: opts.ttl.map(|t| now.saturating_add(millis(t))),
            created_at: now,
        })
    }

    fn check_size(&self, size: u64) -> Result<(), BusError> {
        let limit = self.inner.config.max_payload;
        if size > limit {
            return Err(BusError::PayloadTooLarge { size, limit });
        }
        Ok(())
    }

    async fn broadcast_copies(&self, message: NewMessage) -> Result<Vec<NewMessage>, BusError> {
        let own_inbox = format!("agent:{}", message.sender.trim_start_matches("agent:"));
        let copies: Vec<NewMessage> = self
            .inner
            .store
            .inboxes()
            .await?
            .into_iter()
            .filter(|inbox| *inbox != own_inbox)
            .map(|inbox| NewMessage {
                channel: inbox,
                ..message.clone()
            })
            .collect();
        if copies.is_empty() {
            return Err(BusError::NoRecipients);
        }
        Ok(copies)
    }

    /// Makes `agent:<name>` known, so broadcasts reach it even before it first receives.
    pub async fn register_agent(&self, name: &str) -> Result<(), BusError> {
        let inbox = format!("agent:{name}");
        channel::validate_recv_channel(&inbox)?;
        self.note_inbox(&inbox).await
    }

    /// Registers an agent inbox the first time this process uses it.
    async fn note_inbox(&self, channel: &str) -> Result<(), BusError> {
        if channel::agent_of(channel).is_none() {
            return Ok(());
        }
        let fresh = match self.inner.known_inboxes.lock() {
            Ok(known) => !known.contains(channel),
            Err(_) => true,
        };
        if fresh {
            self.inner
                .store
                .register_inbox(channel.to_string(), self.now())
                .await?;
            if let Ok(mut known) = self.inner.known_inboxes.lock() {
                known.insert(channel.to_string());
            }
        }
        Ok(())
    }

    /// Wakes consumers waiting on `channel` in this process.
    fn wake(&self, channel: &str) {
        let state = self
            .inner
            .channels
            .lock()
            .ok()
            .and_then(|channels| channels.get(channel).cloned());
        if let Some(state) = state {
            state.wake();
        }
    }
}

/// Longest sender name accepted.
const MAX_SENDER_LEN: usize = 200;

fn check_sender(from: &str) -> Result<(), BusError> {
    if from.trim().is_empty() || from.len() > MAX_SENDER_LEN {
        return Err(BusError::InvalidOption {
            name: "from",
            reason: "the sender name must be 1 to 200 characters".into(),
        });
    }
    Ok(())
}
