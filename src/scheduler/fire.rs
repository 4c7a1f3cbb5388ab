//! The firing pass: everything due now, in order of fire time. For each schedule it works
//! out which fire times passed, applies the missed-run policy, sets the next fire time and
//! starts the runs (the runner is called right here, see `super::runs`), then records all
//! fire times of the pass in one store write. 10,000 schedules due in the same
//! millisecond are one pass; what each costs is what makes the last one late, so the
//! common case (one fire time passed, on time) takes a path without allocations beyond
//! the run's own.

use super::policy::{next_cached, plan_runs, FastMap, ON_TIME_GRACE};
use super::records::RunKind;
use super::Scheduler;
use crate::store::Millis;

/// Most missed fire times counted one by one after a long outage; past that the count is
/// reported as "at least".
const MAX_CATCHUP_SCAN: usize = 100_000;

/// What one schedule's fire decided.
struct Fired {
    /// The newest fire time that passed (recorded as `last_fire`).
    last: Millis,
    next: Option<Millis>,
    runs: Runs,
}

/// The runs a fire starts: one on-time run, normally.
enum Runs {
    OnTime(Millis),
    Planned(Vec<(Millis, RunKind)>),
}

impl Scheduler {
    pub(super) fn fire_due(&self) {
        let now = self.now();
        let leader = self.is_leader();
        let mut fires = Vec::new();
        // Schedules sharing an expression share their next time: 10,000 "@hourly"
        // schedules cost one cron search per second, not 10,000.
        let mut cache = FastMap::default();
        loop {
            let bucket = self.inner.state.borrow_mut().due.pop_due(now);
            let Some((at, names)) = bucket else {
                break;
            };
            for name in names {
                let Some(fired) = self.fire(&name, at, now, leader, &mut cache) else {
                    continue;
                };
                match fired.runs {
                    Runs::OnTime(at) => self.enqueue(&name, at, RunKind::Scheduled),
                    Runs::Planned(runs) => {
                        for (at, kind) in runs {
                            self.enqueue(&name, at, kind);
                        }
                    }
                }
                fires.push((name, fired.last, fired.next));
            }
        }
        if fires.is_empty() {
            return;
        }
        // Last and next fire times are written after the runs started, in one transaction
        // for everything due now; a crash before it commits means those runs are caught up
        // (at least once) after the restart.
        let this = self.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = this.inner.store.record_fires(fires).await {
                this.inner.events.store_error("(fire times)", &e);
            }
        });
    }

    /// Fires `name`, due at `due`: works out which fire times passed (one, normally; many
    /// after an outage), applies the missed-run policy and sets the next fire time. The
    /// caller starts the runs and records the fire times. `None` when nothing runs here
    /// (another node leads, or this place in `due` is stale).
    fn fire(
        &self,
        name: &str,
        due: Millis,
        now: Millis,
        leader: bool,
        cache: &mut FastMap<(u64, Millis), Option<Millis>>,
    ) -> Option<Fired> {
        let (fired, skipped, policy) = {
            let mut guard = self.inner.state.borrow_mut();
            let state = &mut *guard;
            let entry = state.entries.get_mut(name)?;
            // A stale place in `due`: paused, or moved to another time since it was filed.
            if !entry.active() || entry.stored.next_fire != Some(due) {
                return None;
            }
            let first = next_cached(&entry.trigger, due, cache);
            let on_time = first.is_none_or(|n| n > now) && now - due <= ON_TIME_GRACE;
            let mut passed = Vec::new();
            let mut overflow = false;
            let mut next = first;
            if !on_time {
                passed.push(due);
                while let Some(n) = next.filter(|n| *n <= now) {
                    if passed.len() >= MAX_CATCHUP_SCAN {
                        overflow = true;
                        next = entry.trigger.next_after(now);
                        break;
                    }
                    passed.push(n);
                    next = next_cached(&entry.trigger, n, cache);
                }
            }
            let last = passed.last().copied().unwrap_or(due);
            if let (true, Some(n)) = (entry.active(), next) {
                state.due.insert(n, name.to_string());
            }
            entry.stored.next_fire = next;
            // Shared schedules fire on the leading node only; the others keep time so they
            // can take over (see `took_lead`).
            if !leader && !entry.private() {
                return None;
            }
            entry.stored.last_fire = Some(last);
            if on_time {
                let fired = Fired {
                    last,
                    next,
                    runs: Runs::OnTime(due),
                };
                return Some(fired);
            }
            let def = &entry.stored.def;
            let (runs, skipped) = plan_runs(&passed, now, def.missed, def.catchup_window);
            let skipped = match (skipped, overflow) {
                (0, _) => None,
                (n, true) => Some(format!("at least {n}")),
                (n, false) => Some(n.to_string()),
            };
            let fired = Fired {
                last,
                next,
                runs: Runs::Planned(runs),
            };
            (fired, skipped, def.missed)
        };
        if let Some(skipped) = skipped {
            self.inner.events.missed(name, &skipped, policy);
        }
        Some(fired)
    }
}
