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
