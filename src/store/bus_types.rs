//! Data that crosses the [`BusStore`](super::BusStore) boundary: what the bus hands a backend
//! and what it gets back. Plain data, shared by every backend.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::Millis;

/// A message's id: increases with insertion order across the whole bus.
pub type MessageId = i64;

/// Delivery priority. Lower number = delivered first; FIFO within one priority. The same
/// four names as task priorities, so scripts learn one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Critical = 0,
    High = 1,
    #[default]
    Normal = 2,
    Low = 3,
}

impl Priority {
    pub const NAMES: [&'static str; 4] = ["critical", "high", "normal", "low"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The number stored in the database.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Option<Priority> {
        [
            Priority::Critical,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ]
        .get(usize::try_from(rank).ok()?)
        .copied()
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match Self::NAMES.iter().position(|n| *n == s) {
            Some(rank) => Priority::from_rank(rank as i64).ok_or_else(String::new),
            None => Err(format!(
                "unknown priority '{s}': use one of critical, high, normal, low"
            )),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a message is in its life. `queued` and `delivered` are pending; the others are
/// final. `failed` and `dead` are the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Waiting for a consumer (possibly until a retry backoff passes).
    Queued,
    /// Handed to a consumer, not yet acknowledged; comes back if its deadline passes.
    Delivered,
    /// The consumer's handler succeeded.
    Acked,
    /// The consumer rejected it as never going to succeed (nack without retry).
    Failed,
    /// Out of attempts: every attempt failed or timed out.
    Dead,
    /// Its ttl passed before anyone took it.
    Expired,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Queued,
        MessageStatus::Delivered,
        MessageStatus::Acked,
        MessageStatus::Failed,
        MessageStatus::Dead,
        MessageStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Acked => "acked",
            MessageStatus::Failed => "failed",
            MessageStatus::Dead => "dead",
            MessageStatus::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Delivered)
    }
}

impl FromStr for MessageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MessageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown message status '{s}'"))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MessageStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A message to store. The bus has validated and serialized everything already.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The queue it sits in (`agent:scout`).
    pub channel: String,
    /// What the sender addressed: the channel itself, or `broadcast` for each copy.
    pub recipient: String,
    pub sender: String,
    pub priority: Priority,
    /// Serialized JSON.
    pub payload: String,
    /// Serialized JSON object, if any headers were given.
    pub headers: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub max_attempts: u32,
    /// Per-message retry backoff base; `None` uses the bus configuration.
    pub backoff_ms: Option<i64>,
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
}

/// A message as a consumer receives it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: MessageId,
    pub channel: String,
    pub recipient: String,
    pub sender: String,
    pub priority: Priority,
    pub payload: String,
    pub headers: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub max_attempts: u32,
    pub backoff_ms: Option<i64>,
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
}

/// One handed-out message: the message, which attempt this is, and until when it is ours.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub message: StoredMessage,
    pub attempt: u32,
    pub deadline: Millis,
}

/// Result of a claim.
#[derive(Debug, Default)]
pub struct Claimed {
    pub messages: Vec<ClaimedMessage>,
    /// Messages the claim found final on the way (ttl passed, attempts exhausted by a
    /// visibility timeout), so the bus can wake whoever waits on their receipts.
    pub finished: Vec<(MessageId, MessageStatus)>,
    /// When nothing was visible: the earliest time something in this channel becomes
    /// visible (a backoff ends or a visibility deadline passes), if anything is pending.
    pub next_visible_at: Option<Millis>,
}

/// Names one attempt of one message, for ack/nack/extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef {
    pub id: MessageId,
    pub attempt: u32,
}

/// What an ack, nack or extend did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Applied; the message now has this status.
    Applied(MessageStatus),
    /// Not applied: that attempt is over (redelivered after its deadline, or already settled).
    Stale {
        status: MessageStatus,
        attempts: u32,
    },
    /// No such message (pruned or purged).
    Missing,
}

/// Filters for history. `since`/`until` compare with `created_at` (inclusive). `agent`
/// matches messages to `agent:<name>` and messages sent by `<name>` or `agent:<name>`.
///
/// Order: with `after_id` set, the first `limit` matches with a greater id, oldest first
/// (paging through everything, as export does). Without it, the newest `limit` matches,
/// returned oldest first (what a person reading a tail expects).
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub channel: Option<String>,
    pub agent: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: usize,
    pub after_id: Option<MessageId>,
}

/// One status change of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// queued, delivered, acked, retried, timeout, failed, dead, expired, requeued.
    pub status: &'static str,
    #[serde(serialize_with = "ser_millis")]
    pub at: Millis,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The one history record shape, used by `history`, `export` and the dead-letter list.
/// Timestamps serialize as RFC 3339 UTC strings with milliseconds; absent ones as `null`.
///
/// `from` is the sender, `to` what it addressed (`broadcast` for broadcast copies),
/// `channel` the queue the message sat in. `attempts` counts deliveries; `error` is the last
/// failure. `transitions` lists every status change in order, with time and attempt.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRecord {
    pub id: MessageId,
    pub from: String,
    pub to: String,
    pub channel: String,
    pub payload: serde_json::Value,
    pub priority: Priority,
    pub status: MessageStatus,
    pub attempts: u32,
    #[serde(serialize_with = "ser_millis")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_opt_millis")]
    pub delivered_at: Option<Millis>,
    #[serde(serialize_with = "ser_opt_millis")]
    pub acked_at: Option<Millis>,
    pub error: Option<String>,
    pub transitions: Vec<Transition>,
}

/// Pending counts of one channel.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ChannelDepth {
    pub channel: String,
    /// Waiting for a consumer (including those waiting out a retry backoff).
    pub queued: u64,
    /// Handed out, not yet acknowledged.
    pub in_flight: u64,
}

/// Bus statistics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BusStats {
    /// Channels with pending messages, sorted by name.
    pub channels: Vec<ChannelDepth>,
    pub queued: u64,
    pub in_flight: u64,
    pub acked: u64,
    /// Dead letters: `failed` plus `dead`.
    pub dead: u64,
    pub expired: u64,
    /// All messages still stored.
    pub total: u64,
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
pub fn format_millis(ms: Millis) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

fn ser_millis<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_millis(*ms))
}

fn ser_opt_millis<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&format_millis(*ms)),
        None => s.serialize_none(),
    }
}

/// A past attempt or status change recorded beside the message row (see [`transitions`]).
#[derive(Debug, Clone)]
pub struct EventRow {
    pub event: String,
    pub attempt: u32,
    pub at: Millis,
    pub error: Option<String>,
}

/// Rebuilds the full list of status changes of a message.
///
/// Storage keeps the happy path in the message row itself (`created_at` = queued,
/// `delivered_at` = the current delivery, `finished_at` = acked/expired), so a message that
/// succeeds first time costs no extra rows. Everything else — each earlier delivery, each
/// retry, timeout, failure, death or requeue — is an event row. Both together are the
/// complete history.
pub fn transitions(
    status: MessageStatus,
    attempts: u32,
    created_at: Millis,
    delivered_at: Option<Millis>,
    finished_at: Option<Millis>,
    events: &[EventRow],
) -> Vec<Transition> {
    let mut out = Vec::with_capacity(events.len() + 3);
    out.push(Transition {
        status: "queued",
        at: created_at,
        attempt: 0,
        error: None,
    });
    for e in events {
        out.push(Transition {
            status: event_name(&e.event),
            at: e.at,
            attempt: e.attempt,
            error: e.error.clone(),
        });
    }
    // The current attempt lives in the row while it is delivered or acked; a failed or
    // dead message's last attempt is already in the events.
    if matches!(status, MessageStatus::Delivered | MessageStatus::Acked) {
        if let Some(at) = delivered_at {
            out.push(Transition {
                status: "delivered",
                at,
                attempt: attempts,
                error: None,
            });
        }
    }
    if let (MessageStatus::Acked | MessageStatus::Expired, Some(at)) = (status, finished_at) {
        out.push(Transition {
            status: status.as_str(),
            at,
            attempt: attempts,
            error: None,
        });
    }
    out
}

fn event_name(stored: &str) -> &'static str {
    const NAMES: [&str; 9] = [
        "queued",
        "delivered",
        "acked",
        "retried",
        "timeout",
        "failed",
        "dead",
        "expired",
        "requeued",
    ];
    NAMES
        .into_iter()
        .find(|n| *n == stored)
        .unwrap_or("unknown")
}

/// What another process sharing the store did on the bus (see
/// [`BusStore::bus_signals`](super::BusStore::bus_signals)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusSignal {
    /// Messages were committed to this channel.
    Enqueued(String),
    /// A published message, as [`publish_remote`](super::BusStore::publish_remote) got it.
    Published(String),
}

/// A feed of [`BusSignal`]s; it ends when its connection drops.
pub type BusSignals = futures_util::stream::BoxStream<'static, BusSignal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_names_round_trip_and_order() {
        for name in Priority::NAMES {
            let p: Priority = name.parse().expect("known name");
            assert_eq!(p.as_str(), name);
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
        }
        assert!(Priority::Critical < Priority::Low);
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert!(err.contains("critical, high, normal, low"), "{err}");
    }

    #[test]
    fn happy_path_history_needs_no_event_rows() {
        let t = transitions(MessageStatus::Acked, 1, 1000, Some(1005), Some(1010), &[]);
        let names: Vec<_> = t.iter().map(|t| (t.status, t.at, t.attempt)).collect();
        assert_eq!(
            names,
            [
                ("queued", 1000, 0),
                ("delivered", 1005, 1),
                ("acked", 1010, 1)
            ]
        );
    }

    #[test]
    fn retried_history_interleaves_events() {
        let ev = |event: &str, attempt, at| EventRow {
            event: event.into(),
            attempt,
            at,
            error: None,
        };
        let events = [ev("delivered", 1, 10), ev("retried", 1, 20)];
        let t = transitions(MessageStatus::Acked, 2, 0, Some(30), Some(40), &events);
        let names: Vec<_> = t.iter().map(|t| t.status).collect();
        assert_eq!(
            names,
            ["queued", "delivered", "retried", "delivered", "acked"]
        );
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
