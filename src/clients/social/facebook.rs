//! Facebook Pages through the Graph API (`base_url` includes the version, e.g.
//! `https://graph.facebook.com/v24.0`).
//!
//! Credentials: `page_id`, `access_token` (a Page token; taken from a long-lived user token
//! it never expires, so there is nothing to refresh), optionally `app_id` + `app_secret` so
//! `debug_token` can report an expiry for the warning.
//!
//! Posts: `POST /{page}/feed` (`message`, `link`); one image: `POST /{page}/photos`, by
//! `url` when the media has a public URL, else a multipart `source` upload; the answer's
//! `post_id` is the post. Several images are uploaded unpublished and attached to a feed
//! post as `attached_media`. Errors are Graph error objects (`190` token, `4/17/32/613/80001`
//! throttling, `506` duplicate, `100` invalid parameter, `368` policy block); budgets come
//! as JSON in `X-App-Usage`, `X-Page-Usage` and `X-Business-Use-Case-Usage`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::auth::{Grant, TokenCell};
use super::meta::{check, debug_token, rates_of, token_expired};
use super::support::{as_i64, error, match_key, preview_of, Multipart};
use super::text::char_len;
use super::{
    AccountSpec, ErrorKind, Media, Metrics, Platform, PostRequest, Posted, RateInfo, Reply,
    RequestPreview, SocialClient, SocialError, TokenStore, Tokens,
};
use crate::store::Millis;

const P: Platform = Platform::Facebook;
const LIMIT: usize = 63_206;
/// Photos attached to one multi-photo post (Meta documents no exact cap; 10 is what the
/// Pages composer allows).
const MAX_PHOTOS: usize = 10;

pub struct FacebookClient {
    spec: AccountSpec,
    http: reqwest::Client,
    auth: TokenCell,
    page_id: String,
}

impl FacebookClient {
    pub fn new(
        spec: AccountSpec,
        http: reqwest::Client,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<FacebookClient, SocialError> {
        let page_id = spec.require("page_id", "the Page to post to")?;
        spec.require("access_token", "a Page access token")?;
        Ok(FacebookClient {
            auth: TokenCell::new(&spec, tokens),
            spec,
            http,
            page_id,
        })
    }

    /// One photo to `/{page}/photos`: published with `caption` as the post, or unpublished
    /// (`caption: None`) to be attached to a multi-photo feed post.
    fn photo_request(
        &self,
        token: &str,
        m: &Media,
        caption: Option<&str>,
        summarise: bool,
    ) -> reqwest::RequestBuilder {
        let url = self.spec.api(&format!("/{}/photos", self.page_id));
        let rb = self.http.post(url).bearer_auth(token);
        let mut fields: Vec<(&str, &str)> = match caption {
            Some(c) => vec![("caption", c)],
            None => vec![("published", "false")],
        };
        match &m.url {
            Some(url) => {
                fields.insert(0, ("url", url.as_str()));
                rb.form(&fields)
            }
            None => fields
                .iter()
                .fold(Multipart::default(), |f, (k, v)| f.text(k, v))
                .file("source", &m.name, &m.mime, m.bytes.clone())
                .attach(rb, summarise),
        }
    }

    /// A feed post, with `attached_media` for photos uploaded unpublished.
    fn feed_request(
        &self,
        token: &str,
        req: &PostRequest,
        photo_ids: &[String],
    ) -> reqwest::RequestBuilder {
        let mut form = vec![("message".to_string(), req.text.clone())];
        if let Some(link) = &req.link {
            form.push(("link".into(), link.clone()));
        }
        for (i, id) in photo_ids.iter().enumerate() {
            form.push((
                format!("attached_media[{i}]"),
                json!({ "media_fbid": id }).to_string(),
            ));
        }
        let url = self.spec.api(&format!("/{}/feed", self.page_id));
        self.http.post(url).bearer_auth(token).form(&form)
    }

    fn caption(req: &PostRequest) -> String {
        match &req.link {
            Some(link) if !req.text.contains(link.as_str()) => format!("{}\n{link}", req.text),
            _ => req.text.clone(),
        }
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
        let v = match req.media.as_slice() {
            [] => {
                self.call("post", |t| self.feed_request(t, req, &[]), &mut rates)
                    .await?
            }
            [one] => {
                let caption = Self::caption(req);
                let build = |t: &str| self.photo_request(t, one, Some(&caption), false);
                self.call("post", build, &mut rates).await?
            }
            many => {
                let mut ids = Vec::new();
                for m in many {
                    let build = |t: &str| self.photo_request(t, m, None, false);
                    let v = self.call("upload image", build, &mut rates).await?;
                    match v["id"].as_str() {
                        Some(id) => ids.push(id.to_string()),
                        None => {
                            let msg = format!("/photos returned no id for {}: {v}", m.name);
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
                self.call("post", |t| self.feed_request(t, req, &ids), &mut rates)
                    .await?
            }
        };
        // /photos answers {"id": photo, "post_id": post}; /feed answers {"id": post}.
        let Some(id) = v["post_id"].as_str().or(v["id"].as_str()) else {
            let msg = format!("the Graph API returned no post id: {v}");
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
        let url = self.spec.api(&format!("/{}/posts", self.page_id));
        let since = (since / 1000).to_string();
        let q = [
            ("fields", "id,message,created_time"),
            ("since", since.as_str()),
            ("limit", "50"),
        ];
        let v = self
            .call(
                "find",
                |t| self.http.get(&url).bearer_auth(t).query(&q),
                &mut Vec::new(),
            )
            .await?;
        let want = match_key(&req.text);
        let found = v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| match_key(p["message"].as_str().unwrap_or_default()) == want);
        Ok(found.and_then(|p| p["id"].as_str()).map(posted))
    }
}

fn posted(id: &str) -> Posted {
    Posted {
        id: id.to_string(),
        url: Some(format!("https://www.facebook.com/{id}")),
    }
}

impl Grant for FacebookClient {
    /// Page tokens do not expire; a rejected one needs a new token from the user.
    fn can_refresh(&self, _current: &Tokens) -> bool {
        false
    }

    fn grant<'a>(&'a self, _current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async move {
            let msg = "Facebook Page tokens cannot be refreshed; create a new one";
            Err(error(P, ErrorKind::Auth, "refresh token", None, msg, None))
        }
        .boxed()
    }
}

impl SocialClient for FacebookClient {
    fn platform(&self) -> Platform {
        P
    }

    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        let len = char_len(&req.text);
        let msg = if req.text.trim().is_empty() && req.media.is_empty() && req.link.is_none() {
            "a post needs text, a link or an image".to_string()
        } else if len > LIMIT {
            format!("text is {len} characters; Facebook allows {LIMIT}")
        } else if req.media.len() > MAX_PHOTOS {
            format!(
                "{} images; a Facebook post attaches at most {MAX_PHOTOS}",
                req.media.len()
            )
        } else {
            return Ok(());
        };
        Err(error(P, ErrorKind::Invalid, "check text", None, msg, None))
    }

    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        match req.media.as_slice() {
            [] => vec![preview_of(self.feed_request("****", req, &[]))],
            [one] => {
                let caption = Self::caption(req);
                vec![preview_of(self.photo_request(
                    "****",
                    one,
                    Some(&caption),
                    true,
                ))]
            }
            many => {
                let mut out: Vec<RequestPreview> = many
                    .iter()
                    .map(|m| preview_of(self.photo_request("****", m, None, true)))
                    .collect();
                let ids: Vec<String> = (1..=many.len())
                    .map(|i| format!("<id of photo {i}>"))
                    .collect();
                out.push(preview_of(self.feed_request("****", req, &ids)));
                out
            }
        }
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
            let url = self.spec.api(&format!("/{id}"));
            let v = self
                .call(
                    "delete",
                    |t| self.http.delete(&url).bearer_auth(t),
                    &mut rates,
                )
                .await?;
            if v["success"] != Value::Bool(true) {
                let msg = format!("the Graph API did not confirm deleting {id}: {v}");
                return Err(error(P, ErrorKind::Unavailable, "delete", None, msg, None));
            }
            Ok(Reply { value: (), rates })
        }
        .boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        async move {
            let mut rates = Vec::new();
            let url = self.spec.api(&format!("/{id}"));
            let q = [(
                "fields",
                "reactions.summary(total_count),comments.summary(total_count),shares",
            )];
            let v = self
                .call(
                    "metrics",
                    |t| self.http.get(&url).bearer_auth(t).query(&q),
                    &mut rates,
                )
                .await?;
            let mut m = Metrics::new();
            for (name, value) in [
                ("reactions", &v["reactions"]["summary"]["total_count"]),
                ("comments", &v["comments"]["summary"]["total_count"]),
                ("shares", &v["shares"]["count"]),
            ] {
                // No `shares` field means nobody shared it yet.
                m.insert(name.to_string(), as_i64(value).unwrap_or(0));
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
        self.find_now(req, since).boxed()
    }

    fn refresh<'a>(&'a self) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        self.auth.refresh(self, None).boxed()
    }

    fn expires_at(&self) -> BoxFuture<'_, Option<Millis>> {
        async move {
            let t = self.auth.get().await.ok()?;
            if t.expires_at.is_some() {
                return t.expires_at;
            }
            let app = self
                .spec
                .optional("app_id")
                .zip(self.spec.optional("app_secret"));
            let app_token = app.map(|(id, secret)| format!("{id}|{secret}"));
            debug_token(
                P,
                &self.http,
                &self.spec.base_url,
                &t.access_token,
                app_token,
            )
            .await
        }
        .boxed()
    }
}
