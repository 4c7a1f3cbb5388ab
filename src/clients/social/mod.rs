//! Social platform clients: one file per platform, all behind [`SocialClient`].
//!
//! This module is the contract between the platform clients (which know HTTP shapes, error
//! bodies and rate-limit headers) and the outbox in `crate::social` (which knows durability,
//! scheduling, deduplication and budgets). A client never sleeps, retries or stores posts: it
//! makes one attempt and reports precisely what happened, including what the platform said
//! about its rate limits, so the outbox can reschedule instead of hammering.
//!
//! Time is passed as milliseconds since the Unix epoch ([`crate::store::Millis`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::store::Millis;

mod auth;
pub mod facebook;
pub mod instagram;
pub mod linkedin;
mod meta;
pub mod reddit;
pub mod stocktwits;
mod support;
pub mod text;
pub mod x;

/// The six platforms Dream.OS posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    X,
    Facebook,
    Instagram,
    Reddit,
    Linkedin,
    Stocktwits,
}

impl Platform {
    pub const ALL: [Platform; 6] = [
        Platform::X,
        Platform::Facebook,
        Platform::Instagram,
        Platform::Reddit,
        Platform::Linkedin,
        Platform::Stocktwits,
    ];

    /// The name used in `dreamos.toml` (`platform = "x"`), in Lua and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Reddit => "reddit",
            Platform::Linkedin => "linkedin",
            Platform::Stocktwits => "stocktwits",
        }
    }

    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of failure, in the terms the outbox acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Credentials missing, invalid, expired or revoked (after a refresh was tried).
    Auth,
    /// The platform said slow down; [`SocialError::retry_at`] says until when, if it said.
    RateLimited,
    /// The request itself is wrong (too long, bad media, unknown subreddit): retrying won't help.
    Invalid,
    /// The platform refused it as a duplicate of an earlier post.
    Duplicate,
    /// The platform is down or answered 5xx: retry later.
    Unavailable,
    /// No answer at all (connect, TLS, timeout, unreadable body): the post may or may not exist.
    Network,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Network => "network",
        }
    }
}

/// One failure from a platform, with the platform's own words.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[error("{platform} {op}: {} ({}{message})", kind.name(), status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct SocialError {
    pub platform: Platform,
    pub kind: ErrorKind,
    /// What was being done: "post", "upload image", "delete", "metrics", "refresh token", ...
    pub op: String,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The platform's own message (X's `detail`, Reddit's `[code, message]`, Meta's
    /// `error.message`, LinkedIn's `message`, StockTwits' `errors[0].message`), or the
    /// transport error.
    pub message: String,
    /// The platform's own code when it has one (`RATELIMIT`, `190`, `REVOKED_ACCESS_TOKEN`).
    pub code: Option<String>,
    /// For `rate_limited`: the earliest time to try again, when the platform said
    /// (Retry-After, x-rate-limit-reset, estimated_time_to_regain_access, Reddit's "5 minutes").
    pub retry_at: Option<Millis>,
}

/// A file to attach; the outbox reads it from disk before calling the client.
#[derive(Debug, Clone)]
pub struct Media {
    /// Where it came from (for messages), e.g. `chart.png`.
    pub name: String,
    pub mime: String,
    pub bytes: Arc<Vec<u8>>,
    /// A public URL of the same file, for platforms that fetch media themselves (Instagram
    /// requires it; Facebook accepts it instead of an upload).
    pub url: Option<String>,
    pub alt_text: Option<String>,
}

/// One post as the outbox hands it to a client.
#[derive(Debug, Clone, Default)]
pub struct PostRequest {
    pub text: String,
    pub media: Vec<Media>,
    pub link: Option<String>,
    /// Reddit: the subreddit, without `r/`.
    pub subreddit: Option<String>,
    /// Reddit: the post title (required there).
    pub title: Option<String>,
    /// X: post as a reply to this id (thread splitting); Reddit: comment on this fullname;
    /// StockTwits: `in_reply_to_message_id`.
    pub reply_to: Option<String>,
    /// Free-form platform options from Lua (StockTwits `sentiment`, Reddit `flair_id`...).
    pub extra: BTreeMap<String, String>,
    /// The outbox's key for this post: used to find it again after a crash.
    pub idempotency_key: String,
}

/// What the platform returned for a created post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posted {
    /// The platform's id (X tweet id, `t3_…` fullname, `{page}_{post}`, IG media id,
    /// `urn:li:share:…`, StockTwits message id).
    pub id: String,
    pub url: Option<String>,
}

/// Engagement counters at one moment, by the platform's metric names (`like_count`,
/// `score`, `num_comments`, `reach`, `likes`...).
pub type Metrics = BTreeMap<String, i64>;

/// What a response said about the remaining budget for the endpoint it hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateInfo {
    /// A name for the budget, e.g. "POST /2/tweets", "app-usage", "24h-user".
    pub bucket: String,
    pub limit: Option<f64>,
    pub remaining: Option<f64>,
    /// When the budget resets.
    pub reset_at: Option<Millis>,
    /// Meta's usage headers: the highest percentage seen (throttling starts at 100).
    pub usage_percent: Option<f64>,
}

/// A successful call's value plus the rate-limit budgets its response reported.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub rates: Vec<RateInfo>,
}

/// A token set, as stored durably between runs so a rotated refresh token is never lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token expires; `None` for tokens that do not expire.
    pub expires_at: Option<Millis>,
    /// When the refresh token itself expires (LinkedIn's 365 days), if known.
    pub refresh_expires_at: Option<Millis>,
}

/// Durable storage for refreshed tokens, per account name. The outbox implements it over the
/// store; tests use memory. `save` must be durable before it returns: X rotates refresh
/// tokens, so losing a saved one locks the account out.
pub trait TokenStore: Send + Sync {
    fn load(&self, account: &str) -> BoxFuture<'_, Result<Option<Tokens>, String>>;
    fn save(&self, account: &str, tokens: Tokens) -> BoxFuture<'_, Result<(), String>>;
}

/// Everything a client needs to know about one configured account. Credentials have already
/// been read from the environment variables the config names.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub name: String,
    pub platform: Platform,
    /// API base URL (e.g. `https://api.x.com`); tests and proxies override it.
    pub base_url: String,
    /// Token endpoint base where it differs from `base_url` (Reddit's `www.reddit.com`,
    /// LinkedIn's `www.linkedin.com`); `None` means `base_url`.
    pub auth_url: Option<String>,
    /// Resolved credentials by their config key, e.g. `client_id`, `client_secret`,
    /// `username`, `password`, `access_token`, `refresh_token`, `page_id`, `user_id`,
    /// `author_urn`, `user_agent`. Which keys a platform needs is in its client's docs.
    pub credentials: BTreeMap<String, String>,
}

/// What would be sent, for `--dry-run`: shown to the user exactly, secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPreview {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One platform's API. One attempt per call; no sleeping, no retrying.
pub trait SocialClient: Send + Sync {
    fn platform(&self) -> Platform;

    /// The platform's text limit for this request (X counts weighted; see `text`).
    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError>;

    /// The request(s) `post` would make, secrets masked, without sending anything.
    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview>;

    /// Create the post, uploading media first by the platform's own flow.
    fn post<'a>(
        &'a self,
        req: &'a PostRequest,
    ) -> BoxFuture<'a, Result<Reply<Posted>, SocialError>>;

    /// Delete a post; `Invalid` with a clear message where the platform has no delete.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<()>, SocialError>>;

    /// Current engagement counters of a post.
    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>>;

    /// After a crash while sending: look the post up (by the idempotency key where the
    /// platform keeps one, else by the account's recent posts matching `req.text` since
    /// `since`). `Ok(None)` means it was certainly not posted and is safe to send again.
    fn find<'a>(
        &'a self,
        req: &'a PostRequest,
        since: Millis,
    ) -> BoxFuture<'a, Result<Option<Posted>, SocialError>>;

    /// Refresh the access token where the platform allows it, saving the new set through the
    /// [`TokenStore`] before returning. Clients also call this themselves on expiry/401.
    fn refresh<'a>(&'a self) -> BoxFuture<'a, Result<Tokens, SocialError>>;

    /// When the current credentials stop working and cannot be refreshed, if known (for the
    /// "token expires in N days" warning).
    fn expires_at(&self) -> BoxFuture<'_, Option<Millis>>;

    /// Why this account can only preview, never send (a StockTwits account without
    /// credentials); `None` when it can post. Added so the outbox can say so before queueing
    /// instead of failing at send time.
    fn dry_run_only(&self) -> Option<String> {
        None
    }
}

/// The real API base URL of a platform, for accounts that do not set `base_url`.
pub fn default_base_url(platform: Platform) -> &'static str {
    match platform {
        Platform::X => "https://api.x.com",
        Platform::Reddit => "https://oauth.reddit.com",
        Platform::Facebook => "https://graph.facebook.com/v24.0",
        Platform::Instagram => "https://graph.facebook.com/v24.0",
        Platform::Linkedin => "https://api.linkedin.com",
        Platform::Stocktwits => "https://api.stocktwits.com/api/2",
    }
}

/// The token endpoint base where it differs from the API base (`auth_url`).
pub fn default_auth_url(platform: Platform) -> Option<&'static str> {
    match platform {
        Platform::Reddit => Some("https://www.reddit.com"),
        Platform::Linkedin => Some("https://www.linkedin.com"),
        _ => None,
    }
}

/// The client for one account, after checking it has the credentials its platform needs.
/// The error names the missing credential key and the account.
pub fn connect(
    spec: AccountSpec,
    http: reqwest::Client,
    tokens: Arc<dyn TokenStore>,
) -> Result<Arc<dyn SocialClient>, SocialError> {
    Ok(match spec.platform {
        Platform::X => Arc::new(x::XClient::new(spec, http, tokens)?),
        Platform::Reddit => Arc::new(reddit::RedditClient::new(spec, http, tokens)?),
        Platform::Facebook => Arc::new(facebook::FacebookClient::new(spec, http, tokens)?),
        Platform::Instagram => Arc::new(instagram::InstagramClient::new(spec, http, tokens)?),
        Platform::Linkedin => Arc::new(linkedin::LinkedinClient::new(spec, http, tokens)?),
        Platform::Stocktwits => Arc::new(stocktwits::StocktwitsClient::new(spec, http, tokens)?),
    })
}

impl AccountSpec {
    /// A credential that must be present and non-empty.
    pub(crate) fn require(&self, key: &str, why: &str) -> Result<String, SocialError> {
        match self.credentials.get(key).filter(|v| !v.trim().is_empty()) {
            Some(v) => Ok(v.clone()),
            None => Err(SocialError {
                platform: self.platform,
                kind: ErrorKind::Auth,
                op: "connect".into(),
                status: None,
                message: format!(
                    "account `{}` needs the credential `{key}` ({why}); set \
                     [social.accounts.{}] {key} to the name of an environment variable holding it",
                    self.name, self.name
                ),
                code: None,
                retry_at: None,
            }),
        }
    }

    /// A credential that may be absent; empty counts as absent.
    pub(crate) fn optional(&self, key: &str) -> Option<String> {
        self.credentials
            .get(key)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// `base_url` joined with `path` (which starts with `/`).
    pub(crate) fn api(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// The token endpoint base: `auth_url`, else `base_url` (whoever builds the spec fills
    /// `auth_url` from [`default_auth_url`] for real accounts).
    pub(crate) fn auth(&self, path: &str) -> String {
        let base = self.auth_url.as_deref().unwrap_or(&self.base_url);
        format!("{}{path}", base.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests;
