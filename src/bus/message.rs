//! What senders give the bus and what consumers get from it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::store::{ClaimedMessage, DeliveryRef, MessageId, MessageStatus, Millis, Priority};

use super::BusError;

/// Options of `send`. Everything is optional; `Default` is a normal-priority message with
/// the configured attempts and backoff, no ttl, no headers.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    pub priority: Priority,
    /// Deliveries before the message goes dead (default: `bus.max_attempts`).
    pub max_attempts: Option<u32>,
    /// First retry delay for this message (default: `bus.backoff_base`); doubles per attempt.
    pub backoff: Option<Duration>,
    /// Undelivered after this long, the message expires instead of being delivered.
    pub ttl: Option<Duration>,
    /// Free-form string metadata carried with the message.
    pub headers: BTreeMap<String, String>,
    /// Ties a reply (or a conversation) to the message it answers.
    pub correlation_id: Option<String>,
    /// Where replies should go; `request` sets it.
    pub reply_to: Option<String>,
}

/// Longest correlation id accepted.
const MAX_CORRELATION_LEN: usize = 200;

impl SendOptions {
    pub(crate) fn check(&self) -> Result<(), BusError> {
        let bad = |name, reason: &str| {
            Err(BusError::InvalidOption {
                name,
                reason: reason.to_string(),
            })
        };
        if self.max_attempts == Some(0) {
            return bad("max_attempts", "must be at least 1");
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return bad("ttl", "must be longer than 0s (leave it out for no expiry)");
        }
        if let Some(id) = &self.correlation_id {
            if id.is_empty() || id.len() > MAX_CORRELATION_LEN {
                return bad("correlation_id", "must be 1 to 200 characters");
            }
        }
        if let Some(reply_to) = &self.reply_to {
            super::channel::validate_recv_channel(reply_to).map_err(|e| {
                BusError::InvalidOption {
                    name: "reply_to",
                    reason: e.to_string(),
                }
            })?;
        }
        if self.headers.keys().any(String::is_empty) {
            return bad("headers", "header names cannot be empty");
        }
        Ok(())
    }
}

/// A message as its consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    /// Who sent it (`agent:scout`, `cli`, `discord:...`).
    pub from: String,
    /// What the sender addressed: the channel, or `broadcast`.
    pub to: String,
    /// The queue it came from.
    pub channel: String,
    pub payload: serde_json::Value,
    pub priority: Priority,
    pub headers: BTreeMap<String, String>,
    pub correlation_id: Option<String>,
    /// Set on requests: `reply` sends the answer there.
    pub reply_to: Option<String>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub max_attempts: u32,
    /// Per-message backoff base, when the sender gave one.
    pub backoff: Option<Duration>,
}

/// One delivery of a message to a consumer: settle it with `ack` or `nack` before
/// `deadline`, or it is redelivered to someone else.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message: Message,
    /// 1 for the first delivery, 2 for the first redelivery, ...
    pub attempt: u32,
    /// The visibility deadline (ms since the epoch).
    pub deadline: Millis,
}

impl Delivery {
    pub fn reference(&self) -> DeliveryRef {
        DeliveryRef {
            id: self.message.id,
            attempt: self.attempt,
        }
    }

    /// Converts what the store handed out; `Err` carries the text of a stored message that
    /// does not parse (which should never happen: the bus only stores what it serialized).
    pub(crate) fn from_claimed(c: ClaimedMessage) -> Result<Delivery, (DeliveryRef, String)> {
        let m = c.message;
        let reference = DeliveryRef {
            id: m.id,
            attempt: c.attempt,
        };
        let payload = serde_json::from_str(&m.payload)
            .map_err(|e| (reference, format!("stored payload is not valid JSON: {e}")))?;
        let headers = match &m.headers {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| (reference, format!("stored headers are not valid JSON: {e}")))?,
            None => BTreeMap::new(),
        };
        Ok(Delivery {
            message: Message {
                id: m.id,
                from: m.sender,
                to: m.recipient,
                channel: m.channel,
                payload,
                priority: m.priority,
                headers,
                correlation_id: m.correlation_id,
                reply_to: m.reply_to,
                created_at: m.created_at,
                expires_at: m.expires_at,
                max_attempts: m.max_attempts,
                backoff: m
                    .backoff_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(Duration::from_millis),
            },
            attempt: c.attempt,
            deadline: c.deadline,
        })
    }
}

/// How a sent message ended, as a receipt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The consumer handled it.
    Acked,
    /// Its ttl passed before anyone took it.
    Expired,
    /// The consumer rejected it for good (in the dead-letter queue).
    Failed,
    /// Every attempt failed or timed out (in the dead-letter queue).
    Dead,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Acked => "acked",
            Outcome::Expired => "expired",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
        }
    }

    /// The outcome of a final status; `None` while the message is still pending.
    pub fn of(status: MessageStatus) -> Option<Outcome> {
        match status {
            MessageStatus::Queued | MessageStatus::Delivered => None,
            MessageStatus::Acked => Some(Outcome::Acked),
            MessageStatus::Expired => Some(Outcome::Expired),
            MessageStatus::Failed => Some(Outcome::Failed),
            MessageStatus::Dead => Some(Outcome::Dead),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
