//! Which scheduler fires shared schedules when several run over one store (two `serve`
//! processes, or a script using `dreamos.cron` beside the daemon).
//!
//! One row in the store names the leading node and until when it leads; a scheduler
//! renews its lead every [`RENEW_EVERY`] and takes over when the lead has lapsed for
//! [`LEAD_FOR`]. Only the leader fires shared schedules (configured, `schedule add`,
//! script-path ones); every node fires its own function-handler schedules. So each run
//! fires on one node. Behind that, a run executes only after its start row claimed its
//! fire time (`ScheduleStore::start_runs`, one transaction for all runs due at once), so
//! if two nodes ever both fire, the second start of a fire is refused and not run.
//!
//! A node that takes over reloads the last recorded fire times, so runs due while no one
//! led are handled by each schedule's missed-run policy. A leader that cannot renew stops
//! firing [`MARGIN`] before its lead lapses, so with clocks in step two nodes do not both
//! believe they lead (a process paused past its lead, or a clock that jumped, could: the
//! claim above covers that).
//!
//! Takeover from a dead leader: a node name carries the host, its pid namespace and the
//! process id ([`node_id`]). A node that finds the lead held by a process of its own host
//! and pid namespace that no longer runs (or is a zombie) takes the lead at once, in one
//! conditional write that succeeds only if that holder still holds it. A daemon killed
//! with SIGKILL and restarted therefore fires again as soon as it starts, and a second
//! daemon on the same host takes over within [`WATCH_EVERY`]. A holder on another host,
//! or a pid that is alive (even if reused by another program), is never judged dead:
//! there the lead is taken only when it lapses ([`LEAD_FOR`]), which is the safe side.
//! The leader also marks runs left `running` by dead processes as interrupted
//! (`super::recover`).

use std::time::Duration;

use super::Scheduler;
use crate::store::Millis;

/// How long one renewal makes this node the leader.
pub const LEAD_FOR: Millis = 15_000;
/// How often the leader renews (and others try to take over).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A leader stops firing this long before its lead ends without a renewal.
pub const MARGIN: Millis = 2_000;
/// How often a node that does not lead looks at the lead (a read; it writes only to take
/// over a lapsed or dead holder's lead).
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Where a process id means one process: the host name and the pid namespace.
fn place() -> &'static str {
    static PLACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLACE.get_or_init(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        // "pid:[4026531836]": the namespace's inode; containers sharing a host name and a
        // database differ here, so one never judges the other's pids.
        let ns = std::fs::read_link("/proc/self/ns/pid")
            .map(|p| {
                p.display()
                    .to_string()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            })
            .unwrap_or_default();
        format!("{host}/{ns}")
    })
}

/// A name for this scheduler that no other process shares: host and pid namespace,
/// process id, and a per-process counter (`host/ns:pid:n`).
pub fn node_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}:{}:{}",
        place(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `node` names a process of this host and pid namespace that has ended. `false`
/// whenever that is not certain: another host, a name not made by [`node_id`], this
/// process, or a pid that is alive.
pub fn is_dead(node: &str) -> bool {
    let mut parts = node.rsplitn(3, ':');
    let (_, Some(pid), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if at != place() || pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        // A zombie (killed, not yet reaped by its parent) still answers; it fires nothing.
        return std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(") ")?.1.chars().next()?;
                Some(state == 'Z' || state == 'X')
            })
            .unwrap_or(false);
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl Scheduler {
    /// Whether this node fires shared schedules now.
    pub fn is_leader(&self) -> bool {
        self.inner.lead_until.get() > self.now() + MARGIN
    }

    /// Takes or renews the lead in the store. A node that does not lead reads first and
    /// writes only when the lead is free, lapsed, or held by a dead process.
    pub(super) async fn renew_lead(&self) {
        let now = self.now();
        let until = now + LEAD_FOR;
        let node = self.inner.node.clone();
        if self.inner.lead_until.get() == 0 {
            match self.inner.store.leader().await {
                Ok(Some((holder, _))) if holder != node && is_dead(&holder) => {
                    return self.take_from_dead(holder, until).await;
                }
                Ok(Some((holder, end))) if holder != node && end >= now => return,
                Ok(_) => {}
                Err(e) => return self.inner.events.store_error("(leadership)", &e),
            }
        }
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

    async fn take_from_dead(&self, holder: String, until: Millis) {
        let node = self.inner.node.clone();
        match self
            .inner
            .store
            .take_lead_from(node, holder.clone(), until)
            .await
        {
            Ok(true) => {
                tracing::info!(
                    target: "dreamos::scheduler",
                    "took the lead from {holder}, whose process has ended"
                );
                self.inner.lead_until.set(until);
                self.took_lead().await;
            }
            Ok(false) => {}
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
        {
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
                        state.due.insert(stored, row.def.name.clone());
                        entry.stored.next_fire = Some(stored);
                    }
                }
            }
        }
        self.inner.wake.notify_one();
        self.reconcile_runs().await;
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
