//! LinkedIn's versioned Posts API (`base_url`: `https://api.linkedin.com`, paths `/rest/...`).
//!
//! Credentials: `access_token` (60 days), `author_urn` (`urn:li:person:{sub}` or
//! `urn:li:organization:{id}`), and for apps approved for programmatic refresh
//! `refresh_token` + `client_id` + `client_secret` (token endpoint
//! `{auth_url}/oauth/v2/accessToken`, real `https://www.linkedin.com`). Optional
//! `linkedin_version` (`YYYYMM`, default [`DEFAULT_VERSION`]): LinkedIn rejects sunset
//! versions, so it must move forward about yearly.
//!
//! Every call sends `LinkedIn-Version` and `X-Restli-Protocol-Version: 2.0.0`. A created
//! post answers 201 with an empty body; its id is the `x-restli-id` header. Images:
//! `POST /rest/images?action=initializeUpload` → `PUT uploadUrl` with the bytes → the post
//! with `content.media.id` (several images: `content.multiImage.images`). Commentary is
//! "little text": reserved characters are backslash-escaped. LinkedIn sends no rate-limit
//! headers, only a 429; its daily limits reset at midnight UTC, so that is the retry time
//! we report.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reqwest::RequestBuilder;
use serde_json::{json, Value};

use super::auth::{Grant, TokenCell};
use super::support::{as_i64, error, file_summary, match_key, preview_of, Raw};
use super::text::char_len;
use super::{
    AccountSpec, ErrorKind, Media, Metrics, Platform, PostRequest, Posted, Reply, RequestPreview,
    SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

mod wire;

pub use wire::escape;
use wire::{failure, unescape, urn_path};

const P: Platform = Platform::Linkedin;
const LIMIT: usize = 3_000;
/// Images in one multi-image post (the Posts API's documented maximum).
const MAX_IMAGES: usize = 20;
pub const DEFAULT_VERSION: &str = "202601";
/// Characters LinkedIn's little-text format reserves.
const RESERVED: &str = "\\|{}@[]()<>#*_~";

pub struct LinkedinClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    author: String,
    version: String,
}

impl LinkedinClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<LinkedinClient, SocialError> {
        spec.require(
            "access_token",
            "a 3-legged OAuth token with w_member_social",
        )?;
        let author = spec.require(
            "author_urn",
            "who posts: urn:li:person:… or urn:li:organization:…",
        )?;
        if spec.optional("refresh_token").is_some() {
            spec.require("client_id", "to refresh the access token")?;
            spec.require("client_secret", "to refresh the access token")?;
        }
        let version = spec
            .optional("linkedin_version")
            .unwrap_or_else(|| DEFAULT_VERSION.to_string());
        Ok(LinkedinClient {
            auth: TokenCell::new(&spec, tokens),
            spec,
            http,
            author,
            version,
        })
    }

    fn rest(&self, rb: RequestBuilder, token: &str) -> RequestBuilder {
        rb.bearer_auth(token)
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", "2.0.0")
    }

    /// The post; one image goes in `content.media`, several in `content.multiImage`.
    fn post_body(&self, req: &PostRequest, images: &[String]) -> Value {
        let mut text = req.text.clone();
        if let Some(link) = req.link.as_ref().filter(|l| !req.text.contains(l.as_str())) {
            text = format!("{text}\n{link}");
        }
        let mut body = json!({
            "author": self.author,
            "commentary": escape(&text),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        let entries: Vec<Value> = images
            .iter()
            .zip(&req.media)
            .map(|(id, m)| json!({"id": id, "altText": m.alt_text.clone().unwrap_or_default()}))
            .collect();
        match entries.as_slice() {
            [] => {}
            [one] => body["content"] = json!({ "media": one }),
            _ => body["content"] = json!({"multiImage": {"images": entries}}),
        }
        body
    }

    async fn call(
        &self,
        op: &str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<Raw, SocialError> {
        let raw = self.auth.call(self, op, build, |r| r.status == 401).await?;
        if raw.ok() {
            Ok(raw)
        } else {
            Err(failure(op, &raw))
        }
    }

    async fn upload(&self, media: &Media) -> Result<String, SocialError> {
        let op = "upload image";
        let url = self.spec.api("/rest/images?action=initializeUpload");
        let body = json!({"initializeUploadRequest": {"owner": self.author}});
        let v = self
            .call(op, |t| self.rest(self.http.post(&url), t).json(&body))
            .await?
            .json();
        let (Some(upload), Some(image)) = (
            v["value"]["uploadUrl"].as_str(),
            v["value"]["image"].as_str(),
        ) else {
            let msg = format!("initializeUpload returned no value.uploadUrl/value.image: {v}");
            return Err(error(P, ErrorKind::Unavailable, op, None, msg, None));
        };
        let put = |t: &str| {
            self.http
                .put(upload)
                .bearer_auth(t)
                .header("content-type", &media.mime)
                .body(media.bytes.to_vec())
        };
        self.call(op, put).await?;
        Ok(image.to_string())
    }

    async fn post_now(&self, req: &PostRequest) -> Result<Reply<Posted>, SocialError> {
        self.check_text(req)?;
        let mut images = Vec::new();
        for m in &req.media {
            images.push(self.upload(m).await?);
        }
        let body = self.post_body(req, &images);
        let url = self.spec.api("/rest/posts");
        let raw = self
            .call("post", |t| self.rest(self.http.post(&url), t).json(&body))
            .await?;
        let Some(id) = raw.header("x-restli-id").filter(|s| !s.is_empty()) else {
            let msg = "LinkedIn answered without an x-restli-id header";
            return Err(error(
                P,
                ErrorKind::Unavailable,
                "post",
                Some(raw.status),
                msg,
                None,
            ));
        };
        Ok(Reply {
            value: posted(id),
            rates: Vec::new(),
        })
    }

    async fn find_now(
        &self,
        req: &PostRequest,
        since: Millis,
    ) -> Result<Option<Posted>, SocialError> {
        let url = self.spec.api("/rest/posts");
        let q = [
            ("q", "author"),
            ("author", self.author.as_str()),
            ("count", "20"),
            ("sortBy", "LAST_MODIFIED"),
        ];
        let v = self
            .call("find", |t| self.rest(self.http.get(&url), t).query(&q))
            .await?
            .json();
        let want = match_key(
            &self.post_body(req, &[])["commentary"]
                .as_str()
                .map(unescape)
                .unwrap_or_default(),
        );
        let found = v["elements"].as_array().into_iter().flatten().find(|p| {
            let created = as_i64(&p["createdAt"]).unwrap_or(0);
            created >= since
                && match_key(&unescape(p["commentary"].as_str().unwrap_or_default())) == want
        });
        Ok(found.and_then(|p| p["id"].as_str()).map(posted))
    }
}

fn posted(urn: &str) -> Posted {
    Posted {
        id: urn.to_string(),
        url: Some(format!("https://www.linkedin.com/feed/update/{urn}/")),
    }
}

impl SocialClient for LinkedinClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let len = char_len(&req.text);
        let msg = if req.text.trim().is_empty() && req.media.is_empty() {
            "a post needs text or an image".to_string()
        } else if len > LIMIT {
            format!("text is {len} characters; LinkedIn allows {LIMIT}")
        } else if req.media.len() > MAX_IMAGES {
            format!(
                "{} images; a LinkedIn post holds at most {MAX_IMAGES}",
                req.media.len()
            )
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        let mut out = Vec::new();
        for m in &req.media {
            let init = self.rest(
                self.http
                    .post(self.spec.api("/rest/images?action=initializeUpload")),
                "****",
            );
            out.push(preview_of(init.json(
                &json!({"initializeUploadRequest": {"owner": self.author}}),
            )));
            let put = self
                .http
                .put("https://<value.uploadUrl>")
                .bearer_auth("****")
                .header("content-type", &m.mime);
            out.push(preview_of(put.body(file_summary(m.bytes.len(), &m.mime))));
        }
        let images: Vec<String> = (1..=req.media.len())
            .map(|i| format!("<value.image of upload {i}>"))
            .collect();
        let post = self.rest(self.http.post(self.spec.api("/rest/posts")), "****");
        out.push(preview_of(post.json(&self.post_body(req, &images))));
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
            let url = self.spec.api(&format!("/rest/posts/{}", urn_path(id)));
            self.call("delete", |t| {
                self.rest(self.http.delete(&url), t)
                    .header("X-RestLi-Method", "DELETE")
            })
            .await?;
            Ok(Reply {
                value: (),
                rates: Vec::new(),
            })
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let url = self
                .spec
                .api(&format!("/rest/socialActions/{}", urn_path(id)));
            let v = self
                .call("metrics", |t| self.rest(self.http.get(&url), t))
                .await?
                .json();
            let mut m = Metrics::new();
            m.insert(
                "likes".into(),
                as_i64(&v["likesSummary"]["totalLikes"]).unwrap_or(0),
            );
            m.insert(
                "comments".into(),
                as_i64(&v["commentsSummary"]["aggregatedTotalComments"]).unwrap_or(0),
            );
            Ok(Reply {
                value: m,
                rates: Vec::new(),
            })
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
            // Refreshable: a human is needed only when the 365-day refresh token runs out.
            if self.can_refresh(&t) {
                return t.refresh_expires_at;
            }
            t.expires_at
        }
        .boxed()
    }
}
