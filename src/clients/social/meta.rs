//! What Facebook Pages and Instagram share (both are Meta's Graph API): the error object
//! with its numeric codes, the usage headers that carry JSON, and `debug_token`.

use serde_json::Value;

use super::support::{error, kind_for_status, now_millis, send, Raw};
use super::{ErrorKind, Platform, RateInfo, SocialError};
use crate::store::Millis;

/// `X-App-Usage`, `X-Page-Usage` (percentages) and `X-Business-Use-Case-Usage` (per
/// object and type, with `estimated_time_to_regain_access` in minutes).
pub fn rates_of(raw: &Raw) -> Vec<RateInfo> {
    let mut out = Vec::new();
    for (header, bucket) in [("x-app-usage", "app-usage"), ("x-page-usage", "page-usage")] {
        if let Some(v) = raw
            .header(header)
            .and_then(|h| serde_json::from_str::<Value>(h).ok())
        {
            out.push(usage(bucket, &v, None));
        }
    }
    let buc = raw
        .header("x-business-use-case-usage")
        .and_then(|h| serde_json::from_str::<Value>(h).ok());
    for (_, list) in buc.iter().flat_map(|v| v.as_object().into_iter().flatten()) {
        for entry in list.as_array().into_iter().flatten() {
            let kind = entry["type"].as_str().unwrap_or("unknown");
            let minutes = entry["estimated_time_to_regain_access"]
                .as_f64()
                .unwrap_or(0.0);
            let reset = (minutes > 0.0).then(|| now_millis() + (minutes * 60_000.0) as Millis);
            out.push(usage(&format!("buc-{kind}"), entry, reset));
        }
    }
    out
}

fn usage(bucket: &str, v: &Value, reset_at: Option<Millis>) -> RateInfo {
    let highest = ["call_count", "total_cputime", "total_time"]
        .iter()
        .filter_map(|k| v[*k].as_f64())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    RateInfo {
        bucket: bucket.to_string(),
        limit: None,
        remaining: None,
        reset_at,
        usage_percent: highest,
    }
}

/// Whether an answer says the token is invalid or expired (code 190).
pub fn token_expired(raw: &Raw) -> bool {
    raw.json()["error"]["code"].as_i64() == Some(190)
}

/// The body of a successful answer, or the Graph error as a [`SocialError`].
pub fn check(platform: Platform, op: &str, raw: &Raw) -> Result<Value, SocialError> {
    let v = raw.json();
    let e = &v["error"];
    if raw.ok() && e.is_null() {
        return Ok(v);
    }
    let code = e["code"].as_i64();
    let sub = e["error_subcode"].as_i64();
    let message = e["error_user_msg"]
        .as_str()
        .filter(|m| !m.is_empty())
        .or(e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| raw.body.chars().take(200).collect());
    let kind = match (code, sub) {
        // Instagram's publishing limit: "(#9) Application request limit reached" / 2207042.
        (_, Some(2207042)) => ErrorKind::RateLimited,
        (Some(190), _) | (Some(10), _) | (Some(200..=299), _) => ErrorKind::Auth,
        (Some(4 | 9 | 17 | 32 | 613 | 80001), _) => ErrorKind::RateLimited,
        (Some(506), _) => ErrorKind::Duplicate,
        (Some(1 | 2), _) => ErrorKind::Unavailable,
        (Some(_), _) => ErrorKind::Invalid,
        (None, _) => kind_for_status(raw.status),
    };
    let code = code.map(|c| match sub {
        Some(s) => format!("{c}/{s}"),
        None => c.to_string(),
    });
    let mut err = error(platform, kind, op, Some(raw.status), message, code);
    if kind == ErrorKind::RateLimited {
        err.retry_at = rates_of(raw)
            .iter()
            .filter_map(|r| r.reset_at)
            .max()
            .or_else(|| raw.retry_after());
    }
    Err(err)
}

/// When a token expires according to `GET /debug_token` (`None`: never, or unknown).
/// `app_token` is `app_id|app_secret` when configured, else the token inspects itself.
pub async fn debug_token(
    platform: Platform,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    app_token: Option<String>,
) -> Option<Millis> {
    let url = format!("{}/debug_token", base.trim_end_matches('/'));
    let access = app_token.unwrap_or_else(|| token.to_string());
    let rb = http
        .get(url)
        .query(&[("input_token", token), ("access_token", access.as_str())]);
    let raw = send(platform, "debug token", rb).await.ok()?;
    let v = check(platform, "debug token", &raw).ok()?;
    let at = v["data"]["expires_at"].as_i64()?;
    (at > 0).then_some(at * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Raw {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            if let Ok(v) = v.parse() {
                map.insert(*k, v);
            }
        }
        Raw {
            status,
            headers: map,
            body: body.to_string(),
        }
    }

    fn kind_of(code: i64, sub: Option<i64>) -> ErrorKind {
        let sub = sub
            .map(|s| format!(",\"error_subcode\":{s}"))
            .unwrap_or_default();
        let body = format!("{{\"error\":{{\"message\":\"m\",\"code\":{code}{sub}}}}}");
        check(Platform::Facebook, "post", &raw(400, &body, &[]))
            .unwrap_err()
            .kind
    }

    #[test]
    fn graph_codes_map_to_kinds() {
        assert_eq!(kind_of(190, Some(463)), ErrorKind::Auth);
        assert_eq!(kind_of(200, None), ErrorKind::Auth);
        for throttled in [4, 17, 32, 613, 80001] {
            assert_eq!(
                kind_of(throttled, None),
                ErrorKind::RateLimited,
                "{throttled}"
            );
        }
        assert_eq!(kind_of(506, None), ErrorKind::Duplicate);
        assert_eq!(kind_of(100, None), ErrorKind::Invalid);
        assert_eq!(kind_of(368, None), ErrorKind::Invalid);
        assert_eq!(kind_of(9, Some(2207042)), ErrorKind::RateLimited);
        assert_eq!(kind_of(2, None), ErrorKind::Unavailable);
    }

    #[test]
    fn the_user_message_wins_and_retry_after_is_a_fallback() {
        let body = r#"{"error":{"message":"(#4) Application request limit reached","code":4,"error_user_msg":"Try later"}}"#;
        let before = now_millis();
        let err = check(
            Platform::Facebook,
            "post",
            &raw(400, body, &[("retry-after", "120")]),
        )
        .unwrap_err();
        assert_eq!(
            (err.message.as_str(), err.code.as_deref()),
            ("Try later", Some("4"))
        );
        assert!(err.retry_at.unwrap() >= before + 120_000);
    }

    #[test]
    fn usage_headers_become_percentages() {
        let r = raw(
            200,
            "{}",
            &[(
                "x-app-usage",
                r#"{"call_count":28,"total_time":25,"total_cputime":91}"#,
            )],
        );
        let rates = rates_of(&r);
        assert_eq!(rates[0].bucket, "app-usage");
        assert_eq!(rates[0].usage_percent, Some(91.0));
    }
}
