//! StockTwits API v2 (`base_url`: `https://api.stocktwits.com/api/2`).
//!
//! StockTwits stopped registering new API applications in 2023. The client is real for
//! accounts that already hold a token: credential `access_token` (it does not expire and
//! cannot be refreshed), optionally `user_id` (else `GET /account/verify.json` finds it, for
//! crash reconciliation). An account without a token is dry-run only: `preview` shows the
//! request, `post` refuses with a message saying why, and [`SocialClient::dry_run_only`]
//! lets the outbox say so up front.
//!
//! Posts: `POST /messages/create.json` with `body`, optional `sentiment` (`bullish`,
//! `bearish`, `neutral`, from `extra.sentiment`), `in_reply_to_message_id`, and a `chart`
//! image as multipart. Cashtags (`$AAPL`) in the body link symbols. The API has no delete.
//! Errors: `{"response":{"status":422},"errors":[{"message":"…"}]}` (a duplicate within 30
//! minutes is a 422); budgets in `X-RateLimit-Limit/Remaining/Reset` (Unix seconds).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reqwest::RequestBuilder;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::auth::{Grant, TokenCell};
use super::support::{
    as_i64, epoch_triple, error, kind_for_status, match_key, preview_of, Multipart, Raw,
};
use super::text::char_len;
use super::{
    AccountSpec, ErrorKind, Metrics, Platform, PostRequest, Posted, RateInfo, Reply,
    RequestPreview, SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

const P: Platform = Platform::Stocktwits;
/// The platform raised its limit from 140 to 1,000 characters in 2019.
pub const LIMIT: usize = 1_000;
const SENTIMENTS: [&str; 3] = ["bullish", "bearish", "neutral"];

pub struct StocktwitsClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    /// Set when the account has no token: why it can only preview.
    dry_run: Option<String>,
    user_id: OnceCell<String>,
}

impl StocktwitsClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<StocktwitsClient, SocialError> {
        let dry_run = spec.optional("access_token").is_none().then(|| {
            format!(
                "StockTwits account `{}` has no access_token; StockTwits no longer registers new API \
                 applications, so this account can only preview posts (dry run)",
                spec.name
            )
        });
        Ok(StocktwitsClient {
            auth: TokenCell::new(&spec, tokens),
            user_id: OnceCell::new_with(spec.optional("user_id")),
            spec,
            http,
            dry_run,
        })
    }

    fn create_request(&self, token: &str, req: &PostRequest, summarise: bool) -> RequestBuilder {
        let mut body = req.text.clone();
        if let Some(link) = req.link.as_ref().filter(|l| !req.text.contains(l.as_str())) {
            body = format!("{body} {link}");
        }
        let mut fields = vec![("body", body)];
        if let Some(s) = req.extra.get("sentiment") {
            fields.push(("sentiment", s.to_ascii_lowercase()));
        }
        if let Some(parent) = &req.reply_to {
            fields.push(("in_reply_to_message_id", parent.clone()));
        }
        let rb = self
            .http
            .post(self.spec.api("/messages/create.json"))
            .bearer_auth(token);
        match req.media.first() {
            None => rb.form(&fields),
            Some(m) => {
                let form = fields
                    .iter()
                    .fold(Multipart::default(), |f, (k, v)| f.text(k, v));
                form.file("chart", &m.name, &m.mime, m.bytes.clone())
                    .attach(rb, summarise)
            }
        }
    }

    async fn call(
        &self,
        op: &str,
        build: impl Fn(&str) -> RequestBuilder,
        rates: &mut Vec<RateInfo>,
    ) -> Result<Value, SocialError> {
        if let Some(why) = &self.dry_run {
            return Err(error(P, ErrorKind::Auth, op, None, why.clone(), None));
        }
        // Tokens never expire, so a 401 is final: no refresh-and-retry.
        let raw = self.auth.call(self, op, build, |_| false).await?;
        let found: Vec<RateInfo> = epoch_triple(&raw, "requests", "x-ratelimit")
            .into_iter()
            .collect();
        rates.extend(found.iter().cloned());
        check(op, &raw, &found)
    }

    async fn post_now(&self, req: &PostRequest) -> Result<Reply<Posted>, SocialError> {
        self.check_text(req)?;
        let mut rates = Vec::new();
        let v = self
            .call("post", |t| self.create_request(t, req, false), &mut rates)
            .await?;
        let Some(id) = as_i64(&v["message"]["id"]) else {
            let msg = format!("messages/create returned no message.id: {v}");
            return Err(error(P, ErrorKind::Unavailable, "post", None, msg, None));
        };
        Ok(Reply {
            value: posted(&id.to_string()),
            rates,
        })
    }

    async fn user_id(&self) -> Result<String, SocialError> {
        if let Some(id) = self.user_id.get() {
            return Ok(id.clone());
        }
        let url = self.spec.api("/account/verify.json");
        let v = self
            .call(
                "find",
                |t| self.http.get(&url).bearer_auth(t),
                &mut Vec::new(),
            )
            .await?;
        let Some(id) = as_i64(&v["user"]["id"]) else {
            let msg = "account/verify returned no user.id; set the `user_id` credential";
            return Err(error(P, ErrorKind::Unavailable, "find", None, msg, None));
        };
        Ok(self
            .user_id
            .get_or_init(|| async move { id.to_string() })
            .await
            .clone())
    }

    async fn find_now(
        &self,
        req: &PostRequest,
        since: Millis,
    ) -> Result<Option<Posted>, SocialError> {
        let user = self.user_id().await?;
        let url = self.spec.api(&format!("/streams/user/{user}.json"));
        let v = self
            .call(
                "find",
                |t| self.http.get(&url).bearer_auth(t),
                &mut Vec::new(),
            )
            .await?;
        let want = match_key(&req.text);
        let found = v["messages"].as_array().into_iter().flatten().find(|m| {
            let at = m["created_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|d| d.timestamp_millis())
                .unwrap_or(0);
            at >= since - 1000 && match_key(m["body"].as_str().unwrap_or_default()) == want
        });
        Ok(found
            .and_then(|m| as_i64(&m["id"]))
            .map(|id| posted(&id.to_string())))
    }
}

fn posted(id: &str) -> Posted {
    Posted {
        id: id.to_string(),
        url: Some(format!("https://stocktwits.com/message/{id}")),
    }
}

/// `{"response":{"status":N},"errors":[{"message":…}]}` into a [`SocialError`].
fn check(op: &str, raw: &Raw, rates: &[RateInfo]) -> Result<Value, SocialError> {
    let v = raw.json();
    let status = as_i64(&v["response"]["status"])
        .map(|s| s as u16)
        .unwrap_or(raw.status);
    if raw.ok() && (200..300).contains(&status) {
        return Ok(v);
    }
    let message = v["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["message"].as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| raw.body.chars().take(200).collect());
    let kind = match status {
        422 if message.to_ascii_lowercase().contains("duplicate") => ErrorKind::Duplicate,
        s => kind_for_status(s),
    };
    let mut err = error(P, kind, op, Some(status), message, None);
    if kind == ErrorKind::RateLimited {
        err.retry_at = raw
            .retry_after()
            .or_else(|| rates.iter().filter_map(|r| r.reset_at).max());
    }
    Err(err)
}

impl Grant for StocktwitsClient {
    fn can_refresh(&self, _current: &Tokens) -> bool {
        false
    }

    fn grant<'a>(&'a self, _current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async {
            Err(error(
                P,
                ErrorKind::Auth,
                "refresh token",
                None,
                "StockTwits tokens cannot be refreshed",
                None,
            ))
        }
        .boxed()
    }
}

impl SocialClient for StocktwitsClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let len = char_len(&req.text);
        let sentiment = req.extra.get("sentiment").map(|s| s.to_ascii_lowercase());
        let msg = if req.text.trim().is_empty() {
            "a StockTwits message needs text".to_string()
        } else if len > LIMIT {
            format!("text is {len} characters; StockTwits allows {LIMIT}")
        } else if let Some(s) = sentiment.filter(|s| !SENTIMENTS.contains(&s.as_str())) {
            format!("sentiment `{s}` is not one of bullish, bearish, neutral")
        } else if req.media.len() > 1 {
            "one chart image per StockTwits message".to_string()
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        vec![preview_of(self.create_request("****", req, true))]
    }

    fn post<'a>(
        &'a self,
        req: &'a PostRequest,
    ) -> BoxFuture<'a, Result<Reply<Posted>, SocialError>> {
        self.post_now(req).boxed()
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<()>, SocialError>> {
        async move {
            let msg =
                format!("StockTwits' API has no delete; remove message {id} on stocktwits.com");
            Err(error(P, ErrorKind::Invalid, "delete", None, msg, None))
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api(&format!("/messages/show/{id}.json"));
            let v = self
                .call(
                    "metrics",
                    |t| self.http.get(&url).bearer_auth(t),
                    &mut rates,
                )
                .await?;
            let m = &v["message"];
            let mut value = Metrics::new();
            value.insert("likes".into(), as_i64(&m["likes"]["total"]).unwrap_or(0));
            value.insert(
                "replies".into(),
                as_i64(&m["conversation"]["replies"]).unwrap_or(0),
            );
            value.insert(
                "reshares".into(),
                as_i64(&m["reshares"]["reshared_count"]).unwrap_or(0),
            );
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
        // StockTwits tokens do not expire.
        async { None }.boxed()
    }

    fn dry_run_only(&self) -> Option<String> {
        self.dry_run.clone()
    }
}
