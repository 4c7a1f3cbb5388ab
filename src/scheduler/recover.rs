//! Runs a crash left behind. A run's history row is written `running` when it starts and
//! finished when it ends; if the process dies in between, the row would stay `running`
//! for ever. Each row names the scheduler node that ran it, so the leader, when it takes
//! the lead and at every renewal, marks the runs of nodes that have ended
//! ([`super::leader::is_dead`]) as `interrupted`, with an error saying so, and lets each
//! schedule's missed-run policy decide what runs again:
//!
//! - `skip`: nothing (one log line says how many were interrupted);
//! - `run_once`: one catch-up run for the newest interrupted fire time, unless missed fire
//!   times are due anyway (their one catch-up run covers it);
//! - `run_all`: a catch-up run for every interrupted fire time within `catchup_window`.
//!
//! Manual runs (`dreamos schedule run`) are marked but not run again: an operator asked for
//! one run, and sees that it was interrupted. Runs of a node on another host are left
//! alone: whether that process still runs cannot be known from here.

use std::collections::BTreeMap;

use super::def::MissedPolicy;
use super::records::{RunKind, RunRecord};
use super::Scheduler;
use crate::store::Millis;

impl Scheduler {
    /// Marks the runs of ended processes as interrupted and applies the missed-run policy.
    pub(super) async fn reconcile_runs(&self) {
        let store = &self.inner.store;
        let owners = match store.running_owners().await {
            Ok(owners) => owners,
            Err(e) => return self.inner.events.store_error("(interrupted runs)", &e),
        };
        for owner in owners {
            // Rows from before owners were recorded have none: only a crash leaves them.
            let dead = owner.as_deref().is_none_or(super::leader::is_dead);
            if !dead {
                continue;
            }
            let who = owner.clone().unwrap_or_else(|| "unknown".into());
            let error = format!(
                "interrupted: the process running it ({who}) ended before the run finished"
            );
            match store.interrupt_runs(owner, error).await {
                Ok(runs) => self.after_interrupted(runs),
                Err(e) => self.inner.events.store_error("(interrupted runs)", &e),
            }
        }
    }

    fn after_interrupted(&self, runs: Vec<RunRecord>) {
        let mut by_schedule: BTreeMap<String, Vec<Millis>> = BTreeMap::new();
        for run in &runs {
            let times = by_schedule.entry(run.schedule.clone()).or_default();
            if run.kind != RunKind::Manual.as_str() {
                times.push(run.scheduled);
            }
        }
        let now = self.now();
        for (name, mut times) in by_schedule {
            times.sort_unstable();
            let count = runs.iter().filter(|r| r.schedule == name).count();
            let (again, policy) = {
                let state = self.inner.state.borrow();
                match state.entries.get(&name) {
                    Some(e) if e.active() && !e.private() => {
                        let def = &e.stored.def;
                        let missed_due = e.stored.next_fire.is_some_and(|n| n <= now);
                        let oldest = now - crate::bus::clock::millis(def.catchup_window);
                        let again: Vec<Millis> = match def.missed {
                            MissedPolicy::Skip => Vec::new(),
                            MissedPolicy::RunOnce if missed_due => Vec::new(),
                            MissedPolicy::RunOnce => times.last().copied().into_iter().collect(),
                            MissedPolicy::RunAll => {
                                times.into_iter().filter(|t| *t >= oldest).collect()
                            }
                        };
                        (again, Some(def.missed))
                    }
                    _ => (Vec::new(), None),
                }
            };
            self.inner
                .events
                .interrupted(&name, count, again.len(), policy);
            for at in again {
                self.enqueue(&name, at, RunKind::Catchup);
            }
        }
    }
}
