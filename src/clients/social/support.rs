//! Plumbing shared by the platform clients: one HTTP exchange read fully into [`Raw`],
//! errors built from it, rate-limit header parsing helpers, a hand-built multipart body
//! (so `--dry-run` can show it byte for byte, with file contents summarised) and previews
//! with secrets masked.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;
use serde_json::Value;

use super::{ErrorKind, Platform, RateInfo, RequestPreview, SocialError};
use crate::store::Millis;

/// The wall clock in milliseconds: platforms speak in wall-clock times (reset epochs,
/// "5 minutes from now"), so retry times are computed against it, not a monotonic clock.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// One response, read to the end: status, headers and body text.
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Raw {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Value {
        if self.body.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_f64(&self, name: &str) -> Option<f64> {
        self.header(name).and_then(|v| v.trim().parse().ok())
    }

    /// `Retry-After` as an absolute time: seconds (possibly fractional) or an HTTP date.
    pub fn retry_after(&self) -> Option<Millis> {
        let v = self.header("retry-after")?;
        if let Ok(secs) = v.trim().parse::<f64>() {
            return Some(now_millis() + (secs * 1000.0) as Millis);
        }
        chrono::DateTime::parse_from_rfc2822(v.trim())
            .ok()
            .map(|d| d.timestamp_millis())
    }
}

/// Send one request and read the whole answer. Transport failures, including a body cut
/// off mid-way, are `Network`: the platform may or may not have acted.
pub async fn send(platform: Platform, op: &str, rb: RequestBuilder) -> Result<Raw, SocialError> {
    let resp = rb
        .send()
        .await
        .map_err(|e| error(platform, ErrorKind::Network, op, None, transport(&e), None))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| {
        let msg = format!("reading the response body: {}", transport(&e));
        error(platform, ErrorKind::Network, op, Some(status), msg, None)
    })?;
    Ok(Raw {
        status,
        headers,
        body,
    })
}

/// reqwest's error with its sources, which carry the useful part ("connection refused").
fn transport(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

pub fn error(
    platform: Platform,
    kind: ErrorKind,
    op: &str,
    status: Option<u16>,
    message: impl Into<String>,
    code: Option<String>,
) -> SocialError {
    SocialError {
        platform,
        kind,
        op: op.to_string(),
        status,
        message: message.into(),
        code,
        retry_at: None,
    }
}

/// The kind a status implies when the body says nothing more specific.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Auth,
        403 => ErrorKind::Auth,
        429 => ErrorKind::RateLimited,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Invalid,
    }
}

/// An answer whose body is not what the platform documents: name what was missing.
pub fn unexpected(platform: Platform, op: &str, raw: &Raw, what: &str) -> SocialError {
    let body: String = raw.body.chars().take(200).collect();
    error(
        platform,
        ErrorKind::Unavailable,
        op,
        Some(raw.status),
        format!("unexpected response, no {what}: {body}"),
        None,
    )
}

/// A JSON value as i64 whether it came as a number or a numeric string.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A budget from a `limit`/`remaining`/`reset-epoch-seconds` header triple, if present.
pub fn epoch_triple(raw: &Raw, bucket: &str, prefix: &str) -> Option<RateInfo> {
    let limit = raw.header_f64(&format!("{prefix}-limit"));
    let remaining = raw.header_f64(&format!("{prefix}-remaining"));
    let reset = raw.header_f64(&format!("{prefix}-reset"));
    if limit.is_none() && remaining.is_none() && reset.is_none() {
        return None;
    }
    Some(RateInfo {
        bucket: bucket.to_string(),
        limit,
        remaining,
        reset_at: reset.map(|s| (s * 1000.0) as Millis),
        usage_percent: None,
    })
}

/// Text normalised for matching a post we sent against what the platform shows: URLs
/// dropped (X rewrites them to t.co), whitespace collapsed, NFC.
pub fn match_key(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfc()
        .collect::<String>()
        .split_whitespace()
        .filter(|w| !(w.starts_with("http://") || w.starts_with("https://")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `multipart/form-data` body built by hand, so a preview shows exactly these bytes
/// with each file's contents replaced by a one-line summary.
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String, String),
    File {
        field: String,
        filename: String,
        mime: String,
        bytes: Arc<Vec<u8>>,
    },
}

/// Fixed so previews are stable; it cannot occur in a text field we send (checked below).
const BOUNDARY: &str = "dreamos-5f3c9a1e7b2d4c68";

impl Multipart {
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.parts.push(Part::Text(name.into(), value.into()));
        self
    }

    pub fn file(mut self, field: &str, filename: &str, mime: &str, bytes: Arc<Vec<u8>>) -> Self {
        self.parts.push(Part::File {
            field: field.into(),
            filename: filename.into(),
            mime: mime.into(),
            bytes,
        });
        self
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }

    /// The body; `summarise` replaces file contents with `<N bytes of MIME>` for previews.
    pub fn body(&self, summarise: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match part {
                Part::Text(name, value) => {
                    let value = value.replace(BOUNDARY, "");
                    out.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                        )
                        .as_bytes(),
                    );
                }
                Part::File {
                    field,
                    filename,
                    mime,
                    bytes,
                } => {
                    out.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{field}\"; filename=\"{}\"\r\nContent-Type: {mime}\r\n\r\n",
                            filename.replace('"', "")
                        )
                        .as_bytes(),
                    );
                    if summarise {
                        out.extend_from_slice(file_summary(bytes.len(), mime).as_bytes());
                    } else {
                        out.extend_from_slice(bytes);
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    pub fn attach(&self, rb: RequestBuilder, summarise: bool) -> RequestBuilder {
        rb.header(reqwest::header::CONTENT_TYPE, self.content_type())
            .body(self.body(summarise))
    }
}

pub fn file_summary(len: usize, mime: &str) -> String {
    format!("<{len} bytes of {mime}>")
}

/// Query and form keys whose values are secrets.
const SECRET_KEYS: [&str; 8] = [
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
    "input_token",
    "fb_exchange_token",
    "code_verifier",
    "code",
];

/// The request a builder would send, with secrets masked.
pub fn preview_of(rb: RequestBuilder) -> RequestPreview {
    let Ok(req) = rb.build() else {
        return RequestPreview {
            method: "?".into(),
            url: "(the request could not be built)".into(),
            headers: Vec::new(),
            body: String::new(),
        };
    };
    let mut url = req.url().clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), mask_pair(k, v))));
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = v.to_str().unwrap_or("<binary>");
            let v = if k == reqwest::header::AUTHORIZATION {
                match v.split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} ****"),
                    None => "****".to_string(),
                }
            } else {
                v.to_string()
            };
            (k.as_str().to_string(), v)
        })
        .collect();
    let bytes = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
    let body = match std::str::from_utf8(bytes) {
        Ok(text) if is_form(&req) => mask_form(text),
        Ok(text) => text.to_string(),
        Err(_) => file_summary(bytes.len(), "binary data"),
    };
    RequestPreview {
        method: req.method().to_string(),
        url: url.to_string(),
        headers,
        body,
    }
}

fn is_form(req: &reqwest::Request) -> bool {
    req.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn mask_pair<'a>(key: &str, value: &'a str) -> &'a str {
    if SECRET_KEYS.contains(&key) {
        "****"
    } else {
        value
    }
}

fn mask_form(body: &str) -> String {
    body.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=****"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_mask_tokens_in_headers_query_and_form() {
        let http = reqwest::Client::new();
        let rb = http
            .post("https://graph.example/v1/me?access_token=SECRET&fields=id")
            .bearer_auth("SECRET")
            .form(&[("grant_type", "password"), ("password", "SECRET")]);
        let p = preview_of(rb);
        let all = format!("{p:?}");
        assert!(!all.contains("SECRET"), "{all}");
        assert!(p.url.contains("fields=id"), "{}", p.url);
        assert!(p.body.starts_with("grant_type=password&password=****"));
        assert!(p
            .headers
            .contains(&("authorization".into(), "Bearer ****".into())));
    }

    #[test]
    fn multipart_previews_summarise_files() {
        let m = Multipart::default().text("body", "hi").file(
            "chart",
            "c.png",
            "image/png",
            Arc::new(vec![0u8; 10]),
        );
        let text = String::from_utf8(m.body(true)).unwrap();
        assert!(text.contains("<10 bytes of image/png>"), "{text}");
        assert!(text.contains("name=\"body\"\r\n\r\nhi\r\n"), "{text}");
        let summary = "<10 bytes of image/png>".len();
        assert_eq!(m.body(true).len() + 10, m.body(false).len() + summary);
    }

    #[test]
    fn match_key_ignores_urls_and_spacing() {
        assert_eq!(
            match_key("new post  https://x.com/a\n done"),
            match_key("new post https://t.co/zzz done")
        );
    }
}
