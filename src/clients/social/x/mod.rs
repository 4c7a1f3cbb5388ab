//! X (Twitter) API v2 with an OAuth 2.0 user token.
//!
//! Credentials: `access_token` (2-hour user token), `refresh_token` + `client_id` to refresh
//! it (X rotates the refresh token on every refresh; the new one is saved before use),
//! `client_secret` for confidential apps (sent as HTTP Basic), `user_id` (optional; else
//! `GET /2/users/me` finds it for crash reconciliation). The token endpoint is
//! `{auth_url or base_url}/2/oauth2/token`.
//!
//! Flow: images go one-shot to `POST /2/media/upload` (multipart, `media_category=
//! tweet_image`), then `POST /2/tweets` with `media.media_ids`. Errors are RFC 7807 problem
//! objects; a duplicate is a 403 whose `detail` says so. X sends no `Retry-After`: a 429's
//! retry time is the reset of the exhausted `x-rate-limit-*` / `x-*-limit-24hour-*` budget.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use super::auth::{Grant, TokenCell};
use super::support::{as_i64, error, match_key, preview_of, unexpected, Multipart, Raw};
use super::text::{x_weighted_len, X_LIMIT};
use super::{
    AccountSpec, ErrorKind, Media, Metrics, Platform, PostRequest, Posted, RateInfo, Reply,
    RequestPreview, SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

mod wire;

use wire::{posted, problem, rates_of, unescape_html};

const P: Platform = Platform::X;

pub struct XClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    /// The account's user id, from the config or `/2/users/me` (asked once).
    user_id: OnceCell<String>,
}

impl XClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<XClient, SocialError> {
        if spec.optional("access_token").is_none() {
            spec.require("refresh_token", "or an access_token, to authenticate")?;
        }
        if spec.optional("refresh_token").is_some() {
            spec.require("client_id", "to refresh the 2-hour access token")?;
        }
        let user_id = OnceCell::new_with(spec.optional("user_id"));
        Ok(XClient {
            auth: TokenCell::new(&spec, tokens),
            spec,
            http,
            user_id,
        })
    }

    /// The post text with `req.link` appended unless it is already in it.
    fn full_text(req: &PostRequest) -> String {
        match &req.link {
            Some(link) if !req.text.contains(link.as_str()) => format!("{} {link}", req.text),
            _ => req.text.clone(),
        }
    }

    fn upload_request(
        &self,
        token: &str,
        media: &Media,
        summarise: bool,
    ) -> reqwest::RequestBuilder {
        let form = Multipart::default()
            .file("media", &media.name, &media.mime, media.bytes.clone())
            .text("media_category", "tweet_image")
            .text("media_type", &media.mime);
        let rb = self
            .http
            .post(self.spec.api("/2/media/upload"))
            .bearer_auth(token);
        form.attach(rb, summarise)
    }

    fn tweet_body(req: &PostRequest, media_ids: &[String]) -> Value {
        let mut body = json!({ "text": Self::full_text(req) });
        if !media_ids.is_empty() {
            body["media"] = json!({ "media_ids": media_ids });
        }
        if let Some(parent) = &req.reply_to {
            body["reply"] = json!({ "in_reply_to_tweet_id": parent });
        }
        body
    }

    async fn call(
        &self,
        op: &str,
        endpoint: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        rates: &mut Vec<RateInfo>,
    ) -> Result<Value, SocialError> {
        let raw = self.auth.call(self, op, build, |r| r.status == 401).await?;
        let found = rates_of(&raw, endpoint);
        rates.extend(found.iter().cloned());
        let v = raw.json();
        // A 200 can carry only `errors[]` (e.g. a tweet that does not exist).
        if !raw.ok() || (v.get("data").is_none() && v.get("errors").is_some()) {
            return Err(problem(op, &raw, &found));
        }
        Ok(v)
    }

    async fn user_id(&self, rates: &mut Vec<RateInfo>) -> Result<String, SocialError> {
        if let Some(id) = self.user_id.get() {
            return Ok(id.clone());
        }
        let url = self.spec.api("/2/users/me");
        let v = self
            .call(
                "find",
                "GET /2/users/me",
                |t| self.http.get(&url).bearer_auth(t),
                rates,
            )
            .await?;
        let id = v["data"]["id"].as_str().unwrap_or_default().to_string();
        if id.is_empty() {
            let msg = "GET /2/users/me returned no data.id; set the `user_id` credential";
            return Err(error(P, ErrorKind::Unavailable, "find", None, msg, None));
        }
        Ok(self.user_id.get_or_init(|| async { id }).await.clone())
    }

    async fn post_now(&self, req: &PostRequest) -> Result<Reply<Posted>, SocialError> {
        self.check_text(req)?;
        let mut rates = Vec::new();
        let mut media_ids = Vec::new();
        for media in &req.media {
            let v = self
                .call(
                    "upload image",
                    "POST /2/media/upload",
                    |t| self.upload_request(t, media, false),
                    &mut rates,
                )
                .await?;
            match v["data"]["id"].as_str() {
                Some(id) => {
                    if let Some(alt) = &media.alt_text {
                        let body = alt_text_body(id, alt);
                        let url = self.spec.api("/2/media/metadata");
                        let alt = |t: &str| self.http.post(&url).bearer_auth(t).json(&body);
                        let op = "image alt text";
                        self.call(op, "POST /2/media/metadata", alt, &mut rates)
                            .await?;
                    }
                    media_ids.push(id.to_string());
                }
                None => {
                    let msg = format!(
                        "POST /2/media/upload for {} returned no data.id",
                        media.name
                    );
                    return Err(error(
                        P,
                        ErrorKind::Unavailable,
                        "upload image",
                        None,
                        msg,
                        None,
                    ));
                }
            }
        }
        let body = Self::tweet_body(req, &media_ids);
        let url = self.spec.api("/2/tweets");
        let v = self
            .call(
                "post",
                "POST /2/tweets",
                |t| self.http.post(&url).bearer_auth(t).json(&body),
                &mut rates,
            )
            .await?;
        let Some(id) = v["data"]["id"].as_str() else {
            let msg = format!("POST /2/tweets returned no data.id: {v}");
            return Err(error(P, ErrorKind::Unavailable, "post", None, msg, None));
        };
        Ok(Reply {
            value: posted(id),
            rates,
        })
    }

    async fn find_now(
        &self,
        req: &PostRequest,
        since: Millis,
    ) -> Result<Option<Posted>, SocialError> {
        let mut rates = Vec::new();
        let user = self.user_id(&mut rates).await?;
        let url = self.spec.api(&format!("/2/users/{user}/tweets"));
        let start = chrono::DateTime::from_timestamp_millis(since)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let query = [
            ("max_results", "100"),
            ("tweet.fields", "created_at"),
            ("start_time", start.as_str()),
        ];
        let v = self
            .call(
                "find",
                "GET /2/users/:id/tweets",
                |t| self.http.get(&url).bearer_auth(t).query(&query),
                &mut rates,
            )
            .await?;
        let want = match_key(&Self::full_text(req));
        let found = v["data"].as_array().into_iter().flatten().find(|tweet| {
            let text = tweet["text"].as_str().unwrap_or_default();
            match_key(&unescape_html(text)) == want
        });
        Ok(found.and_then(|t| t["id"].as_str()).map(posted))
    }
}

impl SocialClient for XClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let text = Self::full_text(req);
        let len = x_weighted_len(&text);
        let msg = if text.trim().is_empty() && req.media.is_empty() {
            "a post needs text or an image".to_string()
        } else if len > X_LIMIT {
            format!("text is {len} weighted characters; X allows {X_LIMIT} (URLs count 23, CJK and emoji 2)")
        } else if req.media.len() > 4 {
            format!("{} images; X allows 4 per post", req.media.len())
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        let mut out = Vec::new();
        for (i, m) in req.media.iter().enumerate() {
            out.push(preview_of(self.upload_request("****", m, true)));
            if let Some(alt) = &m.alt_text {
                let body = alt_text_body(&format!("<data.id of upload {}>", i + 1), alt);
                let rb = self.http.post(self.spec.api("/2/media/metadata"));
                out.push(preview_of(rb.bearer_auth("****").json(&body)));
            }
        }
        let ids: Vec<String> = (1..=req.media.len())
            .map(|i| format!("<data.id of upload {i}>"))
            .collect();
        let body = Self::tweet_body(req, &ids);
        let rb = self
            .http
            .post(self.spec.api("/2/tweets"))
            .bearer_auth("****")
            .json(&body);
        out.push(preview_of(rb));
        out
    }

    fn post<'a>(
        &'a self,
        req: &'a PostRequest,
    ) -> BoxFuture<'a, Result<Reply<Posted>, SocialError>> {
        self.post_now(req).boxed()
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<()>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api(&format!("/2/tweets/{id}"));
            let v = self
                .call(
                    "delete",
                    "DELETE /2/tweets/:id",
                    |t| self.http.delete(&url).bearer_auth(t),
                    &mut rates,
                )
                .await?;
            if v["data"]["deleted"] != Value::Bool(true) {
                let msg = format!("X did not delete {id} (already deleted or not ours): {v}");
                return Err(error(P, ErrorKind::Invalid, "delete", None, msg, None));
            }
            Ok(Reply { value: (), rates })
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api(&format!("/2/tweets/{id}"));
            let q = [("tweet.fields", "public_metrics")];
            let v = self
                .call(
                    "metrics",
                    "GET /2/tweets/:id",
                    |t| self.http.get(&url).bearer_auth(t).query(&q),
                    &mut rates,
                )
                .await?;
            let Some(pm) = v["data"]["public_metrics"].as_object() else {
                let raw = Raw {
                    status: 200,
                    headers: Default::default(),
                    body: v.to_string(),
                };
                return Err(unexpected(P, "metrics", &raw, "data.public_metrics"));
            };
            let value = pm
                .iter()
                .filter_map(|(k, n)| as_i64(n).map(|n| (k.clone(), n)))
                .collect();
            Ok(Reply { value, rates })
        }
        .boxed()
    }

    fn find<'a>(
        &'a self,
        req: &'a PostRequest,
        since: Millis,
    ) -> BoxFuture<'a, Result<Option<Posted>, SocialError>> {
        self.find_now(req, since).boxed()
    }

    fn refresh<'a>(&'a self) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        self.auth.refresh(self, None).boxed()
    }

    fn expires_at(&self) -> BoxFuture<'_, Option<Millis>> {
        async move {
            let t = self.auth.get().await.ok()?;
            // A refreshable token never needs a human; only a lone access token expires.
            if self.can_refresh(&t) {
                return None;
            }
            t.expires_at
        }
        .boxed()
    }
}

/// `POST /2/media/metadata`: alt text for an uploaded image (screen readers).
fn alt_text_body(media_id: &str, alt: &str) -> Value {
    json!({ "id": media_id, "metadata": { "alt_text": { "text": alt } } })
}
