//! Queueing posts and the operator's actions on them. Sending is in `send.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clients::social::{
    AccountSpec, ErrorKind, Metrics, RequestPreview, SocialClient, SocialError, TokenStore,
};
use crate::config::Config;
use crate::store::{Millis, SocialStore, StoreError};

use super::tokens::StoreTokens;
use super::types::{Inserted, NewPost, PostContent, PostId, PostRecord, Status};
use super::{AccountConfig, SocialConfig, TOPIC};

/// Builds a platform client for an account (the product passes
/// `crate::clients::social::connect`).
pub type Connect = Arc<
    dyn Fn(
            AccountSpec,
            reqwest::Client,
            Arc<dyn TokenStore>,
        ) -> Result<Arc<dyn SocialClient>, SocialError>
        + Send
        + Sync,
>;

/// The product's [`Connect`]: the platform clients of `crate::clients::social`.
pub fn platform_connect() -> Connect {
    Arc::new(crate::clients::social::connect)
}

/// Reads an environment variable (tests pass their own).
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A post someone asked for.
#[derive(Debug, Clone, Default)]
pub struct PostOrder {
    pub account: String,
    pub content: PostContent,
    /// Not before this time; `None` = now.
    pub at: Option<Millis>,
    pub idempotency_key: Option<String>,
    /// Reply to this outbox post once it is posted.
    pub parent: Option<PostId>,
    /// `cli` or the script's path.
    pub source: String,
    /// Only show the request, whatever the account says.
    pub dry_run: bool,
}

/// What queueing did.
#[derive(Debug, Clone)]
pub enum Queued {
    Created(PostRecord),
    /// The idempotency key was used before: that post, unchanged.
    Existing(PostRecord),
    /// Nothing stored or sent: the requests a real post would make. `note` says why it is
    /// a dry run when the user did not ask (account setting, missing credentials).
    DryRun {
        previews: Vec<RequestPreview>,
        note: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Misuse: an account that is not configured.
    #[error("unknown account '{given}'{hint}")]
    UnknownAccount { given: String, hint: String },
    /// Misuse: something about the order itself (a missing media file, a bad parent).
    #[error("{0}")]
    Order(String),
    /// The platform would refuse it (too long, ...) or refused it.
    #[error("{0}")]
    Social(#[from] SocialError),
    /// The same content was queued or sent within `[social] dedup_window`.
    #[error("duplicate of post {} ({}, created {}) within [social] dedup_window", .0.id, .0.status.name(), crate::scheduler::trigger::format_time(.0.created_at, chrono_tz::Tz::UTC))]
    Duplicate(Box<PostRecord>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxError {
    /// The `kind` a Lua `nil, err` carries.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxError::UnknownAccount { .. } | OutboxError::Order(_) => "invalid",
            OutboxError::Social(e) => e.kind.name(),
            OutboxError::Duplicate(_) => "duplicate",
            OutboxError::Store(_) => "store",
        }
    }
}

/// The outbox over one store. Shared (`Arc`) by the worker, the CLI and Lua states.
pub struct Outbox {
    pub(super) store: Arc<dyn SocialStore>,
    pub(super) config: Arc<Config>,
    connect: Connect,
    http: reqwest::Client,
    env: Env,
    /// Clients are built once per account: they hold tokens and refresh state.
    clients: Mutex<HashMap<String, Arc<dyn SocialClient>>>,
    /// Where outbox events are published; `None` in processes without a bus.
    pub(super) bus: Option<crate::bus::Bus>,
    /// Accounts already warned about an expiring token, and when (once a day each).
    pub(super) warned: Mutex<HashMap<String, Millis>>,
}

static KEY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Outbox {
    pub fn new(
        store: Arc<dyn SocialStore>,
        config: Arc<Config>,
        connect: Connect,
        bus: Option<crate::bus::Bus>,
    ) -> Outbox {
        let http = reqwest::Client::builder()
            .timeout(config.http.timeout)
            .user_agent(config.http.user_agent.clone())
            .build()
            .unwrap_or_default();
        Outbox {
            store,
            config,
            connect,
            http,
            env: Arc::new(|var| std::env::var(var).ok()),
            clients: Mutex::new(HashMap::new()),
            bus,
            warned: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces how environment variables are read (tests).
    pub fn with_env(mut self, env: Env) -> Outbox {
        self.env = env;
        self
    }

    pub fn settings(&self) -> &SocialConfig {
        &self.config.social
    }

    pub fn store(&self) -> &Arc<dyn SocialStore> {
        &self.store
    }

    pub fn account(&self, name: &str) -> Result<&AccountConfig, OutboxError> {
        self.config.social.accounts.get(name).ok_or_else(|| {
            let known: Vec<String> = self.config.social.accounts.keys().cloned().collect();
            let hint = match crate::config::did_you_mean(name, &known) {
                Some(k) => format!(" (did you mean '{k}'?)"),
                None if known.is_empty() => {
                    " (no accounts configured: add [social.accounts.NAME] to dreamos.toml)"
                        .to_string()
                }
                None => format!(" (configured: {})", known.join(", ")),
            };
            OutboxError::UnknownAccount {
                given: name.to_string(),
                hint,
            }
        })
    }

    /// The account's client, built on first use.
    pub fn client(&self, name: &str) -> Result<Arc<dyn SocialClient>, OutboxError> {
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(c);
        }
        let account = self.account(name)?;
        let env = self.env.clone();
        let spec = account.spec(name, |v| env(v)).map_err(|message| {
            OutboxError::Social(SocialError {
                platform: account.platform,
                kind: ErrorKind::Auth,
                op: "configure".into(),
                status: None,
                message,
                code: None,
                retry_at: None,
            })
        })?;
        let tokens: Arc<dyn TokenStore> = Arc::new(StoreTokens(self.store.clone()));
        let client = (self.connect)(spec, self.http.clone(), tokens)?;
        if let Ok(mut m) = self.clients.lock() {
            m.insert(name.to_string(), client.clone());
        }
        Ok(client)
    }

    /// A client for previews only: credentials that are not set are shown as such (a
    /// preview masks secrets anyway), so a dry run works without them.
    fn preview_client(&self, name: &str) -> Result<Arc<dyn SocialClient>, OutboxError> {
        if let Ok(client) = self.client(name) {
            return Ok(client);
        }
        let account = self.account(name)?;
        let env = self.env.clone();
        let spec = account
            .spec(name, |v| env(v).or_else(|| Some(format!("<{v} not set>"))))
            .map_err(OutboxError::Order)?;
        let tokens: Arc<dyn TokenStore> = Arc::new(StoreTokens(self.store.clone()));
        Ok((self.connect)(spec, self.http.clone(), tokens)?)
    }

    /// Why posts of `name` can only be dry runs, if they can: the account setting, or
    /// credentials that are not set (StockTwits no longer registers API applications, so
    /// its accounts often have none).
    pub fn dry_run_reason(&self, name: &str) -> Result<Option<String>, OutboxError> {
        let account = self.account(name)?;
        if account.dry_run {
            return Ok(Some(format!(
                "account '{name}' has dry_run = true: nothing is sent"
            )));
        }
        let env = self.env.clone();
        let missing = account.missing_env(|v| env(v));
        let no_credentials = !account.credentials.keys().any(|k| k.ends_with("_env"));
        if account.platform == crate::clients::social::Platform::Stocktwits
            && (no_credentials || !missing.is_empty())
        {
            return Ok(Some(format!(
                "account '{name}' has no StockTwits credentials{} (StockTwits no longer \
                 registers API applications): dry run only, nothing is sent",
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(" ({} not set)", missing.join(", "))
                }
            )));
        }
        // The client itself may know it cannot send (a StockTwits account without tokens).
        Ok(self.client(name).ok().and_then(|c| c.dry_run_only()))
    }

    /// Validates and stores a post (or previews it, for dry runs). Nothing is sent here:
    /// the row is durable before any HTTP call.
    pub async fn enqueue(&self, order: PostOrder, now: Millis) -> Result<Queued, OutboxError> {
        let account = self.account(&order.account)?.clone();
        let key = order.idempotency_key.clone().unwrap_or_else(|| {
            let n = KEY_COUNTER.fetch_add(1, Ordering::Relaxed);
            format!("dreamos-{now:x}-{:x}-{n}", std::process::id())
        });
        let reply_to = match order.parent {
            Some(parent) => {
                let p = self.store.get_post(parent).await?.ok_or_else(|| {
                    OutboxError::Order(format!("reply_to: there is no post {parent}"))
                })?;
                if p.account != order.account {
                    return Err(OutboxError::Order(format!(
                        "reply_to: post {parent} belongs to account '{}', not '{}'",
                        p.account, order.account
                    )));
                }
                Some(p.platform_id.unwrap_or_else(|| "(parent's id)".into()))
            }
            None => None,
        };
        let req = self
            .request(&order.content, &key, reply_to)
            .map_err(OutboxError::Order)?;
        let reason = self.dry_run_reason(&order.account)?;
        if order.dry_run || reason.is_some() {
            let client = self.preview_client(&order.account)?;
            client.check_text(&req)?;
            return Ok(Queued::DryRun {
                previews: client.preview(&req),
                note: reason,
            });
        }
        self.client(&order.account)?.check_text(&req)?;
        let window = self.config.social.dedup_window.as_millis() as Millis;
        let hash = order.content.hash(&order.account);
        let post = NewPost {
            account: order.account.clone(),
            platform: account.platform,
            content: order.content,
            idempotency_key: key,
            not_before: order.at.unwrap_or(now),
            parent: order.parent,
            source: order.source,
            max_attempts: self.config.social.max_attempts,
        };
        let dedup_since = (window > 0).then(|| now - window);
        match self.store.insert_post(post, hash, dedup_since, now).await? {
            Inserted::Created(p) => {
                tracing::info!(target: super::TARGET, post = p.id, account = %p.account,
                    due = %crate::scheduler::trigger::format_time(p.not_before, chrono_tz::Tz::UTC),
                    "post queued");
                self.event("queued", &p, None);
                Ok(Queued::Created(p))
            }
            Inserted::SameKey(p) => Ok(Queued::Existing(p)),
            Inserted::Duplicate(p) => Err(OutboxError::Duplicate(Box::new(p))),
        }
    }

    /// Deletes a posted post on its platform, then marks it `deleted`.
    pub async fn delete(&self, id: PostId, now: Millis) -> Result<PostRecord, OutboxError> {
        let post = self.posted(id).await?;
        let client = self.client(&post.account)?;
        let platform_id = post.platform_id.clone().unwrap_or_default();
        client.delete(&platform_id).await?;
        self.store.mark_deleted(id, now).await?;
        self.store
            .get_post(id)
            .await?
            .ok_or_else(|| OutboxError::Order(format!("there is no post {id}")))
    }

    /// Reads a posted post's metrics now and stores them as a sample.
    pub async fn metrics_now(&self, id: PostId, now: Millis) -> Result<Metrics, OutboxError> {
        let post = self.posted(id).await?;
        let client = self.client(&post.account)?;
        let reply = client
            .metrics(post.platform_id.as_deref().unwrap_or_default())
            .await?;
        let values: Vec<(String, i64)> = reply.value.clone().into_iter().collect();
        self.store
            .record_metrics(id, now, values, post.metrics_next, None)
            .await?;
        Ok(reply.value)
    }

    async fn posted(&self, id: PostId) -> Result<PostRecord, OutboxError> {
        let post = self
            .store
            .get_post(id)
            .await?
            .ok_or_else(|| OutboxError::Order(format!("there is no post {id}")))?;
        if post.status != Status::Posted || post.platform_id.is_none() {
            return Err(OutboxError::Order(format!(
                "post {id} is {}, not posted",
                post.status.name()
            )));
        }
        Ok(post)
    }

    /// Publishes an outbox event on the bus (when this process has one).
    pub(super) fn event(&self, event: &str, post: &PostRecord, extra: Option<serde_json::Value>) {
        let Some(bus) = &self.bus else { return };
        let mut payload = serde_json::json!({
            "event": event,
            "id": post.id,
            "account": post.account,
            "platform": post.platform.name(),
            "status": post.status.name(),
            "platform_id": post.platform_id,
            "url": post.url,
            "error": post.error,
            "not_before": post.not_before,
        });
        if let (Some(obj), Some(serde_json::Value::Object(more))) = (payload.as_object_mut(), extra)
        {
            obj.extend(more);
        }
        if let Err(e) = bus.publish("social", TOPIC, payload) {
            tracing::debug!(target: super::TARGET, error = %e, "cannot publish social event");
        }
    }
}
