//! Reddit with a script app (your own account).
//!
//! Credentials: `client_id`, `client_secret`, `username`, `user_agent` (Reddit throttles or
//! bans generic agents; use `<platform>:<app id>:<version> (by /u/<name>)`), and `password`
//! (script apps: password grant) or `refresh_token` (web apps with `duration=permanent`).
//! Tokens come from `{auth_url}/api/v1/access_token` (real: `https://www.reddit.com`) and
//! last an hour; a new one is fetched on expiry or on a 401.
//!
//! Posts: `POST /api/submit` (`kind=self`, or `kind=link` for a link without text), comments
//! (`reply_to` set) via `POST /api/comment`. Images follow the flow Reddit's own apps use:
//! `POST /api/media/asset.json` → multipart upload to the returned S3 `action` with its
//! `fields` → `submit kind=image url=<action>/<key>`. That submit answers without the post
//! id (Reddit sends it on a websocket); instead of a websocket client we read the account's
//! newest submissions and take the one with our title. When it is not visible yet the post
//! reports a `network` error, which makes the outbox reconcile through [`find`] instead of
//! posting again.
//!
//! Errors: a failed submit still answers HTTP 200 with `json.errors: [[code, message,
//! field]]`; `RATELIMIT`'s message says how long to wait ("Take a break for 5 minutes").
//! Budgets: `X-Ratelimit-Used/Remaining/Reset` (reset in seconds from now, floats as text).
//!
//! [`find`]: SocialClient::find

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reqwest::header::USER_AGENT;
use serde_json::Value;

use super::auth::TokenCell;
use super::support::{as_i64, error, match_key, now_millis, preview_of, Multipart};
use super::text::char_len;
use super::{
    AccountSpec, ErrorKind, Metrics, Platform, PostRequest, Posted, RateInfo, Reply,
    RequestPreview, SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

mod media;
mod wire;

pub use wire::wait_in;
use wire::{check, rates_of};

const P: Platform = Platform::Reddit;
const TITLE_LIMIT: usize = 300;
const BODY_LIMIT: usize = 40_000;

pub struct RedditClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    user_agent: String,
    username: String,
}

impl RedditClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<RedditClient, SocialError> {
        spec.require("client_id", "the script app's id")?;
        spec.require("client_secret", "the script app's secret")?;
        let username = spec.require("username", "the account that posts")?;
        let user_agent = spec.require(
            "user_agent",
            "Reddit requires `<platform>:<app id>:<version> (by /u/<name>)`",
        )?;
        if spec.optional("refresh_token").is_none() {
            spec.require("password", "for the script app's password grant")?;
        }
        Ok(RedditClient {
            auth: TokenCell::new(&spec, tokens),
            spec,
            http,
            user_agent,
            username,
        })
    }

    fn form_request(
        &self,
        token: &str,
        path: &str,
        form: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.spec.api(path))
            .bearer_auth(token)
            .header(USER_AGENT, &self.user_agent)
            .form(form)
    }

    /// The fields of a submit or comment, in the order Reddit documents them.
    fn submit_form(
        req: &PostRequest,
        image_url: Option<&str>,
    ) -> (&'static str, Vec<(&'static str, String)>) {
        if let Some(parent) = &req.reply_to {
            let form = vec![
                ("api_type", "json".into()),
                ("thing_id", parent.clone()),
                ("text", req.text.clone()),
            ];
            return ("/api/comment", form);
        }
        let mut form = vec![
            ("api_type", "json".to_string()),
            ("sr", req.subreddit.clone().unwrap_or_default()),
            ("title", req.title.clone().unwrap_or_default()),
        ];
        match (image_url, &req.link) {
            (Some(url), _) => form.extend([("kind", "image".into()), ("url", url.to_string())]),
            (None, Some(link)) if req.text.trim().is_empty() => {
                form.extend([("kind", "link".into()), ("url", link.clone())])
            }
            (None, Some(link)) => form.extend([
                ("kind", "self".into()),
                ("text", format!("{}\n\n{link}", req.text)),
            ]),
            (None, None) => form.extend([("kind", "self".into()), ("text", req.text.clone())]),
        }
        for key in ["flair_id", "flair_text", "nsfw", "spoiler", "sendreplies"] {
            if let Some(v) = req.extra.get(key) {
                form.push((key, v.clone()));
            }
        }
        ("/api/submit", form)
    }

    async fn call(
        &self,
        op: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        rates: &mut Vec<RateInfo>,
    ) -> Result<Value, SocialError> {
        let raw = self.auth.call(self, op, build, |r| r.status == 401).await?;
        rates.extend(rates_of(&raw));
        check(op, &raw)
    }

    async fn post_now(&self, req: &PostRequest) -> Result<Reply<Posted>, SocialError> {
        self.check_text(req)?;
        let started = now_millis();
        let mut rates = Vec::new();
        let image = match req.media.first() {
            Some(m) => Some(self.upload(m, &mut rates).await?),
            None => None,
        };
        let (path, form) = Self::submit_form(req, image.as_deref());
        let v = self
            .call("post", |t| self.form_request(t, path, &form), &mut rates)
            .await?;
        let data = &v["json"]["data"];
        let thing = if req.reply_to.is_some() {
            &data["things"][0]["data"]
        } else {
            data
        };
        if let Some(name) = thing["name"].as_str() {
            let url = thing["url"]
                .as_str()
                .or(thing["permalink"].as_str())
                .map(str::to_string);
            return Ok(Reply {
                value: Posted {
                    id: name.to_string(),
                    url,
                },
                rates,
            });
        }
        // kind=image: no id in the answer; look for it among our newest submissions.
        match self.find_now(req, started - 60_000, &mut rates).await? {
            Some(value) => Ok(Reply { value, rates }),
            None => Err(error(
                P,
                ErrorKind::Network,
                "post",
                None,
                "the image post was submitted but is not visible in the account's submissions yet; \
                 reconcile before sending again",
                None,
            )),
        }
    }

    async fn find_now(
        &self,
        req: &PostRequest,
        since: Millis,
        rates: &mut Vec<RateInfo>,
    ) -> Result<Option<Posted>, SocialError> {
        let comment = req.reply_to.is_some();
        let kind = if comment { "comments" } else { "submitted" };
        let url = self.spec.api(&format!("/user/{}/{kind}", self.username));
        let q = [("sort", "new"), ("limit", "25"), ("raw_json", "1")];
        let v = self
            .call(
                "find",
                |t| {
                    self.http
                        .get(&url)
                        .bearer_auth(t)
                        .header(USER_AGENT, &self.user_agent)
                        .query(&q)
                },
                rates,
            )
            .await?;
        let want = if comment {
            match_key(&req.text)
        } else {
            match_key(req.title.as_deref().unwrap_or(""))
        };
        let sr = req.subreddit.as_deref().unwrap_or("").to_ascii_lowercase();
        let found = v["data"]["children"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["data"])
            .find(|d| {
                let created = d["created_utc"]
                    .as_f64()
                    .map(|s| (s * 1000.0) as Millis)
                    .unwrap_or(0);
                let text = if comment {
                    d["body"].as_str()
                } else {
                    d["title"].as_str()
                };
                let same_sr =
                    comment || d["subreddit"].as_str().unwrap_or("").to_ascii_lowercase() == sr;
                created >= since && same_sr && match_key(text.unwrap_or("")) == want
            });
        Ok(found.and_then(|d| {
            let name = d["name"].as_str()?;
            let url = d["permalink"]
                .as_str()
                .map(|p| format!("https://www.reddit.com{p}"));
            Some(Posted {
                id: name.to_string(),
                url,
            })
        }))
    }
}

impl SocialClient for RedditClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let title = req.title.as_deref().unwrap_or("").trim();
        let msg = if req.reply_to.is_some() {
            if req.text.trim().is_empty() {
                "a comment needs text".to_string()
            } else if char_len(&req.text) > 10_000 {
                format!(
                    "comment is {} characters; Reddit allows 10000",
                    char_len(&req.text)
                )
            } else {
                return Ok(());
            }
        } else if req.subreddit.as_deref().unwrap_or("").trim().is_empty() {
            "a Reddit post needs `subreddit`".to_string()
        } else if title.is_empty() {
            "a Reddit post needs `title`".to_string()
        } else if char_len(title) > TITLE_LIMIT {
            format!(
                "title is {} characters; Reddit allows {TITLE_LIMIT}",
                char_len(title)
            )
        } else if char_len(&req.text) > BODY_LIMIT {
            format!(
                "text is {} characters; Reddit allows {BODY_LIMIT}",
                char_len(&req.text)
            )
        } else if req.media.len() > 1 {
            "one image per Reddit post (galleries are not supported)".to_string()
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        let mut out = Vec::new();
        if let Some(m) = req.media.first() {
            let form = [("filepath", m.name.clone()), ("mimetype", m.mime.clone())];
            out.push(preview_of(self.form_request(
                "****",
                "/api/media/asset.json",
                &form,
            )));
            let upload = Multipart::default()
                .text("<each of args.fields>", "<value>")
                .file("file", &m.name, &m.mime, m.bytes.clone());
            out.push(preview_of(upload.attach(
                self.http.post("https://<args.action of the lease>"),
                true,
            )));
        }
        let image_url = req.media.first().map(|_| "<args.action>/<key>");
        let (path, form) = Self::submit_form(req, image_url);
        out.push(preview_of(self.form_request("****", path, &form)));
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
            let form = [("id", id.to_string())];
            self.call(
                "delete",
                |t| self.form_request(t, "/api/del", &form),
                &mut rates,
            )
            .await?;
            Ok(Reply { value: (), rates })
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api("/api/info");
            let q = [("id", id), ("raw_json", "1")];
            let v = self
                .call(
                    "metrics",
                    |t| {
                        self.http
                            .get(&url)
                            .bearer_auth(t)
                            .header(USER_AGENT, &self.user_agent)
                            .query(&q)
                    },
                    &mut rates,
                )
                .await?;
            let Some(d) = v["data"]["children"]
                .as_array()
                .and_then(|c| c.first())
                .map(|c| &c["data"])
            else {
                let msg = format!("Reddit has no post {id} (deleted, removed or a wrong fullname)");
                return Err(error(P, ErrorKind::Invalid, "metrics", None, msg, None));
            };
            let mut m = Metrics::new();
            for key in [
                "score",
                "ups",
                "downs",
                "num_comments",
                "num_crossposts",
                "total_awards_received",
            ] {
                if let Some(n) = as_i64(&d[key]) {
                    m.insert(key.to_string(), n);
                }
            }
            if let Some(r) = d["upvote_ratio"].as_f64() {
                m.insert("upvote_ratio_pct".into(), (r * 100.0).round() as i64);
            }
            Ok(Reply { value: m, rates })
        }
        .boxed()
    }

    fn find<'a>(
        &'a self,
        req: &'a PostRequest,
        since: Millis,
    ) -> BoxFuture<'a, Result<Option<Posted>, SocialError>> {
        async move { self.find_now(req, since, &mut Vec::new()).await }.boxed()
    }

    fn refresh<'a>(&'a self) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        self.auth.refresh(self, None).boxed()
    }

    fn expires_at(&self) -> BoxFuture<'_, Option<Millis>> {
        // The password grant (or a permanent refresh token) renews without a human.
        async { None }.boxed()
    }
}
