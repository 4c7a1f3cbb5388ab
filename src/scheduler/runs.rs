//! Running what fired: the overlap policy, the queue of waiting runs, jitter, and each
//! run's history record and outcome (failures counted, `max_failures` pausing).
//!
//! A run starts on the firing pass itself: the runner is called there and then (it only
//! builds the run's future; scripts then execute on another thread), and one task per run
//! waits for its start to be recorded, then for its end. The start row is the run's claim
//! on its fire time: the store refuses a fire time another node already started (two
//! nodes may both believe they lead for a moment), and a refused run never executes. Its
//! history rows are written in batches (`super::history`), so ten thousand runs due at
//! once are one claim transaction, not ten thousand store writes in front of each other.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use super::def::OverlapPolicy;
use super::engine::Entry;
use super::policy::jitter;
use super::records::{RunEnd, RunKind, RunStart};
use super::Scheduler;
use crate::store::Millis;

/// What becomes of one run.
enum Admit {
    /// Started at this time: the runner built the run's future.
    Started(Millis, LocalBoxFuture<'static, Result<(), String>>),
    /// Starts after its jitter.
    Delayed(Duration),
    Queued,
    Refused,
}

impl Scheduler {
    /// Applies the overlap policy to one run: starts it, queues it, or refuses it. Looks
    /// the schedule up once: this is the firing pass's per-run path.
    pub(super) fn enqueue(&self, name: &str, at: Millis, kind: RunKind) {
        let admit = {
            let mut state = self.inner.state.borrow_mut();
            let Some(entry) = state.entries.get_mut(name) else {
                return;
            };
            let busy = entry.running > 0 || !entry.queued.is_empty();
            match entry.stored.def.overlap {
                OverlapPolicy::Allow => self.begin(entry, name, at, kind),
                _ if !busy => self.begin(entry, name, at, kind),
                OverlapPolicy::Skip if kind == RunKind::Scheduled => {
                    entry.stored.last_outcome = Some("skipped".into());
                    Admit::Refused
                }
                _ => {
                    entry.queued.push_back((at, kind));
                    Admit::Queued
                }
            }
        };
        self.admitted(name, at, kind, admit);
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

    /// Starts a run now (or after its jitter), whatever the overlap policy.
    pub(super) fn start(&self, name: &str, at: Millis, kind: RunKind) {
        let admit = {
            let mut state = self.inner.state.borrow_mut();
            let Some(entry) = state.entries.get_mut(name) else {
                return;
            };
            self.begin(entry, name, at, kind)
        };
        self.admitted(name, at, kind, admit);
    }

    /// Counts the run as running and calls the runner now, unless jitter delays it.
    fn begin(&self, entry: &mut Entry, name: &str, at: Millis, kind: RunKind) -> Admit {
        entry.running += 1;
        let delay = match kind {
            // An operator's "run now" means now; jitter only spreads scheduled fires.
            RunKind::Manual => Duration::ZERO,
            _ => jitter(name, at, entry.stored.def.jitter),
        };
        if delay.is_zero() {
            Admit::Started(self.now(), self.inner.runner.run(&entry.stored.def, at))
        } else {
            Admit::Delayed(delay)
        }
    }

    fn admitted(&self, name: &str, at: Millis, kind: RunKind, admit: Admit) {
        match admit {
            Admit::Started(started, run) => self.started(name, at, kind, started, run),
            Admit::Delayed(delay) => {
                let (this, name) = (self.clone(), name.to_string());
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(delay).await;
                    let run = {
                        let state = this.inner.state.borrow();
                        // Gone if removed while its jitter ran.
                        let Some(entry) = state.entries.get(&name) else {
                            return;
                        };
                        this.inner.runner.run(&entry.stored.def, at)
                    };
                    this.started(&name, at, kind, this.now(), run);
                });
            }
            Admit::Queued => {}
            Admit::Refused => {
                self.inner.events.overlap_skipped(name, at);
                self.record_skipped(RunStart {
                    schedule: name.to_string(),
                    kind,
                    scheduled: at,
                    started: self.now(),
                    outcome: "skipped",
                    error: Some("the previous run is still going (overlap = skip)".into()),
                });
            }
        }
    }

    /// Records a started run and leaves the rest to a task of its own: the run executes
    /// once its start is recorded, which is its claim on the fire time (see
    /// `ScheduleStore::start_runs`), so a fire that two nodes both started runs on one.
    fn started(
        &self,
        name: &str,
        at: Millis,
        kind: RunKind,
        started: Millis,
        run: LocalBoxFuture<'static, Result<(), String>>,
    ) {
        let id = self.record_start(RunStart {
            schedule: name.to_string(),
            kind,
            scheduled: at,
            started,
            outcome: "running",
            error: None,
        });
        let (this, name) = (self.clone(), name.to_string());
        tokio::task::spawn_local(
            async move { this.finish(name, at, kind, started, run, id).await },
        );
    }

    async fn finish(
        &self,
        name: String,
        at: Millis,
        kind: RunKind,
        started: Millis,
        run: LocalBoxFuture<'static, Result<(), String>>,
        id: oneshot::Receiver<Option<i64>>,
    ) {
        // Not polled before the claim: the runner only built the run's future.
        let id = match id.await {
            Ok(Some(id)) => id,
            claim => return self.not_run(&name, at, claim.is_ok()),
        };
        self.inner.events.started(&name, at, started, kind);
        let result = run.await;
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
        self.pump(&name);
        if pause {
            // Written now, not only with the batched end row: until the store says paused,
            // a sync of other processes' changes (`super::sync`) would read the row as
            // resumed. It applies nothing while this edit is in flight.
            let _editing = super::sync::Editing::new(self);
            if let Err(e) = self.inner.store.set_paused(name.clone(), true, None).await {
                self.inner.events.store_error(&name, &e);
            }
        }
        self.record_end(RunEnd {
            id,
            schedule: name,
            ended,
            outcome: if result.is_ok() { "ok" } else { "failed" },
            error: result.err(),
            failures,
            pause,
            keep: self.inner.settings.history_keep,
        });
    }

    /// A run that does not execute: the store refused its start (`refused`: another node
    /// started this fire time) or could not record it (logged; running it anyway could
    /// run the fire twice). Its place is freed so that queued runs move on.
    fn not_run(&self, name: &str, at: Millis, refused: bool) {
        if let Some(entry) = self.inner.state.borrow_mut().entries.get_mut(name) {
            entry.running = entry.running.saturating_sub(1);
        }
        self.inner.events.not_run(name, at, refused);
        self.pump(name);
    }
}
