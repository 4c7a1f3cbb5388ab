//! The daemon's social worker: sends due posts, reads engagement metrics at their offsets,
//! and checks tokens, sleeping until the next due time (or `[social] poll_interval`, for
//! posts other processes queue).

use std::sync::Arc;
use std::time::Duration;

use crate::store::Millis;

use super::outbox::Outbox;
use super::TARGET;

const TOKEN_CHECK_EVERY: Millis = 3_600_000;

fn wall_now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Outbox {
    /// Reads metrics of posts whose next offset is due and schedules the following one.
    /// Offsets already passed (the daemon was down) are skipped, not read in a burst.
    pub async fn poll_metrics(&self, now: Millis) -> Result<usize, super::OutboxError> {
        let offsets: Vec<Millis> = self
            .settings()
            .metrics_after
            .iter()
            .map(|d| d.as_millis() as Millis)
            .collect();
        let due = self.store.metrics_due(now, 64).await?;
        let count = due.len();
        for post in due {
            let (Some(id), Some(posted_at)) = (post.platform_id.clone(), post.posted_at) else {
                continue;
            };
            let client = match self.client(&post.account) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(target: TARGET, post = post.id, error = %e, "cannot read metrics");
                    self.store
                        .record_metrics(post.id, now, vec![], None, None)
                        .await?;
                    continue;
                }
            };
            match client.metrics(&id).await {
                Ok(reply) => {
                    self.learn(&post.account, "metrics", &reply.rates, now)
                        .await?;
                    let done = offsets
                        .iter()
                        .position(|off| posted_at + off > now)
                        .unwrap_or(offsets.len());
                    let next = offsets.get(done).map(|off| posted_at + off);
                    let values = reply.value.into_iter().collect();
                    self.store
                        .record_metrics(post.id, now, values, next, Some(done as u32))
                        .await?;
                }
                Err(e) => {
                    let retry = e.retry_at.filter(|t| *t > now).unwrap_or(now + 15 * 60_000);
                    tracing::warn!(target: TARGET, post = post.id, error = %e, "cannot read metrics; trying again later");
                    self.store
                        .record_metrics(post.id, now, vec![], Some(retry), None)
                        .await?;
                }
            }
        }
        Ok(count)
    }

    /// Runs until `shutdown` resolves: send, poll, check tokens, sleep until the next due
    /// time. Store errors are logged and retried after the poll interval.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let poll = self.settings().poll_interval;
        let mut next_token_check = 0;
        loop {
            let now = wall_now();
            if let Err(e) = self.send_due(now).await {
                tracing::error!(target: TARGET, error = %e, "social outbox: cannot send due posts");
            }
            if let Err(e) = self.poll_metrics(now).await {
                tracing::error!(target: TARGET, error = %e, "social outbox: cannot read metrics");
            }
            if now >= next_token_check {
                self.check_tokens(now).await;
                next_token_check = now + TOKEN_CHECK_EVERY;
            }
            let next = self.store.next_due().await.ok().flatten();
            let after = wall_now();
            let wait = match next {
                Some(t) if t > after => Duration::from_millis((t - after) as u64).min(poll),
                Some(_) => Duration::from_millis(200).min(poll),
                None => poll,
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
