//! The firing loop and the run bookkeeping.
//!
//! All schedules sit in one ordered set keyed by next fire time. The loop sleeps on one
//! tokio timer until the head is due (or until a change wakes it), fires everything due,
//! and sleeps again: an idle scheduler with 10,000 schedules is one pending timer.
//!
//! Firing never waits for the store or a run: it computes the next fire time in memory,
//! starts the runs as their own local tasks, and records the fire times afterwards in one
//! write for everything due at once. Which node fires shared schedules is decided ahead
//! of time by leadership ([`super::leader`]); each run executes only once its start row,
//! written in one batch for everything due at once, claimed its fire time, so a moment
//! where two nodes both lead still runs each fire once. Each run executes through the
//! [`Runner`], which puts scripts in their own sandboxed state on another thread, so a
//! slow run never delays the next fire.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::Notify;

use super::clock::Clock;
use super::def::ScheduleDef;
use super::events::Events;
use super::records::{RunKind, StoredSchedule};
use super::sync::Editing;
use super::trigger::Trigger;
use super::{ScheduleInfo, SchedulerError, Settings};
use crate::store::{Millis, ScheduleStore};

/// Executes one run. Implementations start scripts in their own state, send agent
/// messages, or call a script's function handler.
pub trait Runner {
    /// Runs `def` for fire time `scheduled`; `Err` carries the error text. Called on the
    /// firing pass with the scheduler's state borrowed: it must only build the run's
    /// future (the work happens when that is polled), never call back into the scheduler.
    fn run(
        &self,
        def: &ScheduleDef,
        scheduled: Millis,
    ) -> LocalBoxFuture<'static, Result<(), String>>;
}

/// The scheduler of one process. Cheap to clone (a handle); lives on one thread
/// (runs are local tasks, the runner may hold Lua values).
#[derive(Clone)]
pub struct Scheduler {
    pub(super) inner: Rc<Inner>,
}

pub(super) struct Inner {
    /// Where schedules, fire times, leadership and history persist.
    pub(super) store: Arc<dyn ScheduleStore>,
    pub(super) runner: Rc<dyn Runner>,
    /// Log lines and `schedules.events`.
    pub(super) events: Events,
    /// Wall-clock milliseconds on tokio's clock, so paused-time tests move fire times.
    pub(super) clock: Clock,
    pub(super) settings: Settings,
    pub(super) state: RefCell<State>,
    /// Wakes the loop when the earliest due time may have changed.
    pub(super) wake: Notify,
    /// This scheduler's name in the leadership row (see [`super::leader`]).
    pub(super) node: String,
    /// Until when this scheduler leads, i.e. fires shared schedules; 0 when it does not.
    pub(super) lead_until: Cell<Millis>,
    /// The store's schedule change counter as of the last sync (`super::sync`).
    pub(super) seen_version: Cell<i64>,
    /// Edits of this scheduler awaiting the store, and edits finished: a sync that
    /// overlaps one applies nothing.
    pub(super) editing: Cell<u32>,
    pub(super) edits: Cell<u64>,
    /// Run starts and ends waiting to be written (`super::history`).
    pub(super) history: super::history::History,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) entries: super::policy::FastMap<String, Entry>,
    /// (next fire, name) of every active schedule; the loop sleeps until the first.
    pub(super) due: super::due::Due,
}

pub(super) struct Entry {
    pub(super) stored: StoredSchedule,
    pub(super) trigger: Trigger,
    /// Runs in progress (more than one only with `overlap = allow`).
    pub(super) running: u32,
    /// Runs waiting for the current one (`overlap = queue`, and `run_all` catch-ups).
    pub(super) queued: VecDeque<(Millis, RunKind)>,
}

impl Entry {
    pub(super) fn active(&self) -> bool {
        !self.stored.paused && self.stored.def.enabled
    }

    /// A script's function-handler schedule: only this process can run it, so it fires
    /// here whoever leads.
    pub(super) fn private(&self) -> bool {
        self.stored.source.starts_with("lua:")
    }
}

/// Aborts a task when dropped (the leadership keeper ends with the loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        runner: Rc<dyn Runner>,
        bus: Option<crate::bus::Bus>,
        settings: Settings,
    ) -> Scheduler {
        Scheduler::with_clock(store, runner, bus, settings, Clock::new())
    }

    /// As [`Scheduler::new`], on a given clock (tests start it on a chosen day; several
    /// schedulers sharing one clock model restarts).
    pub fn with_clock(
        store: Arc<dyn ScheduleStore>,
        runner: Rc<dyn Runner>,
        bus: Option<crate::bus::Bus>,
        settings: Settings,
        clock: Clock,
    ) -> Scheduler {
        Scheduler {
            inner: Rc::new(Inner {
                store,
                runner,
                events: Events::new(bus),
                clock,
                settings,
                state: RefCell::default(),
                wake: Notify::new(),
                node: super::leader::node_id(),
                lead_until: Cell::new(0),
                seen_version: Cell::new(-1),
                editing: Cell::new(0),
                edits: Cell::new(0),
                history: Default::default(),
            }),
        }
    }

    /// Wall-clock now, as the scheduler sees it.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Adds or replaces a schedule. An unchanged definition keeps its persisted state
    /// (next fire, failures, pause), which is how a restart finds the runs it missed.
    pub async fn add(
        &self,
        def: ScheduleDef,
        source: &str,
    ) -> Result<ScheduleInfo, SchedulerError> {
        let now = self.now();
        let editing = Editing::new(self);
        let prev = self.inner.store.get_schedule(def.name.clone()).await?;
        let mut stored = match prev {
            Some(prev) if prev.def == def => StoredSchedule {
                source: source.to_string(),
                ..prev
            },
            // Keep the last fire time: recorded fire times only move forward.
            Some(prev) => StoredSchedule {
                last_fire: prev.last_fire,
                ..StoredSchedule::new(def.clone(), source)
            },
            None => StoredSchedule::new(def.clone(), source),
        };
        // An unchanged `every` keeps its phase across restarts: anchor on the stored next.
        let anchor = stored.next_fire.unwrap_or(now);
        let trigger = def.compile(&self.inner.settings.default_tz, anchor)?;
        if stored.next_fire.is_none() && stored.last_fire.is_none() {
            stored.next_fire = trigger.next_after(now);
            if stored.next_fire.is_none() {
                return Err(SchedulerError::Invalid(format!(
                    "schedule '{}': {} is in the past",
                    def.name,
                    trigger.describe()
                )));
            }
        }
        self.inner.store.put_schedule(stored.clone(), now).await?;
        let shared = !source.starts_with("lua:");
        let info = self.install(stored, trigger);
        drop(editing);
        if shared && self.inner.settings.lead && !self.is_leader() {
            self.renew_lead().await;
        }
        Ok(info)
    }

    /// Loads every persisted schedule (those added by `dreamos schedule add` or a previous
    /// configuration); function-handler schedules whose script is gone are dropped. A row
    /// that no longer compiles is logged and left alone. Returns how many were loaded.
    pub async fn load(&self) -> Result<usize, SchedulerError> {
        let mut loaded = 0;
        for stored in self.inner.store.list_schedules().await? {
            let name = stored.def.name.clone();
            if stored.source.starts_with("lua:") {
                self.inner.store.delete_schedule(name).await?;
                continue;
            }
            let anchor = stored.next_fire.unwrap_or_else(|| self.now());
            match stored.def.compile(&self.inner.settings.default_tz, anchor) {
                Ok(trigger) => {
                    self.install(stored, trigger);
                    loaded += 1;
                }
                Err(e) => tracing::error!(target: "dreamos::scheduler", "not loaded: {e}"),
            }
        }
        Ok(loaded)
    }

    pub(super) fn install(&self, stored: StoredSchedule, trigger: Trigger) -> ScheduleInfo {
        let name = stored.def.name.clone();
        let mut state = self.inner.state.borrow_mut();
        // The old entry's place in `due` goes stale by itself (see `super::due`).
        state.entries.remove(&name);
        let entry = Entry {
            stored,
            trigger,
            running: 0,
            queued: VecDeque::new(),
        };
        if let (true, Some(next)) = (entry.active(), entry.stored.next_fire) {
            state.due.insert(next, name.clone());
        }
        let info = self.info(&entry);
        state.entries.insert(name, entry);
        drop(state);
        self.inner.wake.notify_one();
        info
    }

    /// Removes a schedule and its history. Runs in progress finish.
    pub async fn remove(&self, name: &str) -> Result<bool, SchedulerError> {
        let _editing = Editing::new(self);
        self.forget(name);
        Ok(self.inner.store.delete_schedule(name.to_string()).await?)
    }

    /// Removes every schedule made by `source` (a script that ended).
    pub async fn remove_source(&self, source: &str) -> Result<usize, SchedulerError> {
        let names: Vec<String> = {
            let state = self.inner.state.borrow();
            state
                .entries
                .values()
                .filter(|e| e.stored.source == source)
                .map(|e| e.stored.def.name.clone())
                .collect()
        };
        for name in &names {
            self.remove(name).await?;
        }
        Ok(names.len())
    }

    pub(super) fn forget(&self, name: &str) -> bool {
        // Its place in `due` goes stale by itself.
        self.inner.state.borrow_mut().entries.remove(name).is_some()
    }

    /// Pauses (`true`) or resumes a schedule. Resuming resets the failure count and fires
    /// next at the first time after now (what was due while paused is not caught up).
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<(), SchedulerError> {
        let _editing = Editing::new(self);
        if !self.inner.state.borrow().entries.contains_key(name) {
            return Err(SchedulerError::NotFound(name.to_string()));
        }
        let next = self.set_paused_here(name, paused, None);
        self.inner
            .store
            .set_paused(name.to_string(), paused, next)
            .await?;
        Ok(())
    }

    /// Pauses or resumes in memory; a resumed schedule fires next at `next`, else at the
    /// first time after now. Returns its next fire time.
    pub(super) fn set_paused_here(
        &self,
        name: &str,
        paused: bool,
        next: Option<Millis>,
    ) -> Option<Millis> {
        let now = self.now();
        let next = {
            let mut guard = self.inner.state.borrow_mut();
            let state = &mut *guard;
            let entry = state.entries.get_mut(name)?;
            entry.stored.paused = paused;
            if !paused {
                entry.stored.failures = 0;
                entry.stored.next_fire = next.or_else(|| entry.trigger.next_after(now));
            }
            if let (true, Some(next)) = (entry.active(), entry.stored.next_fire) {
                state.due.insert(next, name.to_string());
            }
            entry.stored.next_fire
        };
        self.inner.wake.notify_one();
        next
    }

    /// Starts a run now, whatever the overlap policy (an operator asked for it).
    pub fn run_now(&self, name: &str) -> Result<(), SchedulerError> {
        if !self.inner.state.borrow().entries.contains_key(name) {
            return Err(SchedulerError::NotFound(name.to_string()));
        }
        self.start(name, self.now(), RunKind::Manual);
        Ok(())
    }

    /// Every schedule, by name.
    pub fn list(&self) -> Vec<ScheduleInfo> {
        let state = self.inner.state.borrow();
        let mut out: Vec<ScheduleInfo> = state.entries.values().map(|e| self.info(e)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn info(&self, e: &Entry) -> ScheduleInfo {
        let next = match (e.active(), e.stored.next_fire) {
            (true, Some(first)) => {
                let mut v = vec![first];
                v.extend(e.trigger.upcoming(first, 2));
                v
            }
            _ => Vec::new(),
        };
        ScheduleInfo::new(&e.stored, &e.trigger, next, e.running)
    }

    /// The firing loop; returns when `shutdown` resolves. Runs in progress are local
    /// tasks and end with the `LocalSet`.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Know whether this node fires shared schedules before the first one is due.
        if self.has_shared() {
            self.renew_lead().await;
        }
        let keeper = self.clone();
        let leadership = tokio::task::spawn_local(async move {
            loop {
                let leading = keeper.is_leader();
                let wait = if leading {
                    super::leader::RENEW_EVERY
                } else {
                    super::leader::WATCH_EVERY
                };
                tokio::time::sleep(wait).await;
                // A script with only its own function handlers does not compete.
                if keeper.has_shared() {
                    keeper.renew_lead().await;
                    if leading && keeper.is_leader() {
                        keeper.reconcile_runs().await;
                    }
                }
            }
        });
        let _stop_leadership = AbortOnDrop(leadership);
        // Only a scheduler that may lead fires shared schedules, so only it follows what
        // other processes change (a script's own scheduler fires only its handlers).
        let _stop_sync = self.inner.settings.lead.then(|| {
            let syncer = self.clone();
            AbortOnDrop(tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(super::sync::SYNC_EVERY).await;
                    syncer.sync_from_store().await;
                }
            }))
        });
        self.run_loop(shutdown).await;
        self.release_lead().await;
    }

    async fn run_loop(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let head = self.inner.state.borrow().due.first();
            let deadline = match head {
                Some(at) => self.inner.clock.instant_of(at),
                // Nothing scheduled: sleep until woken (a far deadline keeps one select).
                None => tokio::time::Instant::now() + Duration::from_secs(86_400 * 365),
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => self.fire_due(),
            }
        }
    }
}
