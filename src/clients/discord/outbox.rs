//! Posts that must not be lost — alerts, summaries, `discord.send` — go through the durable
//! outbox (`discord_outbox` in the store): queued on disk first, then posted in order while
//! the bot is connected, and deleted only once Discord took them. A failed post stays
//! queued and is retried with a growing pause; a restart picks up what was left.
//!
//! Posts are claimed in batches under a lease ([`DiscordOutboxStore::outbox_claim`]), so
//! when several nodes deliver from one database each post goes out once; a post is only
//! started while its lease outlasts the post's timeout.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serenity::all::ChannelId;

use super::bot::{Bot, LOG};
use crate::store::{DiscordOutboxStore, Millis};

/// Pause after a failed post, doubled per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Posts taken from the store per round.
const BATCH: usize = 20;
/// How long a claimed batch is this node's. A node that dies holding it delays the outbox
/// by at most this long.
const LEASE: Duration = Duration::from_secs(60);
/// Longest one post may take; a post is not started unless the lease outlasts it.
const POST_TIMEOUT: Duration = Duration::from_secs(20);

fn wall_now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Where a post goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Channel(u64),
    /// A webhook whose URL is in this environment variable.
    WebhookEnv(String),
}

impl Target {
    pub fn encode(&self) -> String {
        match self {
            Target::Channel(id) => format!("channel:{id}"),
            Target::WebhookEnv(var) => format!("webhook_env:{var}"),
        }
    }

    pub fn decode(text: &str) -> Option<Target> {
        if let Some(id) = text.strip_prefix("channel:") {
            return id.parse().ok().map(Target::Channel);
        }
        text.strip_prefix("webhook_env:")
            .map(|v| Target::WebhookEnv(v.to_string()))
    }
}

/// Queues a post durably and wakes the sender.
pub async fn push<S: DiscordOutboxStore + ?Sized>(
    bot: &Bot,
    store: &S,
    target: &Target,
    body: &Value,
) {
    match store
        .outbox_push(target.encode(), body.clone(), wall_now())
        .await
    {
        Ok(_) => bot.wake.notify_one(),
        Err(e) => tracing::error!(target: LOG, "cannot queue a Discord post: {e}"),
    }
}

async fn post(
    bot: &Bot,
    web: &reqwest::Client,
    target: &Target,
    body: &Value,
) -> Result<(), String> {
    match target {
        Target::Channel(id) => bot
            .http
            .send_message(ChannelId::new(*id), Vec::new(), body)
            .await
            .map(|_| ())
            .map_err(|e| format!("channel {id}: {e}")),
        Target::WebhookEnv(var) => {
            let url = std::env::var(var)
                .map_err(|_| format!("the webhook URL variable ${var} is not set"))?;
            let response = web
                .post(&url)
                .json(body)
                .send()
                .await
                .map_err(|e| format!("webhook ${var}: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("webhook ${var}: HTTP {}", response.status()))
            }
        }
    }
}

/// Sends queued posts until the bot goes away.
pub async fn deliver<S: DiscordOutboxStore + ?Sized>(bot: Rc<Bot>, store: Arc<S>) {
    let web = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut pause = FIRST_RETRY;
    loop {
        let claim = if *bot.connected.borrow() {
            let now = wall_now();
            match store.outbox_claim(BATCH, now, now + millis(LEASE)).await {
                Ok(claim) => claim,
                Err(e) => {
                    tracing::error!(target: LOG, "cannot read the Discord outbox: {e}");
                    Default::default()
                }
            }
        } else {
            Default::default()
        };
        let lease = claim.lease_until;
        let mut failed = false;
        let mut untried = Vec::new();
        for (i, row) in claim.rows.iter().enumerate() {
            if wall_now() + millis(POST_TIMEOUT) >= lease {
                // The lease could lapse mid-post and another node send it too: give the
                // rest back and claim afresh.
                untried.extend(claim.rows[i..].iter().map(|r| r.id));
                break;
            }
            let Some(target) = Target::decode(&row.target) else {
                tracing::error!(target: LOG, id = row.id, "dropping a queued post with an unknown target '{}'", row.target);
                let _ = store.outbox_done(row.id, lease).await;
                continue;
            };
            let sent = tokio::time::timeout(POST_TIMEOUT, post(&bot, &web, &target, &row.body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {POST_TIMEOUT:?}")));
            match sent {
                Ok(()) => match store.outbox_done(row.id, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(target: LOG, id = row.id, "a Discord post outlived its claim; another node may have sent it too")
                    }
                    Err(e) => {
                        tracing::error!(target: LOG, "cannot mark a Discord post as sent: {e}")
                    }
                },
                Err(e) => {
                    tracing::warn!(target: LOG, id = row.id, attempts = row.attempts + 1, "post failed, kept queued: {e}");
                    let _ = store.outbox_failed(row.id, lease, e).await;
                    failed = true;
                    // Keep the order: nothing after a failed post goes before it.
                    untried.extend(claim.rows[i + 1..].iter().map(|r| r.id));
                    break;
                }
            }
        }
        let gave_back = !untried.is_empty();
        if gave_back {
            if let Err(e) = store.outbox_release(untried, lease).await {
                tracing::error!(target: LOG, "cannot give back claimed Discord posts (they are retried when the claim lapses): {e}");
            }
        }
        if failed {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY);
            continue;
        }
        pause = FIRST_RETRY;
        if claim.rows.len() == BATCH || gave_back {
            continue;
        }
        // Woken by a new post or a reconnect; the timer retries what a missed wake left
        // (and a batch another node holds).
        tokio::select! {
            _ = bot.wake.notified() => {}
            _ = tokio::time::sleep(MAX_RETRY) => {}
        }
    }
}
