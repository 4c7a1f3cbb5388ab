//! Which scheduler fires shared schedules when several run over one store (two `serve`
//! processes, or a script using `dreamos.cron` beside the daemon).
//!
//! One row in the store names the leading node and until when it leads; a scheduler
//! renews its lead every [`RENEW_EVERY`] and takes over when the lead has lapsed for
//! [`LEAD_FOR`]. Only the leader fires shared schedules (configured, `schedule add`,
//! script-path ones); every node fires its own function-handler schedules. So each run
//! fires on one node, and the firing path writes nothing to the store before a run starts
//! (a per-run lock would cost 10,000 writes before 10,000 simultaneous runs could start).
//!
//! A node that takes over reloads the last recorded fire times, so runs due while no one
//! led are handled by each schedule's missed-run policy. A leader that cannot renew stops
//! firing [`MARGIN`] before its lead lapses, so two nodes never both believe they lead.

use std::time::Duration;

use super::Scheduler;
use crate::store::Millis;

/// How long one renewal makes this node the leader.
pub const LEAD_FOR: Millis = 15_000;
/// How often the leader renews (and others try to take over).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A leader stops firing this long before its lead ends without a renewal.
pub const MARGIN: Millis = 2_000;

/// A name for this scheduler that no other process shares: host, process id and a
/// per-process counter.
pub fn node_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Scheduler {
    /// Whether this node fires shared schedules now.
    pub fn is_leader(&self) -> bool {
        self.inner.lead_until.get() > self.now() + MARGIN
    }

    /// Takes or renews the lead in the store.
    pub(super) async fn renew_lead(&self) {
        let now = self.now();
        let until = now + LEAD_FOR;
        let node = self.inner.node.clone();
        match self.inner.store.try_lead(node, now, until).await {
            Ok(true) => {
                let was = self.is_leader();
                self.inner.lead_until.set(until);
                if !was {
                    self.took_lead().await;
                }
            }
            Ok(false) => self.inner.lead_until.set(0),
            // Keep what we had: it lapses by itself if the store stays unreachable.
            Err(e) => self.inner.events.store_error("(leadership)", &e),
        }
    }

    /// On becoming the leader: shared schedules go back to the fire times the store
    /// recorded, so runs due while no node led are handled by the missed-run policy.
    async fn took_lead(&self) {
        let rows = match self.inner.store.list_schedules().await {
            Ok(rows) => rows,
            Err(e) => return self.inner.events.store_error("(leadership)", &e),
        };
        let mut guard = self.inner.state.borrow_mut();
        let state = &mut *guard;
        for row in rows {
            let Some(entry) = state.entries.get_mut(&row.def.name) else {
                continue;
            };
            if entry.private() || row.def != entry.stored.def {
                continue;
            }
            if let (Some(stored), Some(mine)) = (row.next_fire, entry.stored.next_fire) {
                if stored < mine && entry.active() {
                    state.due.remove(&(mine, row.def.name.clone()));
                    state.due.insert((stored, row.def.name.clone()));
                    entry.stored.next_fire = Some(stored);
                }
            }
        }
        drop(guard);
        self.inner.wake.notify_one();
    }

    /// Whether any schedule here is shared (fired by the leader only).
    pub(super) fn has_shared(&self) -> bool {
        self.inner.settings.lead
            && self
                .inner
                .state
                .borrow()
                .entries
                .values()
                .any(|e| !e.private())
    }

    /// Hands the lead over at once (on shutdown) rather than make the next node wait for
    /// it to lapse.
    pub(super) async fn release_lead(&self) {
        if self.inner.lead_until.get() > 0 {
            let (node, now) = (self.inner.node.clone(), self.now());
            let _ = self.inner.store.try_lead(node, now, 0).await;
            self.inner.lead_until.set(0);
        }
    }
}
