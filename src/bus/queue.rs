//! Consuming: `recv`, `ack`, `nack`, `extend`.
//!
//! `recv` claims from the store (an atomic state change inside the group commit), so two
//! consumers — in this process or another — never hold the same attempt. A consumer that
//! keeps up gets a growing prefetch: one claim takes several messages and the next `recv`s
//! are served from memory. The batch doubles while each one is used up within
//! [`QUICK`] and halves when the consumer is slow, so an agent calling an LLM per message
//! claims one at a time and never sits on messages it cannot handle before their deadline.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::clock::{backoff_delay, millis};
use super::{channel, Bus, BusError, Delivery, MessageStatus};
use crate::store::{DeliveryRef, Millis, SettleOutcome};

/// A batch used up faster than this means the consumer keeps up: claim more next time.
const QUICK: Duration = Duration::from_millis(20);
/// Longest error text kept with a message (a Lua traceback can be long).
const MAX_ERROR_LEN: usize = 8 * 1024;

/// In-process state of one channel.
pub(crate) struct ChannelState {
    /// Signalled after a send to this channel commits, or a retry is scheduled.
    notify: Notify,
    /// Claimed but not yet handed out, oldest first.
    buffer: Mutex<VecDeque<Delivery>>,
    /// One claim at a time per channel: the others wait and take from what it brought.
    claimer: Arc<tokio::sync::Mutex<Prefetch>>,
    /// Consumers currently inside `recv` on this channel, so one claim can serve them all.
    waiting: AtomicUsize,
}

struct Prefetch {
    size: usize,
    last_claim: Option<Instant>,
}

impl Prefetch {
    fn adapt(&mut self, filled: bool, max: usize) {
        let now = Instant::now();
        let quick = self.last_claim.is_some_and(|t| now - t < QUICK);
        if filled && quick {
            self.size = (self.size * 2).min(max);
        } else if !quick {
            self.size = (self.size / 2).max(1);
        }
        self.last_claim = Some(now);
    }
}

impl ChannelState {
    fn new() -> ChannelState {
        ChannelState {
            notify: Notify::new(),
            buffer: Mutex::new(VecDeque::new()),
            claimer: Arc::new(tokio::sync::Mutex::new(Prefetch {
                size: 1,
                last_claim: None,
            })),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Whether a consumer is inside `recv` on this channel.
    pub(crate) fn is_waited_on(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// The oldest buffered delivery that still has at least `min_left` ms before its
    /// deadline. Staler ones are dropped: the store redelivers them after the deadline.
    fn pop_fresh(&self, now: Millis, min_left: i64) -> Option<Delivery> {
        let mut buffer = self.buffer.lock().ok()?;
        while let Some(d) = buffer.pop_front() {
            if d.deadline - now >= min_left {
                return Some(d);
            }
        }
        None
    }
}

/// Decrements the waiting count however `recv` ends (including being cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Claim {
    Got(Box<Delivery>),
    Empty { next_visible_at: Option<Millis> },
}

impl Bus {
    /// Waits up to `timeout` (forever if `None`) for a message on `channel`. Returns
    /// `Ok(None)` on timeout. Settle what you get with [`ack`](Bus::ack) or
    /// [`nack`](Bus::nack) before its deadline.
    pub async fn recv(
        &self,
        channel: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Delivery>, BusError> {
        channel::validate_recv_channel(channel)?;
        self.note_inbox(channel).await?;
        let state = self.channel_state(channel);
        self.ensure_watcher();
        let deadline = timeout.map(|t| Instant::now() + t);
        state.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&state.waiting);
        let min_left = millis(self.inner.config.visibility_timeout) / 2;
        loop {
            if let Some(d) = state.pop_fresh(self.now(), min_left) {
                return Ok(Some(d));
            }
            // Registered before claiming, so a send that commits during the claim still
            // wakes us.
            let notified = state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_visible_at = match self.claim_into(&state, channel, min_left).await? {
                Claim::Got(d) => return Ok(Some(*d)),
                Claim::Empty { next_visible_at } => next_visible_at,
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(None);
            }
            // Nothing to do until then, a local send, or the bus's watch task noticing
            // another process's send (`watch.rs`): idle consumers do not poll.
            let wake_at = [
                deadline,
                next_visible_at.map(|at| self.inner.clock.instant_of(at)),
            ]
            .into_iter()
            .flatten()
            .min();
            match wake_at {
                Some(at) => tokio::select! {
                    _ = &mut notified => {}
                    _ = sleep_until(at) => {}
                },
                None => notified.as_mut().await,
            }
        }
    }

    fn channel_state(&self, channel: &str) -> Arc<ChannelState> {
        match self.inner.channels.lock() {
            Ok(mut channels) => channels
                .entry(channel.to_string())
                .or_insert_with(|| Arc::new(ChannelState::new()))
                .clone(),
            // A poisoned map only loses wake-ups, which the periodic re-check covers.
            Err(_) => Arc::new(ChannelState::new()),
        }
    }

    /// Drops the in-process state of a channel nobody will use again (a reply channel).
    pub(crate) fn forget_channel(&self, channel: &str) {
        if let Ok(mut channels) = self.inner.channels.lock() {
            channels.remove(channel);
        }
    }

    /// Claims for this channel and fills its buffer. Cancel-safe: the claim runs in its own
    /// task, so a `recv` dropped mid-claim (a Lua timeout, an agent stopping) leaves what
    /// was claimed in the buffer for the next `recv` instead of stranding it until its
    /// visibility deadline.
    async fn claim_into(
        &self,
        state: &Arc<ChannelState>,
        channel: &str,
        min_left: i64,
    ) -> Result<Claim, BusError> {
        let prefetch = state.claimer.clone().lock_owned().await;
        // Whoever held the claim before us may have brought enough for us too.
        if let Some(d) = state.pop_fresh(self.now(), min_left) {
            return Ok(Claim::Got(Box::new(d)));
        }
        let task = tokio::spawn({
            let (bus, state, channel) = (self.clone(), state.clone(), channel.to_string());
            async move { bus.claim_task(prefetch, &state, &channel).await }
        });
        let next_visible_at = match task.await {
            Ok(result) => result?,
            Err(e) => return Err(BusError::Payload(format!("claim task failed: {e}"))),
        };
        match state.pop_fresh(self.now(), min_left) {
            Some(d) => Ok(Claim::Got(Box::new(d))),
            None => Ok(Claim::Empty { next_visible_at }),
        }
    }

    /// One claim, holding the channel's claim lock; returns when to look again if nothing
    /// was visible.
    async fn claim_task(
        &self,
        mut prefetch: tokio::sync::OwnedMutexGuard<Prefetch>,
        state: &ChannelState,
        channel: &str,
    ) -> Result<Option<Millis>, BusError> {
        let max = self.inner.config.max_prefetch;
        let want = prefetch
            .size
            .max(state.waiting.load(Ordering::Relaxed))
            .min(max);
        let now = self.now();
        let vis = millis(self.inner.config.visibility_timeout);
        let claimed = self.inner.store.claim(channel, want, now, vis).await?;
        for (id, status) in &claimed.finished {
            self.inner.counters.finished(*status);
            self.inner.waiters.finish(*id, *status);
        }
        prefetch.adapt(claimed.messages.len() >= want, max);
        let mut deliveries = VecDeque::with_capacity(claimed.messages.len());
        let mut unreadable = false;
        for c in claimed.messages {
            match Delivery::from_claimed(c) {
                Ok(d) => deliveries.push_back(d),
                Err((reference, why)) => {
                    unreadable = true;
                    let outcome = self.inner.store.nack(reference, why, None, now).await?;
                    if let SettleOutcome::Applied(status) = outcome {
                        self.inner.counters.finished(status);
                        self.inner.waiters.finish(reference.id, status);
                    }
                }
            }
        }
        if !deliveries.is_empty() {
            if let Ok(mut buffer) = state.buffer.lock() {
                buffer.extend(deliveries);
            }
        }
        Ok(if unreadable {
            Some(now)
        } else {
            claimed.next_visible_at
        })
    }

    /// Rejects a delivery with `error`. With `retry`, it is delivered again after the
    /// backoff for this attempt, or goes dead when out of attempts; without, it fails for
    /// good. Returns the message's new status (`queued`, `dead` or `failed`).
    pub async fn nack(
        &self,
        delivery: &Delivery,
        error: &str,
        retry: bool,
    ) -> Result<MessageStatus, BusError> {
        let now = self.now();
        let config = &self.inner.config;
        let retry_at = retry.then(|| {
            let base = delivery.message.backoff.unwrap_or(config.backoff_base);
            let delay = backoff_delay(
                delivery.attempt,
                base,
                config.backoff_max,
                &self.inner.jitter,
            );
            now.saturating_add(millis(delay))
        });
        let error = truncate(error, MAX_ERROR_LEN);
        let outcome = self
            .inner
            .store
            .nack(delivery.reference(), error, retry_at, now)
            .await?;
        let status = self.settled(delivery.reference(), outcome)?;
        self.inner.counters.finished(status);
        if status == MessageStatus::Queued {
            // Waiting consumers learn the new retry time from their next claim.
            self.wake(&delivery.message.channel);
        }
        Ok(status)
    }

    /// Returns what this process prefetched for `channel` and has not handed out to the
    /// queue at once, without counting an attempt: a consumer that stops (an agent going
    /// down, the daemon exiting) must not leave messages invisible until their visibility
    /// deadline. A claim in progress is waited for, so what it brings is released too.
    /// Returns how many were released.
    pub async fn release_prefetched(&self, channel: &str) -> Result<usize, BusError> {
        let state = match self.inner.channels.lock() {
            Ok(channels) => channels.get(channel).cloned(),
            Err(_) => None,
        };
        let Some(state) = state else { return Ok(0) };
        let _claiming = state.claimer.lock().await;
        let drained: Vec<Delivery> = match state.buffer.lock() {
            Ok(mut buffer) => buffer.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        if drained.is_empty() {
            return Ok(0);
        }
        let refs: Vec<DeliveryRef> = drained.iter().map(Delivery::reference).collect();
        let outcomes = self.inner.store.release(refs, self.now()).await?;
        let released = outcomes
            .iter()
            .filter(|o| matches!(o, SettleOutcome::Applied(MessageStatus::Queued)))
            .count();
        state.wake();
        Ok(released)
    }

    /// Gives the consumer `more` time from now; returns the new deadline.
    pub async fn extend(&self, delivery: &Delivery, more: Duration) -> Result<Millis, BusError> {
        let deadline = self.now().saturating_add(millis(more));
        let outcome = self
            .inner
            .store
            .extend(delivery.reference(), deadline)
            .await?;
        self.settled(delivery.reference(), outcome)?;
        Ok(deadline)
    }

    /// Turns what the store did with an ack/nack/extend into the caller's answer, waking
    /// receipt waiters when the message became final.
    pub(crate) fn settled(
        &self,
        d: DeliveryRef,
        outcome: SettleOutcome,
    ) -> Result<MessageStatus, BusError> {
        match outcome {
            SettleOutcome::Applied(status) => {
                if status.is_final() {
                    self.inner.waiters.finish(d.id, status);
                }
                Ok(status)
            }
            SettleOutcome::Stale { status, attempts } => Err(BusError::Stale {
                id: d.id,
                attempt: d.attempt,
                status,
                attempts,
            }),
            SettleOutcome::Missing => Err(BusError::NotFound(d.id)),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
