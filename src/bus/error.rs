//! Errors of the bus. Each says what was wrong and how to fix it; [`BusError::kind`] gives a
//! short stable name for scripts (`err.kind` in Lua).

use std::path::PathBuf;
use std::time::Duration;

use crate::store::{MessageId, MessageStatus, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid channel '{name}': {reason}")]
    InvalidChannel { name: String, reason: String },
    #[error("invalid pattern '{pattern}': {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("payload is {size} bytes, over the limit of {limit} bytes (bus.max_payload)")]
    PayloadTooLarge { size: u64, limit: u64 },
    #[error("payload cannot be stored as JSON: {0}")]
    Payload(String),
    #[error("invalid option '{name}': {reason}")]
    InvalidOption { name: &'static str, reason: String },
    #[error(
        "broadcast reached no one: no agent inbox is known yet (an inbox becomes known when \
         its agent first receives)"
    )]
    NoRecipients,
    #[error("timed out after {} waiting for {what}", crate::units::format_duration(*after))]
    Timeout { what: &'static str, after: Duration },
    #[error(
        "message {id} attempt {attempt} is no longer held by this consumer (it is now {status} \
         after {attempts} attempts): its visibility timeout passed or it was already settled"
    )]
    Stale {
        id: MessageId,
        attempt: u32,
        status: MessageStatus,
        attempts: u32,
    },
    #[error("message {0} does not exist (never sent, or pruned or purged)")]
    NotFound(MessageId),
    #[error("message {id} is not in the dead-letter queue (it is {status})")]
    NotDead {
        id: MessageId,
        status: MessageStatus,
    },
    #[error("message {0} was not sent with request(), so there is no one to reply to")]
    NotARequest(MessageId),
    #[error("cannot write {}: {source}", path.display())]
    Export {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A store failure shared by every caller of one batch (batched acks).
    #[error(transparent)]
    Batch(std::sync::Arc<StoreError>),
}

impl BusError {
    /// A short, stable name of the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            BusError::InvalidChannel { .. } => "invalid_channel",
            BusError::InvalidPattern { .. } => "invalid_pattern",
            BusError::PayloadTooLarge { .. } => "payload_too_large",
            BusError::Payload(_) => "invalid_payload",
            BusError::InvalidOption { .. } => "invalid_option",
            BusError::NoRecipients => "no_recipients",
            BusError::Timeout { .. } => "timeout",
            BusError::Stale { .. } => "stale_delivery",
            BusError::NotFound(_) => "not_found",
            BusError::NotDead { .. } => "not_dead",
            BusError::NotARequest(_) => "not_a_request",
            BusError::Export { .. } => "io",
            BusError::Store(_) | BusError::Batch(_) => "store",
        }
    }

    /// True for mistakes of the caller (bad arguments), as opposed to failures of the world
    /// (timeouts, storage): the Lua layer raises the first kind and returns `nil, err` for
    /// the second.
    pub fn is_misuse(&self) -> bool {
        matches!(
            self,
            BusError::InvalidChannel { .. }
                | BusError::InvalidPattern { .. }
                | BusError::PayloadTooLarge { .. }
                | BusError::Payload(_)
                | BusError::InvalidOption { .. }
                | BusError::NotARequest(_)
        )
    }
}
