//! Shared parts of the social platform fakes: the request log, body parsing (form,
//! multipart, JSON), serving an axum router on 127.0.0.1, a response whose body is cut off
//! (a post accepted but its answer lost), and an in-memory `TokenStore` for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dreamos::clients::social::{AccountSpec, Platform, TokenStore, Tokens};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;

/// One request as a fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Recorded {
        Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: parse_form(uri.query().unwrap_or("")),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The bearer (or `OAuth`) token of the Authorization header.
    pub fn token(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        v.split_once(' ').map(|(_, t)| t)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn form(&self) -> BTreeMap<String, String> {
        parse_form(&self.text())
    }

    /// Query and form parameters together (Meta accepts either).
    pub fn params(&self) -> BTreeMap<String, String> {
        let mut p = self.query.clone();
        p.extend(self.form());
        for part in self.multipart() {
            if part.filename.is_none() {
                p.insert(part.name, String::from_utf8_lossy(&part.data).into_owned());
            }
        }
        p
    }

    pub fn multipart(&self) -> Vec<FormPart> {
        let Some(ct) = self.header("content-type") else {
            return Vec::new();
        };
        let Some((_, boundary)) = ct.split_once("boundary=") else {
            return Vec::new();
        };
        parse_multipart(&self.body, boundary.trim_matches('"'))
    }
}

#[derive(Debug, Clone)]
pub struct FormPart {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

fn parse_multipart(body: &[u8], boundary: &str) -> Vec<FormPart> {
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(pos) = find(rest, &delim) {
        rest = &rest[pos + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_trim = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let Some(head_end) = find(rest_trim, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest_trim[..head_end]).into_owned();
        let data_start = &rest_trim[head_end + 4..];
        let end = find(data_start, &delim).unwrap_or(data_start.len());
        let data = data_start[..end]
            .strip_suffix(b"\r\n")
            .unwrap_or(&data_start[..end]);
        let attr = |key: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        parts.push(FormPart {
            name: attr("name").unwrap_or_default(),
            filename: attr("filename"),
            data: data.to_vec(),
        });
        rest = data_start;
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `a=1&b=x+y%21` into a map.
pub fn parse_form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serve `router` on 127.0.0.1 (a free port) for the rest of the test; returns the base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A JSON response with a status and extra headers.
pub fn json(status: u16, body: Value, headers: &[(String, String)]) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    add_headers(&mut resp, headers);
    resp
}

pub fn add_headers(resp: &mut Response, headers: &[(String, String)]) {
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
}

/// The status line and headers go out, then the body breaks off: the platform acted, but
/// the client never learns the result (what a crash or a dropped connection looks like).
pub fn cut_off(status: u16) -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by the fake"))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Tokens kept in memory, with every save recorded (tests assert rotation was stored).
#[derive(Default)]
pub struct MemTokens {
    pub map: Mutex<HashMap<String, Tokens>>,
    pub saves: Mutex<Vec<(String, Tokens)>>,
}

impl MemTokens {
    pub fn new() -> Arc<MemTokens> {
        Arc::new(MemTokens::default())
    }

    pub fn saved(&self) -> Vec<(String, Tokens)> {
        self.saves.lock().unwrap().clone()
    }
}

impl TokenStore for MemTokens {
    fn load(&self, account: &str) -> BoxFuture<'_, Result<Option<Tokens>, String>> {
        let t = self.map.lock().unwrap().get(account).cloned();
        async move { Ok(t) }.boxed()
    }

    fn save(&self, account: &str, tokens: Tokens) -> BoxFuture<'_, Result<(), String>> {
        self.map
            .lock()
            .unwrap()
            .insert(account.to_string(), tokens.clone());
        self.saves
            .lock()
            .unwrap()
            .push((account.to_string(), tokens));
        async { Ok(()) }.boxed()
    }
}

/// An account pointed at a fake.
pub fn spec(platform: Platform, base_url: &str, creds: &[(&str, &str)]) -> AccountSpec {
    AccountSpec {
        name: format!("test-{platform}"),
        platform,
        base_url: base_url.to_string(),
        auth_url: None,
        credentials: creds
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The `Authorization: Basic` value for `user:pass` (standard base64, padded).
pub fn basic(user: &str, pass: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// A Graph API error object (Facebook and Instagram).
pub fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    headers: &[(String, String)],
) -> Response {
    let mut e = serde_json::json!({"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbCdEfGhIjK"});
    if let Some(s) = subcode {
        e["error_subcode"] = s.into();
    }
    json(status, serde_json::json!({ "error": e }), headers)
}

/// Meta's usage headers: JSON percentages, and the BUC header for `object_id` with the
/// minutes until access returns (0 when not throttled).
pub fn meta_usage(object_id: &str, percent: u32, regain_minutes: u32) -> Vec<(String, String)> {
    let app = serde_json::json!({"call_count": percent, "total_time": percent / 2, "total_cputime": percent / 2});
    let buc = serde_json::json!({ object_id: [{"type": "pages", "call_count": percent,
        "total_cputime": percent / 2, "total_time": percent / 2,
        "estimated_time_to_regain_access": regain_minutes}]});
    vec![
        ("x-app-usage".into(), app.to_string()),
        ("x-page-usage".into(), app.to_string()),
        ("x-business-use-case-usage".into(), buc.to_string()),
    ]
}

/// The token from `Authorization: Bearer` or an `access_token` parameter (Graph takes both).
pub fn graph_token(req: &Recorded) -> Option<String> {
    req.token()
        .map(str::to_string)
        .or_else(|| req.params().get("access_token").cloned())
}
