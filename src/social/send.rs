//! One attempt at one claimed post: reconcile if unsure, respect budgets and caps, send,
//! record. Every exit records an outcome, so no post stays `sending` after its attempt.

use std::time::Duration;

use crate::clients::social::{ErrorKind, RateInfo, SocialError};
use crate::scheduler::trigger::format_time;
use crate::store::Millis;

use super::limits::{default_retry, next_slot};
use super::outbox::{Outbox, OutboxError};
use super::types::{Outcome, PostId, PostRecord, Status};
use super::TARGET;

/// How far before the recorded start of a lost attempt reconciliation looks (clocks of the
/// platform and this machine differ a little).
const FIND_SLACK: Millis = 5 * 60_000;

impl Outbox {
    /// Sends every due post, one claim at a time (so a lease covers one HTTP attempt), and
    /// returns the posts as they ended up.
    pub async fn send_due(&self, now: Millis) -> Result<Vec<PostRecord>, OutboxError> {
        let mut done = Vec::new();
        // A post that is requeued for later is not due again within this pass, so the loop
        // ends; the bound is a guard against a clock that does not move.
        for _ in 0..10_000 {
            match self.send_next(now, None).await? {
                Some(p) => done.push(p),
                None => break,
            }
        }
        Ok(done)
    }

    /// Claims and attempts one due post (only `only`, if given); `None` when nothing is due.
    pub async fn send_next(
        &self,
        now: Millis,
        only: Option<PostId>,
    ) -> Result<Option<PostRecord>, OutboxError> {
        let lease = self.settings().send_lease.as_millis() as Millis;
        let Some(post) = self
            .store
            .claim_posts(now, now + lease, 1, only)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let outcome = self.attempt(&post, now).await?;
        let event = match &outcome {
            Outcome::Posted { .. } if post.unsure => "reconciled",
            Outcome::Posted { .. } => "posted",
            Outcome::Requeue { .. } => "rescheduled",
            Outcome::Give { status, .. } => status.name(),
        };
        let after = self.store.finish_post(post.id, outcome, now).await?;
        let Some(after) = after else {
            return Ok(self.store.get_post(post.id).await?);
        };
        match after.status {
            Status::Posted => {
                tracing::info!(target: TARGET, post = after.id, account = %after.account,
                platform_id = after.platform_id.as_deref().unwrap_or(""), "{event}")
            }
            Status::Queued => {
                tracing::info!(target: TARGET, post = after.id, account = %after.account,
                due = %format_time(after.not_before, chrono_tz::Tz::UTC),
                error = after.error.as_deref().unwrap_or(""), "post rescheduled")
            }
            _ => tracing::warn!(target: TARGET, post = after.id, account = %after.account,
                error = after.error.as_deref().unwrap_or(""), "post {}", after.status.name()),
        }
        self.event(event, &after, None);
        Ok(Some(after))
    }

    async fn attempt(&self, post: &PostRecord, now: Millis) -> Result<Outcome, OutboxError> {
        let give = |kind: &str, error: String| Outcome::Give {
            status: Status::Failed,
            kind: kind.to_string(),
            error,
        };
        if let Some(reason) = self.dry_run_reason(&post.account).ok().flatten() {
            return Ok(give(
                "invalid",
                format!(
                    "{reason}; `dreamos social retry {}` after changing it",
                    post.id
                ),
            ));
        }
        let client = match self.client(&post.account) {
            Ok(c) => c,
            Err(OutboxError::Social(e)) => return Ok(give(e.kind.name(), e.to_string())),
            Err(e @ OutboxError::UnknownAccount { .. }) => {
                return Ok(give("invalid", e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let reply_to = match post.parent {
            Some(parent) => self
                .store
                .get_post(parent)
                .await?
                .and_then(|p| p.platform_id),
            None => None,
        };
        let req = match self.request(&post.content, &post.idempotency_key, reply_to) {
            Ok(r) => r,
            Err(message) => return Ok(give("invalid", message)),
        };
        if post.unsure {
            let since = post.sending_since.unwrap_or(post.created_at) - FIND_SLACK;
            match client.find(&req, since).await {
                Ok(Some(found)) => {
                    tracing::warn!(target: TARGET, post = post.id, platform_id = %found.id,
                        "an earlier attempt had posted it; recorded without sending again");
                    return Ok(self.posted_outcome(post, found.id, found.url, now));
                }
                Ok(None) => {}
                Err(e) => {
                    // Unknown whether it exists: never send blind; look again later, and
                    // after max_attempts hand it to the operator.
                    let limited = e.kind == ErrorKind::RateLimited;
                    let attempts = post.attempts + 1;
                    if !limited && attempts >= post.max_attempts {
                        return Ok(Outcome::Give {
                            status: Status::Dead,
                            kind: e.kind.name().into(),
                            error: format!(
                                "cannot check whether an earlier attempt posted it ({e}); look on \
                                 the platform, then `dreamos social retry {}` (it is looked up \
                                 again before any send)",
                                post.id
                            ),
                        });
                    }
                    let when = match e.kind {
                        ErrorKind::RateLimited => e
                            .retry_at
                            .unwrap_or_else(|| default_retry(post.platform, now)),
                        _ => now + self.backoff(post.attempts),
                    };
                    return Ok(Outcome::Requeue {
                        not_before: when,
                        kind: e.kind.name().into(),
                        error: format!("cannot check whether an earlier attempt posted it: {e}"),
                        counted: !limited,
                        unsure: true,
                    });
                }
            }
        }
        if let Some(slot) = self.safe_slot(post, now).await? {
            return Ok(Outcome::Requeue {
                not_before: slot.0,
                kind: "rate_limited".into(),
                error: slot.1,
                counted: false,
                unsure: false,
            });
        }
        match client.post(&req).await {
            Ok(reply) => {
                self.learn(&post.account, "post", &reply.rates, now).await?;
                Ok(self.posted_outcome(post, reply.value.id, reply.value.url, now))
            }
            Err(e) => self.failure(post, e, now).await,
        }
    }

    fn posted_outcome(
        &self,
        _post: &PostRecord,
        id: String,
        url: Option<String>,
        now: Millis,
    ) -> Outcome {
        let first = self.settings().metrics_after.first();
        Outcome::Posted {
            platform_id: id,
            url,
            at: now,
            metrics_next: first.map(|d| now + d.as_millis() as Millis),
        }
    }

    /// When the caps or learned budgets allow this post, if not now, and why.
    async fn safe_slot(
        &self,
        post: &PostRecord,
        now: Millis,
    ) -> Result<Option<(Millis, String)>, OutboxError> {
        let account = self.account(&post.account)?.clone();
        let sent = self
            .store
            .send_times(post.account.clone(), now - 24 * 3_600_000, post.id)
            .await?;
        let capped = next_slot(now, &sent, &account);
        let learned = self
            .store
            .blocked_until(post.account.clone(), "post".into(), now)
            .await?
            .unwrap_or(now);
        let slot = capped.max(learned);
        if slot <= now {
            return Ok(None);
        }
        let why = if learned >= capped {
            format!(
                "{} rate limit: next safe slot {}",
                post.platform,
                format_time(slot, chrono_tz::Tz::UTC)
            )
        } else {
            format!(
                "account caps (daily_max, hourly_max, min_gap): next safe slot {}",
                format_time(slot, chrono_tz::Tz::UTC)
            )
        };
        Ok(Some((slot, why)))
    }

    /// Remembers what responses said about budgets; a spent budget blocks `op` until its
    /// reset.
    pub(super) async fn learn(
        &self,
        account: &str,
        op: &str,
        rates: &[RateInfo],
        now: Millis,
    ) -> Result<(), OutboxError> {
        for rate in rates {
            let spent = rate.remaining.is_some_and(|r| r < 1.0)
                || rate.usage_percent.is_some_and(|u| u >= 100.0);
            let blocked = spent.then(|| rate.reset_at.unwrap_or(now + 15 * 60_000));
            let info = serde_json::to_value(rate).unwrap_or_default();
            self.store
                .save_budget(
                    account.into(),
                    op.into(),
                    rate.bucket.clone(),
                    info,
                    blocked,
                    now,
                )
                .await?;
        }
        Ok(())
    }

    async fn failure(
        &self,
        post: &PostRecord,
        e: SocialError,
        now: Millis,
    ) -> Result<Outcome, OutboxError> {
        let attempts = post.attempts + 1;
        Ok(match e.kind {
            ErrorKind::RateLimited => {
                let until = e
                    .retry_at
                    .filter(|t| *t > now)
                    .unwrap_or_else(|| default_retry(post.platform, now));
                let info =
                    serde_json::json!({ "status": e.status, "message": e.message, "code": e.code });
                self.store
                    .save_budget(
                        post.account.clone(),
                        "post".into(),
                        "rate-limited".into(),
                        info,
                        Some(until),
                        now,
                    )
                    .await?;
                Outcome::Requeue {
                    not_before: until,
                    kind: e.kind.name().into(),
                    error: format!(
                        "{e}; rescheduled to {}",
                        format_time(until, chrono_tz::Tz::UTC)
                    ),
                    counted: false,
                    unsure: false,
                }
            }
            ErrorKind::Unavailable | ErrorKind::Network if attempts < post.max_attempts => {
                Outcome::Requeue {
                    not_before: now + self.backoff(post.attempts),
                    kind: e.kind.name().into(),
                    error: e.to_string(),
                    counted: true,
                    // No answer: the platform may have created it; look before resending.
                    unsure: e.kind == ErrorKind::Network,
                }
            }
            ErrorKind::Unavailable | ErrorKind::Network => Outcome::Give {
                status: Status::Dead,
                kind: e.kind.name().into(),
                error: format!("{e} (attempt {attempts} of {})", post.max_attempts),
            },
            ErrorKind::Auth | ErrorKind::Invalid | ErrorKind::Duplicate => Outcome::Give {
                status: Status::Failed,
                kind: e.kind.name().into(),
                error: e.to_string(),
            },
        })
    }

    /// Delay before attempt `attempts + 1`: `retry_base` doubled per attempt, capped.
    pub(super) fn backoff(&self, attempts: u32) -> Millis {
        let s = self.settings();
        let d = s
            .retry_base
            .saturating_mul(1u32 << attempts.min(20))
            .min(s.retry_max);
        d.max(Duration::from_millis(1)).as_millis() as Millis
    }
}
