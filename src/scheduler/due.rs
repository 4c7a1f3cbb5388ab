//! The schedules waiting to fire, by fire time. One bucket per millisecond: 10,000
//! schedules due at the same time are one key and a list, so filing each one away for
//! its next time is an integer search and a push, where a set ordered by (time, name)
//! compared names at every step of every insert (a fifth of the firing pass).
//!
//! Removal is lazy: a schedule that is paused, removed, or moved to another time stays in
//! its old bucket, and the firing pass skips any name whose schedule is gone, inactive, or
//! now due at another time. A copy filed twice for the same time fires once: firing moves
//! the schedule's next time on, so the second copy no longer matches.

use std::collections::BTreeMap;

use crate::store::Millis;

#[derive(Default)]
pub(super) struct Due {
    buckets: BTreeMap<Millis, Vec<String>>,
}

impl Due {
    pub(super) fn insert(&mut self, at: Millis, name: String) {
        self.buckets.entry(at).or_default().push(name);
    }

    /// The earliest time anything is filed for.
    pub(super) fn first(&self) -> Option<Millis> {
        self.buckets.first_key_value().map(|(at, _)| *at)
    }

    /// The earliest bucket, if it is due by `now`.
    pub(super) fn pop_due(&mut self, now: Millis) -> Option<(Millis, Vec<String>)> {
        match self.first() {
            Some(at) if at <= now => self.buckets.pop_first(),
            _ => None,
        }
    }
}
