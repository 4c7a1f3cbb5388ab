//! Reddit's wire details: errors inside HTTP 200, `X-Ratelimit-*`, the token grant.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reqwest::header::USER_AGENT;
use serde_json::Value;

use super::RedditClient;
use crate::clients::social::auth::{tokens_from_grant, Grant};
use crate::clients::social::support::{error, kind_for_status, now_millis, send, Raw};
use crate::clients::social::{ErrorKind, Platform, RateInfo, SocialError, Tokens};
use crate::store::Millis;

const P: Platform = Platform::Reddit;

pub(super) fn rates_of(raw: &Raw) -> Vec<RateInfo> {
    let used = raw.header_f64("x-ratelimit-used");
    let remaining = raw.header_f64("x-ratelimit-remaining");
    let reset = raw.header_f64("x-ratelimit-reset");
    if used.is_none() && remaining.is_none() && reset.is_none() {
        return Vec::new();
    }
    vec![RateInfo {
        bucket: "requests".into(),
        limit: used.zip(remaining).map(|(u, r)| u + r),
        remaining,
        reset_at: reset.map(|s| now_millis() + (s * 1000.0) as Millis),
        usage_percent: None,
    }]
}

/// Errors by status, then the `[code, message, field]` triples inside a 200.
pub(super) fn check(op: &str, raw: &Raw) -> Result<Value, SocialError> {
    let v = raw.json();
    if !raw.ok() {
        let message = v["message"]
            .as_str()
            .or(v["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| raw.body.chars().take(200).collect());
        let kind = match raw.status {
            // 403/404 name a subreddit or post we may not touch: retrying won't help.
            403 | 404 => ErrorKind::Invalid,
            s => kind_for_status(s),
        };
        let mut err = error(P, kind, op, Some(raw.status), message, None);
        if kind == ErrorKind::RateLimited {
            err.retry_at = raw
                .retry_after()
                .or_else(|| rates_of(raw).first().and_then(|r| r.reset_at));
        }
        return Err(err);
    }
    let Some(first) = v["json"]["errors"].as_array().and_then(|e| e.first()) else {
        return Ok(v);
    };
    let code = first[0].as_str().unwrap_or("UNKNOWN").to_string();
    let message = first[1].as_str().unwrap_or_default().to_string();
    let field = first[2]
        .as_str()
        .map(|f| format!(" (field `{f}`)"))
        .unwrap_or_default();
    let kind = match code.as_str() {
        "RATELIMIT" => ErrorKind::RateLimited,
        "ALREADY_SUB" => ErrorKind::Duplicate,
        "USER_REQUIRED" => ErrorKind::Auth,
        _ => ErrorKind::Invalid,
    };
    let mut err = error(
        P,
        kind,
        op,
        Some(raw.status),
        format!("{message}{field}"),
        Some(code),
    );
    if kind == ErrorKind::RateLimited {
        err.retry_at = wait_in(&message).map(|ms| now_millis() + ms);
    }
    Err(err)
}

/// "Take a break for 5 minutes" / "try again in 38 seconds" → milliseconds.
pub fn wait_in(message: &str) -> Option<Millis> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        let n: f64 = w[0].parse().ok()?;
        let unit = w[1]
            .trim_end_matches(|c: char| !c.is_alphabetic())
            .to_ascii_lowercase();
        let ms = match unit.trim_end_matches('s') {
            "millisecond" => 1.0,
            "second" => 1_000.0,
            "minute" => 60_000.0,
            "hour" => 3_600_000.0,
            _ => return None,
        };
        Some((n * ms) as Millis)
    })
}

impl Grant for RedditClient {
    fn can_refresh(&self, current: &Tokens) -> bool {
        self.spec.optional("password").is_some() || current.refresh_token.is_some()
    }

    fn grant<'a>(&'a self, current: &'a Tokens) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        async move {
            let op = "refresh token";
            let form: Vec<(&str, String)> = match self.spec.optional("password") {
                Some(password) => vec![
                    ("grant_type", "password".into()),
                    ("username", self.username.clone()),
                    ("password", password),
                ],
                None => vec![
                    ("grant_type", "refresh_token".into()),
                    (
                        "refresh_token",
                        current.refresh_token.clone().unwrap_or_default(),
                    ),
                ],
            };
            let rb = self
                .http
                .post(self.spec.auth("/api/v1/access_token"))
                .basic_auth(
                    self.spec.optional("client_id").unwrap_or_default(),
                    self.spec.optional("client_secret"),
                )
                .header(USER_AGENT, &self.user_agent)
                .form(&form);
            let raw = send(P, op, rb).await?;
            let v = raw.json();
            // A wrong password still answers 200, with {"error": "invalid_grant"}.
            if let Some(code) = v["error"]
                .as_str()
                .map(str::to_string)
                .or_else(|| (!raw.ok()).then(|| raw.status.to_string()))
            {
                let message = v["message"].as_str().unwrap_or(&code).to_string();
                let msg = format!(
                    "Reddit refused the credentials of account `{}`: {message}",
                    self.spec.name
                );
                return Err(error(
                    P,
                    ErrorKind::Auth,
                    op,
                    Some(raw.status),
                    msg,
                    Some(code),
                ));
            }
            tokens_from_grant(P, &raw, current)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::wait_in;

    #[test]
    fn ratelimit_messages_become_waits() {
        let m = "Looks like you've been doing that a lot. Take a break for 5 minutes before trying again.";
        assert_eq!(wait_in(m), Some(300_000));
        assert_eq!(wait_in("Take a break for 1 minute."), Some(60_000));
        assert_eq!(wait_in("try again in 38 seconds"), Some(38_000));
        assert_eq!(wait_in("you are doing that too much"), None);
    }
}
