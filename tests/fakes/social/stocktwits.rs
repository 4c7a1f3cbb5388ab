//! A fake StockTwits API v2: `/messages/create.json` (form or multipart with a `chart`),
//! `/messages/show/{id}.json`, `/streams/user/{id}.json`, `/account/verify.json`. Errors in
//! StockTwits' envelope (`{"response":{"status":422},"errors":[{"message":…}]}`), 422 for a
//! duplicate within 30 minutes, and `X-RateLimit-*` with a 429 when the hourly budget is spent.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::common::{cut_off, json, now_secs, serve, Recorded};

pub const TOKEN: &str = "st-token";
pub const USER_ID: i64 = 424242;

#[derive(Debug, Clone)]
pub struct StMessage {
    pub id: i64,
    pub body: String,
    pub sentiment: Option<String>,
    pub chart: Option<Vec<u8>>,
    pub created: i64,
    pub likes: i64,
}

pub struct StState {
    pub requests: Vec<Recorded>,
    pub messages: Vec<StMessage>,
    pub tokens: BTreeSet<String>,
    /// Requests per hour; 429 beyond.
    pub hourly_limit: u32,
    pub used: u32,
    pub reset_at: i64,
    pub drop_next_post: bool,
    next_id: i64,
}

#[derive(Clone)]
pub struct FakeStocktwits {
    pub url: String,
    pub state: Arc<Mutex<StState>>,
}

impl FakeStocktwits {
    pub async fn start() -> FakeStocktwits {
        let state = Arc::new(Mutex::new(StState {
            requests: Vec::new(),
            messages: Vec::new(),
            tokens: [TOKEN.to_string()].into(),
            hourly_limit: 400,
            used: 0,
            reset_at: now_secs() + 3600,
            drop_next_post: false,
            next_id: 60_975_379,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        FakeStocktwits {
            url: format!("{}/api/2", serve(router).await),
            state,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn messages(&self) -> Vec<StMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut StState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn st_error(status: u16, message: &str, headers: &[(String, String)]) -> Response {
    json(
        status,
        json!({"response": {"status": status}, "errors": [{"message": message}]}),
        headers,
    )
}

fn message_json(m: &StMessage) -> Value {
    let symbols: Vec<Value> = m
        .body
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('$'))
        .map(|s| json!({"id": 686, "symbol": s.trim_matches(|c: char| !c.is_alphanumeric()), "title": s}))
        .collect();
    let at = chrono::DateTime::from_timestamp(m.created, 0).unwrap_or_default();
    let sentiment = m.sentiment.as_ref().map(|s| {
        let mut c = s.chars();
        let title: String = c
            .next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default();
        json!({ "basic": title })
    });
    json!({"id": m.id, "body": m.body, "created_at": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "user": {"id": USER_ID, "username": "dreamos"}, "symbols": symbols,
        "likes": {"total": m.likes, "user_ids": []}, "conversation": {"replies": 0},
        "reshares": {"reshared_count": 0, "user_ids": []}, "mentioned_users": [],
        "entities": {"sentiment": sentiment}})
}

async fn handle(
    State(state): State<Arc<Mutex<StState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    if !req.token().is_some_and(|t| s.tokens.contains(t)) {
        return st_error(401, "Authentication required", &[]);
    }
    let h = |s: &StState| {
        vec![
            ("x-ratelimit-limit".to_string(), s.hourly_limit.to_string()),
            (
                "x-ratelimit-remaining".to_string(),
                s.hourly_limit.saturating_sub(s.used).to_string(),
            ),
            ("x-ratelimit-reset".to_string(), s.reset_at.to_string()),
        ]
    };
    if s.used >= s.hourly_limit {
        let msg = format!(
            "Rate limit exceeded. Client may not make more than {} requests an hour.",
            s.hourly_limit
        );
        return st_error(429, &msg, &h(&s));
    }
    s.used += 1;
    let path = req.path.strip_prefix("/api/2").unwrap_or("");
    match (req.method.as_str(), path) {
        ("POST", "/messages/create.json") => {
            let headers = h(&s);
            create(&mut s, &req, &headers)
        }
        ("GET", "/account/verify.json") => json(
            200,
            json!({"response": {"status": 200}, "user": {"id": USER_ID, "username": "dreamos"}}),
            &h(&s),
        ),
        ("GET", p) if p.starts_with("/messages/show/") => {
            let id: i64 = p
                .trim_start_matches("/messages/show/")
                .trim_end_matches(".json")
                .parse()
                .unwrap_or(0);
            match s.messages.iter().find(|m| m.id == id) {
                Some(m) => json(
                    200,
                    json!({"response": {"status": 200}, "message": message_json(m)}),
                    &h(&s),
                ),
                None => st_error(404, "Record not found", &h(&s)),
            }
        }
        ("GET", p) if p.starts_with("/streams/user/") => {
            let messages: Vec<Value> = s.messages.iter().rev().map(message_json).collect();
            let cursor = json!({"more": false, "since": 0, "max": 0});
            json(
                200,
                json!({"response": {"status": 200}, "cursor": cursor, "messages": messages}),
                &h(&s),
            )
        }
        _ => st_error(404, "Not found", &h(&s)),
    }
}

fn create(s: &mut StState, req: &Recorded, h: &[(String, String)]) -> Response {
    let p = req.params();
    let body = p.get("body").cloned().unwrap_or_default();
    if body.trim().is_empty() {
        return st_error(422, "Body can't be blank", h);
    }
    let recent = now_secs() - 30 * 60;
    if s.messages
        .iter()
        .any(|m| m.body == body && m.created >= recent)
    {
        return st_error(
            422,
            "Duplicate messages within 30 minutes will not be posted.",
            h,
        );
    }
    let chart = req
        .multipart()
        .into_iter()
        .find(|part| part.name == "chart")
        .map(|part| part.data);
    s.next_id += 1;
    let m = StMessage {
        id: s.next_id,
        body,
        sentiment: p.get("sentiment").cloned(),
        chart,
        created: now_secs(),
        likes: 0,
    };
    let out = json!({"response": {"status": 200}, "message": message_json(&m)});
    s.messages.push(m);
    if std::mem::take(&mut s.drop_next_post) {
        return cut_off(200);
    }
    json(200, out, h)
}
