//! Picking up schedule changes other processes made while this scheduler runs: `dreamos
//! schedule add|rm|pause|resume` from the command line, a script's `dreamos.cron` with a
//! script path in `dreamos run`, or another node.
//!
//! The store keeps a change counter that every add, removal, pause, resume or new
//! definition moves (fire-time updates do not). The scheduler reads it every
//! [`SYNC_EVERY`] (one small read; idle cost stays flat whatever the number of schedules)
//! and, when it moved, reads the schedules and applies the difference: new rows are
//! installed, removed ones forgotten, paused ones stop and resumed ones fire next at the
//! time the resuming process stored, and a new definition replaces the old with the state
//! the writer stored. Function-handler schedules (`lua:...`) belong to their process and
//! are never touched here.
//!
//! An edit this scheduler is making itself (`add`, `remove`, `set_paused` awaiting the
//! store) would race a sync reading the rows at the same time, so a sync that overlaps one
//! applies nothing and tries again at the next tick.

use std::collections::HashSet;
use std::time::Duration;

use super::records::StoredSchedule;
use super::Scheduler;

/// How often the change counter is read.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

/// Marks an edit in progress on this scheduler; a sync overlapping it applies nothing.
pub(super) struct Editing<'a>(&'a Scheduler);

impl<'a> Editing<'a> {
    pub(super) fn new(scheduler: &'a Scheduler) -> Editing<'a> {
        let inner = &scheduler.inner;
        inner.editing.set(inner.editing.get() + 1);
        Editing(scheduler)
    }
}

impl Drop for Editing<'_> {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        inner.editing.set(inner.editing.get().saturating_sub(1));
        inner.edits.set(inner.edits.get() + 1);
    }
}

/// What a sync changes for one schedule.
enum Change {
    Install(Box<StoredSchedule>),
    Pause(String),
    Resume(String, Option<crate::store::Millis>),
    Forget(String),
}

impl Scheduler {
    /// Applies what other processes changed since the last sync, if anything.
    pub(super) async fn sync_from_store(&self) {
        let inner = &self.inner;
        let edits = inner.edits.get();
        if inner.editing.get() > 0 {
            return;
        }
        let version = match inner.store.schedule_version().await {
            Ok(v) => v,
            Err(e) => return inner.events.store_error("(changes)", &e),
        };
        if version == inner.seen_version.get() {
            return;
        }
        let rows = match inner.store.list_schedules().await {
            Ok(rows) => rows,
            Err(e) => return inner.events.store_error("(changes)", &e),
        };
        if inner.editing.get() > 0 || inner.edits.get() != edits {
            return;
        }
        let changes = self.diff(rows);
        for change in changes {
            self.apply(change);
        }
        inner.seen_version.set(version);
        if self.has_shared() && !self.is_leader() {
            self.renew_lead().await;
        }
    }

    fn diff(&self, rows: Vec<StoredSchedule>) -> Vec<Change> {
        let state = self.inner.state.borrow();
        let mut changes = Vec::new();
        let mut present = HashSet::new();
        for row in rows {
            if row.source.starts_with("lua:") {
                continue;
            }
            present.insert(row.def.name.clone());
            match state.entries.get(&row.def.name) {
                Some(e) if e.private() => {}
                Some(e) if e.stored.def == row.def && e.stored.source == row.source => {
                    if e.stored.paused != row.paused {
                        changes.push(if row.paused {
                            Change::Pause(row.def.name)
                        } else {
                            Change::Resume(row.def.name, row.next_fire)
                        });
                    }
                }
                _ => changes.push(Change::Install(Box::new(row))),
            }
        }
        for e in state.entries.values() {
            if !e.private() && !present.contains(&e.stored.def.name) {
                changes.push(Change::Forget(e.stored.def.name.clone()));
            }
        }
        changes
    }

    fn apply(&self, change: Change) {
        const LOG: &str = "dreamos::scheduler";
        match change {
            Change::Install(row) => {
                let name = row.def.name.clone();
                let anchor = row.next_fire.unwrap_or_else(|| self.now());
                match row.def.compile(&self.inner.settings.default_tz, anchor) {
                    Ok(trigger) => {
                        let known = self.inner.state.borrow().entries.contains_key(&name);
                        self.install(*row, trigger);
                        let what = if known { "changed" } else { "added" };
                        tracing::info!(target: LOG, schedule = %name, "schedule {name} {what} by another process");
                    }
                    Err(e) => tracing::error!(target: LOG, "not loaded: {e}"),
                }
            }
            Change::Pause(name) => {
                self.set_paused_here(&name, true, None);
                tracing::info!(target: LOG, schedule = %name, "schedule {name} paused by another process");
            }
            Change::Resume(name, next) => {
                self.set_paused_here(&name, false, next);
                tracing::info!(target: LOG, schedule = %name, "schedule {name} resumed by another process");
            }
            Change::Forget(name) => {
                self.forget(&name);
                tracing::info!(target: LOG, schedule = %name, "schedule {name} removed by another process");
            }
        }
    }
}
