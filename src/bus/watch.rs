//! Noticing what other processes do on the bus, once for the whole bus.
//!
//! A send made through this bus wakes the consumers of its channel directly (`batch.rs`).
//! What other processes commit (another node, a CLI `send`) is noticed here, by one task
//! per bus, never by the consumers themselves, so that 10,000 idle agents cost one store
//! query per interval rather than 10,000 claims:
//! - With a store that pushes signals (PostgreSQL's `LISTEN/NOTIFY`), a signal naming a
//!   channel wakes that channel's local consumers, and another node's published message
//!   goes to the local subscribers. A notification is lost when the listening connection
//!   drops, so the task reconnects (with backoff), checks right after each (re)connect,
//!   and also checks every [`FALLBACK`].
//! - Without (the embedded store), it checks every [`RECHECK`].
//!
//! A check asks the store, in one query, which of the channels that have a waiting consumer
//! hold a visible message, and wakes those.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::FutureExt;
use futures_util::StreamExt;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, Instant};

use super::{Bus, Inner, RECHECK};
use crate::store::{BusSignal, BusSignals};

/// How often waiting channels are re-checked while signals arrive: only what a lost
/// notification or a change that sends none (a nack or lapse on another node) needs.
pub const FALLBACK: Duration = Duration::from_secs(5);
/// First and longest wait before listening again after the connection failed.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Signals handled in one go before the task looks at its timer again.
const DRAIN: usize = 1024;

/// The bus's watch task: started by the first consumer or subscriber, ended with the bus.
pub(crate) struct Watcher {
    running: Arc<AtomicBool>,
    task: Mutex<Option<AbortHandle>>,
    /// The fallback interval in ms (tests lengthen it to show a wake-up came by signal).
    fallback_ms: AtomicU64,
    /// Checks made, and feeds opened (for tests and diagnostics).
    checks: AtomicU64,
    connects: AtomicU64,
}

impl Default for Watcher {
    fn default() -> Self {
        Watcher {
            running: Arc::default(),
            task: Mutex::default(),
            fallback_ms: AtomicU64::new(FALLBACK.as_millis() as u64),
            checks: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(Some(task)) = self.task.lock().map(|mut t| t.take()) {
            task.abort();
        }
    }
}

/// Clears the running flag however the task ends (aborted, or its runtime shut down), so
/// the next consumer starts a new one.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Bus {
    /// Starts the watch task unless it runs. Cheap when it does (one atomic load); outside
    /// a tokio runtime it does nothing (local wake-ups still work).
    pub(crate) fn ensure_watcher(&self) {
        let watcher = &self.inner.watcher;
        if watcher.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(mut task) = watcher.task.lock() else {
            return;
        };
        if watcher.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(watcher.running.clone());
        let inner = Arc::downgrade(&self.inner);
        *task = Some(
            runtime
                .spawn(async move {
                    let _running = running;
                    watch(inner).await;
                })
                .abort_handle(),
        );
    }

    /// How many times the watch task checked the waiting channels, and how many times it
    /// opened a signal feed.
    #[cfg(test)]
    pub(crate) fn watch_counts(&self) -> (u64, u64) {
        let w = &self.inner.watcher;
        (
            w.checks.load(Ordering::Relaxed),
            w.connects.load(Ordering::Relaxed),
        )
    }

    #[cfg(test)]
    pub(crate) fn set_fallback(&self, every: Duration) {
        let ms = every.as_millis() as u64;
        self.inner.watcher.fallback_ms.store(ms, Ordering::Relaxed);
    }

    fn fallback(&self) -> Duration {
        Duration::from_millis(self.inner.watcher.fallback_ms.load(Ordering::Relaxed))
    }

    /// Wakes the local consumers of every waiting channel that holds a visible message.
    async fn check_waiting(&self) {
        self.inner.watcher.checks.fetch_add(1, Ordering::Relaxed);
        let channels: Vec<String> = match self.inner.channels.lock() {
            Ok(channels) => channels
                .iter()
                .filter(|(_, state)| state.is_waited_on())
                .map(|(name, _)| name.clone())
                .collect(),
            Err(_) => return,
        };
        if channels.is_empty() {
            return;
        }
        match self.inner.store.ready_channels(channels, self.now()).await {
            Ok(ready) => {
                for channel in ready {
                    self.wake(&channel);
                }
            }
            Err(e) => tracing::warn!("bus: checking waiting channels failed: {e}"),
        }
    }

    fn on_signal(&self, signal: BusSignal) {
        match signal {
            BusSignal::Enqueued(channel) => self.wake(&channel),
            BusSignal::Published(text) => self.deliver_remote(&text),
        }
    }
}

fn upgrade(inner: &Weak<Inner>) -> Option<Bus> {
    inner.upgrade().map(|inner| Bus { inner })
}

/// The watch loop. Holds the bus only while handling something, so that dropping the last
/// handle drops the bus (which aborts this task).
async fn watch(inner: Weak<Inner>) {
    let pushes = match upgrade(&inner) {
        Some(bus) => bus.inner.store.bus_signals().is_some(),
        None => return,
    };
    let mut signals: Option<BusSignals> = None;
    let mut reconnect_at = Instant::now();
    let mut backoff = RECONNECT_MIN;
    let mut next_check = Instant::now() + RECHECK;
    loop {
        if pushes && signals.is_none() && Instant::now() >= reconnect_at {
            let Some(bus) = upgrade(&inner) else { return };
            let listen = bus.inner.store.bus_signals();
            match listen {
                Some(listen) => match listen.await {
                    Ok(s) => {
                        signals = Some(s);
                        backoff = RECONNECT_MIN;
                        bus.inner.watcher.connects.fetch_add(1, Ordering::Relaxed);
                        // Whatever was sent while nobody listened.
                        bus.check_waiting().await;
                        next_check = Instant::now() + bus.fallback();
                    }
                    Err(e) => {
                        tracing::warn!(
                            "bus: cannot listen for other nodes' messages ({e}); retrying in \
                             {backoff:?}, checking every {RECHECK:?} meanwhile"
                        );
                        reconnect_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(RECONNECT_MAX);
                    }
                },
                None => return,
            }
        }
        let wake_at = match (&signals, pushes) {
            (None, true) => next_check.min(reconnect_at),
            _ => next_check,
        };
        let next = async {
            match signals.as_mut() {
                Some(s) => Some(s.next().await),
                None => std::future::pending().await,
            }
        };
        // `None`: the timer fired; `Some(None)`: the feed ended.
        let woke = tokio::select! {
            signal = next => signal,
            _ = sleep_until(wake_at) => None,
        };
        let Some(bus) = upgrade(&inner) else { return };
        match woke {
            Some(Some(signal)) => {
                bus.on_signal(signal);
                // Handle what else already arrived before going back to waiting.
                if let Some(s) = signals.as_mut() {
                    for _ in 0..DRAIN {
                        match s.next().now_or_never() {
                            Some(Some(signal)) => bus.on_signal(signal),
                            Some(None) => {
                                signals = None;
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            Some(None) => {
                tracing::warn!(
                    "bus: the connection listening for other nodes closed; listening again"
                );
                signals = None;
            }
            None => {}
        }
        if Instant::now() >= next_check {
            bus.check_waiting().await;
            let every = if signals.is_some() {
                bus.fallback()
            } else {
                RECHECK
            };
            next_check = Instant::now() + every;
        }
    }
}
