//! Instagram content publishing through the Graph API (`base_url`:
//! `https://graph.facebook.com/v24.0` with Facebook Login, or
//! `https://graph.instagram.com/v24.0` with Instagram Login).
//!
//! Credentials: `user_id` (the Instagram professional account's id), `access_token`.
//! Instagram Login tokens live 60 days and are refreshed (while still valid) at
//! `{auth_url}/refresh_access_token`; set `auth_url` to `https://graph.instagram.com` for
//! such accounts (it is also assumed when `base_url` is on graph.instagram.com). Tokens from
//! Facebook Login are Page-derived and do not refresh; `expires_at` asks `debug_token`.
//!
//! Instagram fetches media itself, so every post needs an image with a public `url`.
//! Flow: `POST /{user}/media` (`image_url`, `caption`) creates a container; its
//! `status_code` is polled until `FINISHED` (bounded, part of the one attempt: an
//! unpublished container posts nothing, so giving up is safe); `POST /{user}/media_publish`
//! with `creation_id` publishes. Several images make a carousel. The API has no delete.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;

use super::auth::{tokens_from_grant, Grant, TokenCell};
use super::meta::{check, debug_token, rates_of, token_expired};
use super::support::{as_i64, error, match_key, preview_of, send};
use super::text::char_len;
use super::{
    AccountSpec, ErrorKind, Metrics, Platform, PostRequest, Posted, RateInfo, Reply,
    RequestPreview, SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

mod container;

const P: Platform = Platform::Instagram;
const CAPTION_LIMIT: usize = 2_200;
const HASHTAG_LIMIT: usize = 30;
/// Container polls: waits of 0.5 s doubling to 4 s, about a minute in all.
const POLLS: u32 = 18;

pub struct InstagramClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    user_id: String,
}

impl InstagramClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<InstagramClient, SocialError> {
        let user_id = spec.require("user_id", "the Instagram professional account's id")?;
        spec.require("access_token", "an Instagram or Facebook Login token")?;
        Ok(InstagramClient {
            auth: TokenCell::new(&spec, tokens),
            spec,
            http,
            user_id,
        })
    }

    /// Where Instagram Login tokens are refreshed, if this account uses them.
    fn refresh_base(&self) -> Option<String> {
        if let Some(a) = &self.spec.auth_url {
            return Some(a.trim_end_matches('/').to_string());
        }
        let url = reqwest::Url::parse(&self.spec.base_url).ok()?;
        (url.host_str() == Some("graph.instagram.com"))
            .then(|| format!("{}://graph.instagram.com", url.scheme()))
    }

    fn caption(req: &PostRequest) -> String {
        match &req.link {
            Some(link) if !req.text.contains(link.as_str()) => format!("{}\n{link}", req.text),
            _ => req.text.clone(),
        }
    }

    fn form_post(
        &self,
        token: &str,
        path: &str,
        form: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        self.http
            .post(self.spec.api(path))
            .bearer_auth(token)
            .form(form)
    }

    async fn call(
        &self,
        op: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        rates: &mut Vec<RateInfo>,
    ) -> Result<Value, SocialError> {
        let raw = self.auth.call(self, op, build, token_expired).await?;
        rates.extend(rates_of(&raw));
        check(P, op, &raw)
    }

    async fn post_now(&self, req: &PostRequest) -> Result<Reply<Posted>, SocialError> {
        self.check_text(req)?;
        let mut rates = Vec::new();
        let mut children = Vec::new();
        if req.media.len() > 1 {
            for form in Self::container_forms(req, &[]) {
                children.push(self.container(&form, &mut rates).await?);
            }
        }
        let form = &Self::container_forms(req, &children)[0];
        let container = self.container(form, &mut rates).await?;
        self.wait_finished(&container, &mut rates).await?;
        let path = format!("/{}/media_publish", self.user_id);
        let form = [("creation_id", container.clone())];
        let v = self
            .call("post", |t| self.form_post(t, &path, &form), &mut rates)
            .await?;
        let Some(id) = v["id"].as_str() else {
            let msg = format!("media_publish returned no id: {v}");
            return Err(error(P, ErrorKind::Unavailable, "post", None, msg, None));
        };
        let value = Posted {
            id: id.to_string(),
            url: None,
        };
        Ok(Reply { value, rates })
    }

    async fn find_now(
        &self,
        req: &PostRequest,
        since: Millis,
    ) -> Result<Option<Posted>, SocialError> {
        let url = self.spec.api(&format!("/{}/media", self.user_id));
        let q = [
            ("fields", "id,caption,timestamp,permalink"),
            ("limit", "25"),
        ];
        let v = self
            .call(
                "find",
                |t| self.http.get(&url).bearer_auth(t).query(&q),
                &mut Vec::new(),
            )
            .await?;
        let want = match_key(&Self::caption(req));
        let found = v["data"].as_array().into_iter().flatten().find(|m| {
            // Timestamps look like 2026-11-24T15:00:00+0000.
            let at = m["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%z").ok())
                .map(|d| d.timestamp_millis())
                .unwrap_or(0);
            at >= since - 1000 && match_key(m["caption"].as_str().unwrap_or_default()) == want
        });
        Ok(found.and_then(|m| {
            let id = m["id"].as_str()?.to_string();
            Some(Posted {
                id,
                url: m["permalink"].as_str().map(str::to_string),
            })
        }))
    }
}

impl Grant for InstagramClient {
    fn can_refresh(&self, current: &Tokens) -> bool {
        self.refresh_base().is_some() && !current.access_token.is_empty()
    }

    fn refresh_margin(&self) -> Millis {
        7 * 86_400_000
    }

    fn grant<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async move {
            let op = "refresh token";
            let base = self.refresh_base().unwrap_or_default();
            let q = [
                ("grant_type", "ig_refresh_token"),
                ("access_token", current.access_token.as_str()),
            ];
            let raw = send(
                P,
                op,
                self.http
                    .get(format!("{base}/refresh_access_token"))
                    .query(&q),
            )
            .await?;
            if let Err(mut e) = check(P, op, &raw) {
                e.kind = if e.kind == ErrorKind::RateLimited {
                    e.kind
                } else {
                    ErrorKind::Auth
                };
                return Err(e);
            }
            tokens_from_grant(P, &raw, current)
        }
        .boxed()
    }
}

impl SocialClient for InstagramClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let caption = Self::caption(req);
        let tags = caption
            .split_whitespace()
            .filter(|w| w.starts_with('#'))
            .count();
        let msg = if req.media.is_empty() {
            "an Instagram post needs an image (Instagram has no text-only posts)".to_string()
        } else if let Some(m) = req.media.iter().find(|m| m.url.is_none()) {
            format!(
                "Instagram fetches images from a public URL; {} has none (set its url)",
                m.name
            )
        } else if req.media.len() > 10 {
            format!(
                "{} images; an Instagram carousel holds at most 10",
                req.media.len()
            )
        } else if char_len(&caption) > CAPTION_LIMIT {
            format!(
                "caption is {} characters; Instagram allows {CAPTION_LIMIT}",
                char_len(&caption)
            )
        } else if tags > HASHTAG_LIMIT {
            format!("caption has {tags} hashtags; Instagram allows {HASHTAG_LIMIT}")
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        let path = format!("/{}/media", self.user_id);
        let mut out = Vec::new();
        let mut children = Vec::new();
        if req.media.len() > 1 {
            for (i, form) in Self::container_forms(req, &[]).iter().enumerate() {
                out.push(preview_of(self.form_post("****", &path, form)));
                children.push(format!("<id of container {}>", i + 1));
            }
        }
        if !req.media.is_empty() {
            let form = &Self::container_forms(req, &children)[0];
            out.push(preview_of(self.form_post("****", &path, form)));
        }
        let status = self
            .http
            .get(self.spec.api("/<container id>"))
            .bearer_auth("****");
        out.push(preview_of(
            status.query(&[("fields", "status_code,status")]),
        ));
        let publish = [("creation_id", "<container id>".to_string())];
        out.push(preview_of(self.form_post(
            "****",
            &format!("/{}/media_publish", self.user_id),
            &publish,
        )));
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
            let msg = format!(
                "Instagram's API cannot delete published media; delete {id} in the Instagram app"
            );
            Err(error(P, ErrorKind::Invalid, "delete", None, msg, None))
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api(&format!("/{id}/insights"));
            let q = [(
                "metric",
                "views,reach,likes,comments,shares,saved,total_interactions",
            )];
            let v = self
                .call(
                    "metrics",
                    |t| self.http.get(&url).bearer_auth(t).query(&q),
                    &mut rates,
                )
                .await?;
            let value = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    Some((
                        d["name"].as_str()?.to_string(),
                        as_i64(&d["values"][0]["value"])?,
                    ))
                })
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
            if self.can_refresh(&t) {
                return None;
            }
            match t.expires_at {
                Some(at) => Some(at),
                None => {
                    debug_token(P, &self.http, &self.spec.base_url, &t.access_token, None).await
                }
            }
        }
        .boxed()
    }
}
