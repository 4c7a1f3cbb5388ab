//! Read-your-writes for answers given before their commit.
//!
//! A bus claim answers as soon as it has run (see `SqliteStore::write_early`), before the
//! group transaction that holds it commits. A read connection only sees committed data, so
//! a read started right after such an answer (`dreamos bus stats` after a `recv`) could miss
//! the claim. The writer numbers its batches; an early answer records its batch, and a read
//! first waits until that batch has committed (or failed). Reads that follow no early
//! answer pass straight through.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct Batches {
    /// The batch the writer is running now (1, 2, ...).
    running: AtomicU64,
    /// The last batch whose commit has returned, successfully or not.
    settled: AtomicU64,
    /// The newest batch that answered a caller before committing.
    early: AtomicU64,
    settled_changed: Notify,
}

impl Batches {
    /// Writer thread: a new batch starts.
    pub(super) fn start(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    /// Writer thread, inside a job: this batch is answering before its commit.
    pub(super) fn answered_early(&self) {
        let running = self.running.load(Ordering::Acquire);
        self.early.fetch_max(running, Ordering::AcqRel);
    }

    /// Writer thread: the running batch's commit returned.
    pub(super) fn settle(&self) {
        let running = self.running.load(Ordering::Acquire);
        self.settled.store(running, Ordering::Release);
        self.settled_changed.notify_waiters();
    }

    /// Waits until every batch that answered early has settled.
    pub(super) async fn wait_for_early(&self) {
        let needed = self.early.load(Ordering::Acquire);
        loop {
            let changed = self.settled_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.settled.load(Ordering::Acquire) >= needed {
                return;
            }
            changed.await;
        }
    }
}
