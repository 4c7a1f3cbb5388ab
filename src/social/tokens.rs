//! Refreshed tokens kept in the store, and the warning before a token that cannot be
//! refreshed expires.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::clients::social::{TokenStore, Tokens};
use crate::store::{Millis, SocialStore};

use super::outbox::Outbox;
use super::{TARGET, TOPIC};

const DAY: Millis = 86_400_000;

/// [`TokenStore`] over the outbox's store: `save` returns once the tokens are committed, so
/// a rotated refresh token (X) is never lost to a crash.
pub struct StoreTokens(pub Arc<dyn SocialStore>);

impl TokenStore for StoreTokens {
    fn load(&self, account: &str) -> BoxFuture<'_, Result<Option<Tokens>, String>> {
        let account = account.to_string();
        Box::pin(async move { self.0.load_tokens(account).await.map_err(|e| e.to_string()) })
    }

    fn save(&self, account: &str, tokens: Tokens) -> BoxFuture<'_, Result<(), String>> {
        let account = account.to_string();
        let now = chrono::Utc::now().timestamp_millis();
        Box::pin(async move {
            self.0
                .save_tokens(account, tokens, now)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// One account whose credentials stop working soon.
#[derive(Debug, Clone, PartialEq)]
pub struct Expiring {
    pub account: String,
    pub expires_at: Millis,
    pub days_left: i64,
}

impl Outbox {
    /// Warns about each account whose token cannot be refreshed and expires within
    /// `[social] token_warn_days`: a tracing warning with `event = "social.token_expiring"`
    /// and a `token_expiring` event on the `social.events` topic, once a day per account.
    pub async fn check_tokens(&self, now: Millis) -> Vec<Expiring> {
        let horizon = i64::from(self.settings().token_warn_days) * DAY;
        let mut found = Vec::new();
        for (name, account) in &self.config.social.accounts {
            if account.dry_run {
                continue;
            }
            let Ok(client) = self.client(name) else {
                continue;
            };
            let Some(expires_at) = client.expires_at().await else {
                continue;
            };
            if expires_at - now > horizon {
                continue;
            }
            let last = self.warned.lock().ok().and_then(|w| w.get(name).copied());
            if last.is_some_and(|t| now - t < DAY) {
                continue;
            }
            if let Ok(mut w) = self.warned.lock() {
                w.insert(name.clone(), now);
            }
            let days_left = (expires_at - now).max(0) / DAY;
            let when = crate::scheduler::trigger::format_time(expires_at, chrono_tz::Tz::UTC);
            tracing::warn!(target: TARGET, event = "social.token_expiring", account = %name,
                platform = %account.platform, expires_at = %when, days_left,
                "the token of social account '{name}' expires {when} and cannot be refreshed: renew it");
            if let Some(bus) = &self.bus {
                let payload = serde_json::json!({
                    "event": "token_expiring",
                    "account": name,
                    "platform": account.platform.name(),
                    "expires_at": expires_at,
                    "days_left": days_left,
                });
                let _ = bus.publish("social", TOPIC, payload);
            }
            found.push(Expiring {
                account: name.clone(),
                expires_at,
                days_left,
            });
        }
        found
    }
}
