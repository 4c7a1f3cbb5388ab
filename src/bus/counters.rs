//! Counters of what this process's bus did since it started — messages sent, acked, dead
//! and failed — for `/metrics` (`dreamos_bus_messages_*_total`). Stored totals cannot serve
//! as counters: retention prunes acked messages, so they would go down.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Bus, MessageStatus};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    dead: AtomicU64,
    failed: AtomicU64,
}

/// A reading of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounts {
    /// Messages stored by `send` (a broadcast counts one per inbox).
    pub sent: u64,
    pub acked: u64,
    /// Out of attempts (or ttl-less redeliveries exhausted).
    pub dead: u64,
    /// Rejected for good (`nack` without retry, unreadable payload).
    pub failed: u64,
}

impl Counters {
    pub(crate) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a message that became final in this process.
    pub(crate) fn finished(&self, status: MessageStatus) {
        let counter = match status {
            MessageStatus::Acked => &self.acked,
            MessageStatus::Dead => &self.dead,
            MessageStatus::Failed => &self.failed,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Bus {
    /// What this bus sent and settled since it was created.
    pub fn counts(&self) -> BusCounts {
        let c = &self.inner.counters;
        BusCounts {
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}
