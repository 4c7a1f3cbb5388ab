//! Where an agent's messages come from. In the daemon that is its durable bus inbox
//! (`agent:<name>`); tests hand the runner an in-memory one so they can run on a paused
//! clock without a database.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::bus::{Bus, Delivery};

/// A source of deliveries, settled one by one.
pub trait Inbox {
    /// Waits for the next delivery. Must be cancel-safe: the runner drops it whenever a
    /// tick, a timer or a command comes first.
    fn next(&mut self) -> LocalBoxFuture<'_, Result<Delivery, String>>;

    /// The handler returned normally: the message is done. Resolves once that is durable,
    /// so a graceful stop never exits with an acknowledgement still in memory.
    fn ack<'a>(&'a mut self, delivery: &'a Delivery) -> LocalBoxFuture<'a, ()>;

    /// The handler failed or the agent is going down: deliver it again later.
    fn nack<'a>(&'a mut self, delivery: &'a Delivery, error: &'a str) -> LocalBoxFuture<'a, ()>;

    /// The agent stops taking messages: return what was fetched ahead and not handed to a
    /// handler, so the next start (or another consumer) gets it at once rather than after
    /// the visibility timeout.
    fn release(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Builds an inbox for each start of an agent.
pub type InboxFactory = std::rc::Rc<dyn Fn(&str) -> Box<dyn Inbox>>;

/// The agent's durable inbox on the bus.
pub struct BusInbox {
    bus: Bus,
    channel: String,
}

impl BusInbox {
    pub fn new(bus: Bus, agent: &str) -> BusInbox {
        BusInbox {
            bus,
            channel: format!("agent:{agent}"),
        }
    }
}

/// After a store error, wait this long before asking again, so a broken database does not
/// turn every agent into a busy loop.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

impl Inbox for BusInbox {
    fn next(&mut self) -> LocalBoxFuture<'_, Result<Delivery, String>> {
        Box::pin(async move {
            loop {
                match self.bus.recv(&self.channel, None).await {
                    Ok(Some(d)) => return Ok(d),
                    Ok(None) => continue,
                    Err(e) => {
                        tokio::time::sleep(RETRY_AFTER_ERROR).await;
                        return Err(format!("receiving from {}: {e}", self.channel));
                    }
                }
            }
        })
    }

    fn ack<'a>(&'a mut self, delivery: &'a Delivery) -> LocalBoxFuture<'a, ()> {
        // Joins the bus's next batch commit (cheap under load). If it fails, the message is
        // redelivered: at-least-once.
        Box::pin(async move {
            if let Err(e) = self.bus.ack_queued(delivery).await {
                tracing::warn!(message = delivery.message.id, error = %e, "ack failed; the message will be redelivered");
            }
        })
    }

    fn nack<'a>(&'a mut self, delivery: &'a Delivery, error: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.bus.nack(delivery, error, true).await {
                tracing::warn!(message = delivery.message.id, error = %e, "nack failed; the message returns after its visibility timeout");
            }
        })
    }

    fn release(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            match self.bus.release_prefetched(&self.channel).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(channel = %self.channel, released = n, "returned prefetched messages to the queue")
                }
                Err(e) => {
                    tracing::warn!(channel = %self.channel, error = %e, "cannot return prefetched messages; they come back after their visibility timeout")
                }
            }
        })
    }
}
