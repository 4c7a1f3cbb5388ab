//! Writing run history in batches. Every run start and end is a history row; written one
//! store call each, 10,000 runs due at once cost 20,000 writer round trips (a closure, a
//! channel message and a wake-up of the writer thread each), on the firing thread, in
//! the same second as the next fires. Instead a run's start or end goes into a buffer and
//! one flusher task writes what gathered in one call (one transaction), then whatever
//! gathered meanwhile, until the buffer is empty.
//!
//! A start hands back a receiver of the row id, which the run needs before it executes: the
//! start is the run's claim on its fire time, and the store refuses (no id) a fire time
//! another node already started. The end waits for it too, so an end is never written
//! before its start.

use std::cell::{Cell, RefCell};

use tokio::sync::oneshot;

use super::records::{RunEnd, RunStart};
use super::Scheduler;

/// Where a start's row id goes: `None` when the store refused the start.
type Claim = oneshot::Sender<Option<i64>>;

#[derive(Default)]
pub(super) struct History {
    starts: RefCell<Vec<(RunStart, Option<Claim>)>>,
    ends: RefCell<Vec<RunEnd>>,
    /// Whether a flusher task is running.
    flushing: Cell<bool>,
}

impl Scheduler {
    /// Queues a run's start for the history; the receiver gets its row id once written,
    /// `None` if the store refused the start (its fire time is taken), or is dropped if
    /// the write failed (which is logged).
    pub(super) fn record_start(&self, start: RunStart) -> oneshot::Receiver<Option<i64>> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .history
            .starts
            .borrow_mut()
            .push((start, Some(tx)));
        self.flush_soon();
        rx
    }

    /// Queues a record of a run that did not happen (`skipped`).
    pub(super) fn record_skipped(&self, start: RunStart) {
        self.inner.history.starts.borrow_mut().push((start, None));
        self.flush_soon();
    }

    /// Queues a run's end.
    pub(super) fn record_end(&self, end: RunEnd) {
        self.inner.history.ends.borrow_mut().push(end);
        self.flush_soon();
    }

    fn flush_soon(&self) {
        let history = &self.inner.history;
        if history.flushing.replace(true) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_local(async move { this.flush().await });
    }

    async fn flush(&self) {
        let (store, history) = (&self.inner.store, &self.inner.history);
        loop {
            let starts = std::mem::take(&mut *history.starts.borrow_mut());
            let ends = std::mem::take(&mut *history.ends.borrow_mut());
            if starts.is_empty() && ends.is_empty() {
                history.flushing.set(false);
                return;
            }
            if !starts.is_empty() {
                let (rows, senders): (Vec<RunStart>, Vec<_>) = starts.into_iter().unzip();
                match store.start_runs(self.inner.node.clone(), rows).await {
                    Ok(ids) => {
                        for (tx, id) in senders.into_iter().zip(ids) {
                            if let Some(tx) = tx {
                                let _ = tx.send(id);
                            }
                        }
                    }
                    Err(e) => self.inner.events.store_error("(run history)", &e),
                }
            }
            if !ends.is_empty() {
                if let Err(e) = store.finish_runs(ends).await {
                    self.inner.events.store_error("(run history)", &e);
                }
            }
        }
    }
}
