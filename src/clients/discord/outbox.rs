//! Posts that must not be lost — alerts, summaries, `discord.send` — go through the durable
//! outbox (`discord_outbox` in the store): queued on disk first, then posted in order while
//! the bot is connected, and deleted only once Discord took them. A failed post stays
//! queued and is retried with a growing pause; a restart picks up what was left.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serenity::all::ChannelId;

use super::bot::{Bot, LOG};
use crate::store::SqliteStore;

/// Pause after a failed post, doubled per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Posts taken from the store per round.
const BATCH: usize = 20;

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
pub async fn push(bot: &Bot, store: &SqliteStore, target: &Target, body: &Value) {
    let now = chrono::Utc::now().timestamp_millis();
    match store.outbox_push(&target.encode(), body, now).await {
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
pub async fn deliver(bot: Rc<Bot>, store: Arc<SqliteStore>) {
    let web = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    let mut pause = FIRST_RETRY;
    loop {
        let rows = if *bot.connected.borrow() {
            match store.outbox_peek(BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(target: LOG, "cannot read the Discord outbox: {e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut failed = false;
        for row in &rows {
            let Some(target) = Target::decode(&row.target) else {
                tracing::error!(target: LOG, id = row.id, "dropping a queued post with an unknown target '{}'", row.target);
                let _ = store.outbox_done(row.id).await;
                continue;
            };
            match post(&bot, &web, &target, &row.body).await {
                Ok(()) => {
                    if let Err(e) = store.outbox_done(row.id).await {
                        tracing::error!(target: LOG, "cannot mark a Discord post as sent: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG, id = row.id, attempts = row.attempts + 1, "post failed, kept queued: {e}");
                    let _ = store.outbox_failed(row.id, &e).await;
                    failed = true;
                    // Keep the order: nothing after a failed post goes before it.
                    break;
                }
            }
        }
        if failed {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY);
            continue;
        }
        pause = FIRST_RETRY;
        if rows.len() == BATCH {
            continue;
        }
        // Woken by a new post or a reconnect; the timer retries what a missed wake left.
        tokio::select! {
            _ = bot.wake.notified() => {}
            _ = tokio::time::sleep(MAX_RETRY) => {}
        }
    }
}
