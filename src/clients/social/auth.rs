//! Access tokens shared by the clients: the current set (stored tokens win over the
//! configured ones, because a stored set may hold a rotated refresh token), refresh on
//! expiry or on the platform's "token expired" answer, and saving through the
//! [`TokenStore`] before a new token is used.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::RequestBuilder;
use tokio::sync::Mutex;

use super::support::{error, now_millis, send, Raw};
use super::{AccountSpec, ErrorKind, Platform, SocialError, TokenStore, Tokens};
use crate::store::Millis;

/// Refresh early rather than send a token that dies in flight.
const EXPIRY_MARGIN_MS: Millis = 60_000;

/// A platform's token grant: how to get a new set from the current one.
pub trait Grant: Send + Sync {
    /// Whether `current` (plus the account's credentials) allows getting a new token.
    fn can_refresh(&self, current: &Tokens) -> bool;
    fn grant<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>>;
    /// How long before expiry to refresh. Most platforms refresh an expired token, so a
    /// minute suffices; Instagram only refreshes a still-valid one, so it refreshes days early.
    fn refresh_margin(&self) -> Millis {
        EXPIRY_MARGIN_MS
    }
}

pub struct TokenCell {
    platform: Platform,
    account: String,
    store: Arc<dyn TokenStore>,
    /// The tokens from the config, used until the store has a set of its own.
    seed: Tokens,
    /// `None` until loaded from the store.
    current: Mutex<Option<Tokens>>,
    /// One refresh at a time: X invalidates a refresh token once used, so two concurrent
    /// refreshes would lock the account out.
    refreshing: Mutex<()>,
}

impl TokenCell {
    pub fn new(spec: &AccountSpec, store: Arc<dyn TokenStore>) -> TokenCell {
        let cred = |k: &str| spec.credentials.get(k).filter(|v| !v.is_empty()).cloned();
        let seed = Tokens {
            access_token: cred("access_token").unwrap_or_default(),
            refresh_token: cred("refresh_token"),
            expires_at: cred("expires_at").and_then(|v| parse_time(&v)),
            refresh_expires_at: cred("refresh_expires_at").and_then(|v| parse_time(&v)),
        };
        TokenCell {
            platform: spec.platform,
            account: spec.name.clone(),
            store,
            seed,
            current: Mutex::new(None),
            refreshing: Mutex::new(()),
        }
    }

    pub async fn get(&self) -> Result<Tokens, SocialError> {
        let mut cur = self.current.lock().await;
        if let Some(t) = cur.as_ref() {
            return Ok(t.clone());
        }
        let loaded = self.store.load(&self.account).await.map_err(|e| {
            let msg = format!("loading stored tokens of account `{}`: {e}", self.account);
            error(
                self.platform,
                ErrorKind::Unavailable,
                "load tokens",
                None,
                msg,
                None,
            )
        })?;
        let t = loaded.unwrap_or_else(|| self.seed.clone());
        *cur = Some(t.clone());
        Ok(t)
    }

    /// Store first, then use: a rotated refresh token must survive a crash right after.
    /// If the store fails the set is still kept in memory (the old refresh token is
    /// already spent), and the error says so.
    async fn save(&self, tokens: Tokens) -> Result<(), SocialError> {
        let saved = self.store.save(&self.account, tokens.clone()).await;
        *self.current.lock().await = Some(tokens);
        saved.map_err(|e| {
            let msg = format!(
                "refreshed tokens of account `{}` could not be stored ({e}); they are kept in \
                 memory until the next refresh",
                self.account
            );
            error(
                self.platform,
                ErrorKind::Unavailable,
                "refresh token",
                None,
                msg,
                None,
            )
        })
    }

    /// Refresh unless someone already replaced `stale` while we waited for the lock.
    /// When the stored set is dead (its refresh was refused, or it cannot refresh) and the
    /// configured credentials differ from it, the user has re-authorised: adopt those.
    pub async fn refresh(&self, g: &dyn Grant, stale: Option<&str>) -> Result<Tokens, SocialError> {
        let _one = self.refreshing.lock().await;
        let current = self.get().await?;
        if let Some(stale) = stale {
            if current.access_token != stale && !current.access_token.is_empty() {
                return Ok(current);
            }
        }
        let failure = if g.can_refresh(&current) {
            match g.grant(&current).await {
                Ok(new) => {
                    self.save(new.clone()).await?;
                    return Ok(new);
                }
                Err(e) if e.kind == ErrorKind::Auth => e,
                Err(e) => return Err(e),
            }
        } else {
            let msg = format!(
                "the access token of account `{}` was rejected or has expired and cannot be \
                 refreshed here: put a new one in its credentials",
                self.account
            );
            error(
                self.platform,
                ErrorKind::Auth,
                "refresh token",
                None,
                msg,
                None,
            )
        };
        let seed = self.seed.clone();
        if seed == current || (seed.access_token.is_empty() && seed.refresh_token.is_none()) {
            return Err(failure);
        }
        tracing::info!(account = %self.account, "stored tokens were refused; using the configured credentials");
        if !seed.access_token.is_empty() && Some(seed.access_token.as_str()) != stale {
            self.save(seed.clone()).await?;
            return Ok(seed);
        }
        if !g.can_refresh(&seed) {
            return Err(failure);
        }
        let new = g.grant(&seed).await?;
        self.save(new.clone()).await?;
        Ok(new)
    }

    /// A usable access token, refreshed first when missing or about to expire.
    pub async fn access(&self, g: &dyn Grant) -> Result<String, SocialError> {
        let t = self.get().await?;
        let expiring = t
            .expires_at
            .is_some_and(|e| e <= now_millis() + g.refresh_margin());
        if (t.access_token.is_empty() || expiring) && g.can_refresh(&t) {
            return Ok(self.refresh(g, Some(&t.access_token)).await?.access_token);
        }
        if t.access_token.is_empty() {
            let msg = format!("account `{}` has no access_token", self.account);
            return Err(error(
                self.platform,
                ErrorKind::Auth,
                "authenticate",
                None,
                msg,
                None,
            ));
        }
        Ok(t.access_token)
    }

    /// One authenticated call; when `expired` says the token was refused, refresh once
    /// and send again.
    pub async fn call(
        &self,
        g: &dyn Grant,
        op: &str,
        build: impl Fn(&str) -> RequestBuilder,
        expired: impl Fn(&Raw) -> bool,
    ) -> Result<Raw, SocialError> {
        let token = self.access(g).await?;
        let raw = send(self.platform, op, build(&token)).await?;
        if !expired(&raw) {
            return Ok(raw);
        }
        let fresh = match self.refresh(g, Some(&token)).await {
            Ok(fresh) if fresh.access_token != token => fresh,
            Ok(_) => return Ok(raw),
            // A refused refresh says more than the 401 ("refresh token invalid").
            Err(e) if g.can_refresh(&self.get().await?) => return Err(e),
            // Nothing could be refreshed: the platform's own refusal says most.
            Err(_) => return Ok(raw),
        };
        send(self.platform, op, build(&fresh.access_token)).await
    }
}

/// Unix seconds or RFC 3339, for `expires_at` credentials.
pub fn parse_time(v: &str) -> Option<Millis> {
    if let Ok(secs) = v.trim().parse::<i64>() {
        return Some(secs * 1000);
    }
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The common OAuth token response (`access_token`, `expires_in`, optional rotated
/// `refresh_token` and `refresh_token_expires_in`), keeping the old refresh token when the
/// platform does not send a new one.
pub fn tokens_from_grant(
    platform: Platform,
    raw: &Raw,
    previous: &Tokens,
) -> Result<Tokens, SocialError> {
    let v = raw.json();
    let Some(access) = v["access_token"].as_str().filter(|s| !s.is_empty()) else {
        return Err(super::support::unexpected(
            platform,
            "refresh token",
            raw,
            "access_token",
        ));
    };
    let now = now_millis();
    let secs = |k: &str| v[k].as_f64().map(|s| now + (s * 1000.0) as Millis);
    Ok(Tokens {
        access_token: access.to_string(),
        refresh_token: v["refresh_token"]
            .as_str()
            .map(str::to_string)
            .or_else(|| previous.refresh_token.clone()),
        expires_at: secs("expires_in"),
        refresh_expires_at: secs("refresh_token_expires_in").or(previous.refresh_expires_at),
    })
}
