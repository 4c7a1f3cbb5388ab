//! Request/reply on top of durable `send`.
//!
//! `request` sends with a fresh correlation id and `reply_to` set to a private channel
//! `reply:<token>`, then receives on that channel. `reply` sends the answer there with the
//! same correlation id. Both legs are ordinary durable messages, so a requester in another
//! process (the CLI asking an agent in the daemon) works the same way, and both legs show
//! in history. The request's ttl is its timeout, and the reply inherits what is left of
//! it, so nothing waits forever for a requester that gave up.

use std::time::Duration;

use super::{Bus, BusError, Message, Receipt, SendOptions};

impl Bus {
    /// Sends `payload` to `to` and waits up to `timeout` for the reply message.
    pub async fn request(
        &self,
        from: &str,
        to: &str,
        payload: &serde_json::Value,
        timeout: Duration,
        mut opts: SendOptions,
    ) -> Result<Message, BusError> {
        let token = self.inner.jitter.token();
        let reply_channel = format!("reply:{token}");
        opts.correlation_id.get_or_insert_with(|| token.clone());
        opts.reply_to = Some(reply_channel.clone());
        opts.ttl = Some(opts.ttl.map_or(timeout, |t| t.min(timeout)));
        self.send(from, to, payload, opts).await?;
        let result = self.recv(&reply_channel, Some(timeout)).await;
        self.forget_channel(&reply_channel);
        let delivery = result?.ok_or(BusError::Timeout {
            what: "a reply",
            after: timeout,
        })?;
        self.ack(&delivery).await?;
        Ok(delivery.message)
    }

    /// Answers a message that came from [`request`](Bus::request).
    pub async fn reply(
        &self,
        from: &str,
        request: &Message,
        payload: &serde_json::Value,
    ) -> Result<Receipt, BusError> {
        let reply_to = request
            .reply_to
            .as_deref()
            .ok_or(BusError::NotARequest(request.id))?;
        // The requester stops listening at the request's expiry; keep the reply no longer.
        let ttl = request.expires_at.map(|at| {
            let left = at.saturating_sub(self.now()).max(1);
            Duration::from_millis(u64::try_from(left).unwrap_or(1))
        });
        let opts = SendOptions {
            priority: request.priority,
            correlation_id: request.correlation_id.clone(),
            ttl,
            ..SendOptions::default()
        };
        self.send(from, reply_to, payload, opts).await
    }
}
