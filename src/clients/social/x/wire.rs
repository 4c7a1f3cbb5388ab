//! X's wire details: problem-object errors, rate-limit header families, the token grant.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::XClient;
use crate::clients::social::auth::{tokens_from_grant, Grant};
use crate::clients::social::support::{epoch_triple, error, kind_for_status, send, Raw};
use crate::clients::social::{ErrorKind, Platform, Posted, RateInfo, SocialError, Tokens};
use crate::store::Millis;

const P: Platform = Platform::X;

pub(super) fn posted(id: &str) -> Posted {
    Posted {
        id: id.to_string(),
        url: Some(format!("https://x.com/i/web/status/{id}")),
    }
}

/// X returns tweet text with `&`, `<` and `>` HTML-escaped.
pub(super) fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The 15-minute endpoint budget and the 24-hour user/app caps from one response.
pub(super) fn rates_of(raw: &Raw, endpoint: &str) -> Vec<RateInfo> {
    [
        epoch_triple(raw, endpoint, "x-rate-limit"),
        epoch_triple(raw, "24h-user", "x-user-limit-24hour"),
        epoch_triple(raw, "24h-app", "x-app-limit-24hour"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// When a 429 may be retried: the latest reset of an exhausted budget, else the earliest
/// reset reported (X sends no Retry-After).
pub(super) fn retry_at(raw: &Raw, rates: &[RateInfo]) -> Option<Millis> {
    let exhausted = rates
        .iter()
        .filter(|r| r.remaining == Some(0.0))
        .filter_map(|r| r.reset_at)
        .max();
    exhausted
        .or_else(|| rates.iter().filter_map(|r| r.reset_at).min())
        .or_else(|| raw.retry_after())
}

/// An RFC 7807 problem (or the older `errors[]` form) as a [`SocialError`].
pub(super) fn problem(op: &str, raw: &Raw, rates: &[RateInfo]) -> SocialError {
    let v = raw.json();
    let mut parts: Vec<String> = Vec::new();
    if let Some(d) = v["detail"].as_str() {
        parts.push(d.to_string());
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Some(m) = e["message"].as_str().or(e["detail"].as_str()) {
            parts.push(m.to_string());
        }
    }
    if parts.is_empty() {
        parts.push(
            v["title"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| raw.body.chars().take(200).collect()),
        );
    }
    let message = parts.join("; ");
    let code = v["type"]
        .as_str()
        .filter(|t| *t != "about:blank")
        .or(v["title"].as_str())
        .map(str::to_string)
        .or_else(|| v["errors"][0]["code"].as_i64().map(|c| c.to_string()));
    let kind = if raw.status == 403 && message.to_ascii_lowercase().contains("duplicate") {
        ErrorKind::Duplicate
    } else {
        kind_for_status(raw.status)
    };
    let mut err = error(P, kind, op, Some(raw.status), message, code);
    if kind == ErrorKind::RateLimited {
        err.retry_at = retry_at(raw, rates);
    }
    err
}

impl Grant for XClient {
    fn can_refresh(&self, current: &Tokens) -> bool {
        current.refresh_token.is_some() && self.spec.optional("client_id").is_some()
    }

    fn grant<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async move {
            let op = "refresh token";
            let client_id = self.spec.optional("client_id").unwrap_or_default();
            let refresh = current.refresh_token.clone().unwrap_or_default();
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ];
            let mut rb = self
                .http
                .post(self.spec.auth("/2/oauth2/token"))
                .form(&form);
            if let Some(secret) = self.spec.optional("client_secret") {
                rb = rb.basic_auth(&client_id, Some(secret));
            }
            let raw = send(P, op, rb).await?;
            if !raw.ok() {
                // OAuth errors: {"error":"invalid_request","error_description":"…"}.
                let v = raw.json();
                let mut err = problem(op, &raw, &[]);
                if let Some(desc) = v["error_description"].as_str() {
                    err.message = desc.to_string();
                    err.code = v["error"].as_str().map(str::to_string);
                }
                if raw.status == 400 {
                    err.kind = ErrorKind::Auth;
                }
                return Err(err);
            }
            tokens_from_grant(P, &raw, current)
        }
        .boxed()
    }
}
