//! Running what fired: the overlap policy, the queue of waiting runs, jitter, and each
//! run's history record and outcome (failures counted, `max_failures` pausing).

use std::time::Duration;

use super::def::{OverlapPolicy, ScheduleDef};
use super::policy::jitter;
use super::records::{RunEnd, RunKind};
use super::Scheduler;
use crate::store::Millis;

impl Scheduler {
    /// Applies the overlap policy to one run.
    pub(super) fn enqueue(&self, name: &str, at: Millis, kind: RunKind) {
        let refused = {
            let mut state = self.inner.state.borrow_mut();
            let Some(entry) = state.entries.get_mut(name) else {
                return;
            };
            let busy = entry.running > 0 || !entry.queued.is_empty();
            match entry.stored.def.overlap {
                OverlapPolicy::Allow => false,
                OverlapPolicy::Skip if busy && kind == RunKind::Scheduled => true,
                _ => {
                    entry.queued.push_back((at, kind));
                    false
                }
            }
        };
        if refused {
            let reason = "the previous run is still going (overlap = skip)".to_string();
            let now = self.now();
            self.inner.events.overlap_skipped(name, at);
            let this = self.clone();
            let name_owned = name.to_string();
            tokio::task::spawn_local(async move {
                let store = &this.inner.store;
                let node = this.inner.node.clone();
                let record = store.start_run(
                    name_owned.clone(),
                    kind,
                    at,
                    now,
                    "skipped",
                    Some(reason),
                    node,
                );
                if let Err(e) = record.await {
                    this.inner.events.store_error(&name_owned, &e);
                }
            });
            if let Some(entry) = self.inner.state.borrow_mut().entries.get_mut(name) {
                entry.stored.last_outcome = Some("skipped".into());
            }
            return;
        }
        if self.overlap_of(name) == Some(OverlapPolicy::Allow) {
            self.start(name, at, kind);
        } else {
            self.pump(name);
        }
    }

    fn overlap_of(&self, name: &str) -> Option<OverlapPolicy> {
        let state = self.inner.state.borrow();
        state.entries.get(name).map(|e| e.stored.def.overlap)
    }

    /// Starts the next queued run if nothing of this schedule is running.
    fn pump(&self, name: &str) {
        let next = {
            let mut state = self.inner.state.borrow_mut();
            match state.entries.get_mut(name) {
                Some(e) if e.running == 0 => e.queued.pop_front(),
                _ => None,
            }
        };
        if let Some((at, kind)) = next {
            self.start(name, at, kind);
        }
    }

    pub(super) fn start(&self, name: &str, at: Millis, kind: RunKind) {
        let def = {
            let mut state = self.inner.state.borrow_mut();
            let Some(entry) = state.entries.get_mut(name) else {
                return;
            };
            entry.running += 1;
            entry.stored.def.clone()
        };
        let this = self.clone();
        tokio::task::spawn_local(async move { this.execute(def, at, kind).await });
    }

    async fn execute(&self, def: ScheduleDef, at: Millis, kind: RunKind) {
        let name = def.name.clone();
        // An operator's "run now" means now; jitter only spreads scheduled fires.
        let delay = match kind {
            RunKind::Manual => Duration::ZERO,
            _ => jitter(&name, at, def.jitter),
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let started = self.now();
        let store = &self.inner.store;
        // The "running" record is written beside the run, not before it: a run starts on
        // time however busy the store is, and the record is there if the process dies.
        let (writer, run_name, node) = (store.clone(), name.clone(), self.inner.node.clone());
        let record = tokio::task::spawn_local(async move {
            writer
                .start_run(run_name, kind, at, started, "running", None, node)
                .await
        });
        self.inner.events.started(&name, at, started, kind);
        let result = self.inner.runner.run(&def, at).await;
        let id = match record.await {
            Ok(Ok(id)) => Some(id),
            Ok(Err(e)) => {
                self.inner.events.store_error(&name, &e);
                None
            }
            Err(_) => None,
        };
        let ended = self.now();
        let (failures, pause) = {
            let mut state = self.inner.state.borrow_mut();
            let state = &mut *state;
            match state.entries.get_mut(&name) {
                Some(entry) => {
                    entry.running = entry.running.saturating_sub(1);
                    entry.stored.failures = match result {
                        Ok(()) => 0,
                        Err(_) => entry.stored.failures.saturating_add(1),
                    };
                    entry.stored.last_outcome =
                        Some(if result.is_ok() { "ok" } else { "failed" }.into());
                    let max = entry.stored.def.max_failures;
                    let pause = max > 0 && entry.stored.failures >= max && !entry.stored.paused;
                    if pause {
                        entry.stored.paused = true;
                        entry.queued.clear();
                        if let Some(next) = entry.stored.next_fire {
                            state.due.remove(&(next, name.clone()));
                        }
                    }
                    (entry.stored.failures, pause)
                }
                None => (0, false),
            }
        };
        self.inner.events.finished(
            &name,
            at,
            started,
            ended,
            result.as_ref().err(),
            failures,
            pause,
        );
        if let Some(id) = id {
            let end = RunEnd {
                id,
                schedule: name.clone(),
                ended,
                outcome: if result.is_ok() { "ok" } else { "failed" },
                error: result.err(),
                failures,
                pause,
                keep: self.inner.settings.history_keep,
            };
            if let Err(e) = store.finish_run(end).await {
                self.inner.events.store_error(&name, &e);
            }
        }
        self.pump(&name);
    }
}
