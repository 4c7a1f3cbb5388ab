//! LinkedIn's wire details: little-text escaping, URNs in paths, error bodies (and the bare
//! 429), the refresh-token grant.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{LinkedinClient, P, RESERVED};
use crate::clients::social::auth::{tokens_from_grant, Grant};
use crate::clients::social::support::{error, kind_for_status, send, Raw};
use crate::clients::social::{ErrorKind, SocialError, Tokens};
use crate::store::Millis;

/// Little text: backslash before each reserved character.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if RESERVED.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&n) if c == '\\' && RESERVED.contains(n) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn urn_path(urn: &str) -> String {
    url_escape(urn)
}

pub(super) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{"status", "serviceErrorCode", "code", "message"}`; a 429 carries no headers.
pub(super) fn failure(op: &str, raw: &Raw) -> SocialError {
    let v = raw.json();
    let message = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| raw.body.chars().take(200).collect());
    let code = v["code"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["serviceErrorCode"].as_i64().map(|c| c.to_string()));
    let kind = match raw.status {
        422 | 409 if message.to_ascii_lowercase().contains("duplicate") => ErrorKind::Duplicate,
        s => kind_for_status(s),
    };
    let mut err = error(P, kind, op, Some(raw.status), message, code);
    if kind == ErrorKind::RateLimited {
        err.retry_at = raw.retry_after().or_else(|| Some(next_midnight_utc()));
    }
    err
}

pub(super) fn next_midnight_utc() -> Millis {
    let day = 86_400_000;
    (chrono::Utc::now().timestamp_millis() / day + 1) * day
}

impl Grant for LinkedinClient {
    fn can_refresh(&self, current: &Tokens) -> bool {
        current.refresh_token.is_some() && self.spec.optional("client_secret").is_some()
    }

    fn grant<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async move {
            let op = "refresh token";
            let form = [
                ("grant_type", "refresh_token".to_string()),
                (
                    "refresh_token",
                    current.refresh_token.clone().unwrap_or_default(),
                ),
                (
                    "client_id",
                    self.spec.optional("client_id").unwrap_or_default(),
                ),
                (
                    "client_secret",
                    self.spec.optional("client_secret").unwrap_or_default(),
                ),
            ];
            let raw = send(
                P,
                op,
                self.http
                    .post(self.spec.auth("/oauth/v2/accessToken"))
                    .form(&form),
            )
            .await?;
            if !raw.ok() {
                // {"error":"invalid_request","error_description":"…"}
                let v = raw.json();
                let mut err = failure(op, &raw);
                if let Some(d) = v["error_description"].as_str() {
                    err.message = d.to_string();
                    err.code = v["error"].as_str().map(str::to_string);
                }
                if raw.status == 400 || raw.status == 401 {
                    err.kind = ErrorKind::Auth;
                }
                return Err(err);
            }
            tokens_from_grant(P, &raw, current)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_text_escapes_reserved_characters_and_round_trips() {
        let text = "Ship it (v2) #rust @team_x <3 ~ *bold* [x] {y} a|b \\";
        let e = escape(text);
        assert_eq!(&e[..15], "Ship it \\(v2\\) ");
        assert!(e.contains("\\#rust \\@team\\_x \\<3"), "{e}");
        assert_eq!(unescape(&e), text);
    }

    #[test]
    fn urns_are_percent_encoded_in_paths() {
        assert_eq!(urn_path("urn:li:share:7123"), "urn%3Ali%3Ashare%3A7123");
    }
}
