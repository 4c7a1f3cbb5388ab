//! A fake X API v2: `/2/oauth2/token` (refresh with rotation), `/2/media/upload`,
//! `/2/tweets` (create, delete, read with public_metrics), `/2/users/me`,
//! `/2/users/:id/tweets`. Problem-object errors (401, 403 duplicate, 400, 429), the
//! `x-rate-limit-*` and 24-hour header families, no Retry-After — as the real API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::common::{cut_off, json, now_secs, serve, Recorded};

pub const USER_ID: &str = "2244994945";

#[derive(Debug, Clone)]
pub struct Tweet {
    pub id: String,
    pub text: String,
    pub media_ids: Vec<String>,
    pub created: i64,
    pub likes: i64,
}

pub struct XState {
    pub requests: Vec<Recorded>,
    pub tweets: Vec<Tweet>,
    pub media: BTreeSet<String>,
    /// media id → alt text set through /2/media/metadata.
    pub alt_texts: BTreeMap<String, String>,
    pub access_tokens: BTreeSet<String>,
    pub refresh_tokens: BTreeSet<String>,
    /// 15-minute budget of POST /2/tweets.
    pub post_limit: u32,
    pub posts_used: u32,
    /// 24-hour per-user cap of POST /2/tweets.
    pub daily_limit: u32,
    pub window_reset: i64,
    pub daily_reset: i64,
    pub drop_next_post: bool,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeX {
    pub url: String,
    pub state: Arc<Mutex<XState>>,
}

impl FakeX {
    /// Valid from the start: access token `x-access-0`, refresh token `x-refresh-0`.
    pub async fn start() -> FakeX {
        let now = now_secs();
        let state = Arc::new(Mutex::new(XState {
            requests: Vec::new(),
            tweets: Vec::new(),
            media: BTreeSet::new(),
            alt_texts: BTreeMap::new(),
            access_tokens: ["x-access-0".to_string()].into(),
            refresh_tokens: ["x-refresh-0".to_string()].into(),
            post_limit: 200,
            posts_used: 0,
            daily_limit: 100,
            window_reset: now + 900,
            daily_reset: now + 86_400,
            drop_next_post: false,
            next_id: 1_445_880_548_472_328_192,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        FakeX {
            url: serve(router).await,
            state,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn tweets(&self) -> Vec<Tweet> {
        self.state.lock().unwrap().tweets.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut XState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Every access token stops working (the 2 hours are over).
    pub fn expire_access_tokens(&self) {
        self.with(|s| s.access_tokens.clear());
    }
}

fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({"title": title, "type": "about:blank", "status": status, "detail": detail})
}

fn limit_headers(s: &XState, remaining: u32) -> Vec<(String, String)> {
    let daily_left = s.daily_limit.saturating_sub(s.posts_used);
    vec![
        ("x-rate-limit-limit".into(), s.post_limit.to_string()),
        ("x-rate-limit-remaining".into(), remaining.to_string()),
        ("x-rate-limit-reset".into(), s.window_reset.to_string()),
        (
            "x-user-limit-24hour-limit".into(),
            s.daily_limit.to_string(),
        ),
        (
            "x-user-limit-24hour-remaining".into(),
            daily_left.to_string(),
        ),
        (
            "x-user-limit-24hour-reset".into(),
            s.daily_reset.to_string(),
        ),
        ("x-app-limit-24hour-limit".into(), "1667".into()),
        ("x-app-limit-24hour-remaining".into(), "1600".into()),
        ("x-app-limit-24hour-reset".into(), s.daily_reset.to_string()),
    ]
}

/// Reads get a plain 15-minute budget that never runs out here.
fn read_headers(s: &XState) -> Vec<(String, String)> {
    vec![
        ("x-rate-limit-limit".into(), "900".into()),
        ("x-rate-limit-remaining".into(), "899".into()),
        ("x-rate-limit-reset".into(), s.window_reset.to_string()),
    ]
}

async fn handle(
    State(state): State<Arc<Mutex<XState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    if req.path == "/2/oauth2/token" {
        return token(&mut s, &req);
    }
    if !req.token().is_some_and(|t| s.access_tokens.contains(t)) {
        return json(401, problem(401, "Unauthorized", "Unauthorized"), &[]);
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["2", "media", "upload"]) => upload(&mut s, &req),
        ("POST", ["2", "tweets"]) => create(&mut s, &req),
        ("POST", ["2", "media", "metadata"]) => {
            let body = req.json();
            let id = body["id"].as_str().unwrap_or_default().to_string();
            let alt = body["metadata"]["alt_text"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !s.media.contains(&id) || alt.is_empty() || alt.chars().count() > 1000 {
                let detail = "One or more parameters to your request was invalid.";
                return json(400, problem(400, "Invalid Request", detail), &[]);
            }
            s.alt_texts.insert(id.clone(), alt.clone());
            let data = json!({"id": id, "associated_metadata": {"alt_text": {"text": alt}}});
            json(200, json!({ "data": data }), &read_headers(&s))
        }
        ("DELETE", ["2", "tweets", id]) => {
            let before = s.tweets.len();
            s.tweets.retain(|t| t.id != *id);
            let h = read_headers(&s);
            json(
                200,
                json!({"data": {"deleted": s.tweets.len() < before}}),
                &h,
            )
        }
        ("GET", ["2", "tweets", id]) => match s.tweets.iter().find(|t| t.id == *id) {
            Some(t) => {
                let m = json!({"retweet_count": 0, "reply_count": 1, "like_count": t.likes,
                    "quote_count": 0, "bookmark_count": 0, "impression_count": t.likes * 10});
                let data = json!({"id": t.id, "text": t.text, "edit_history_tweet_ids": [t.id],
                    "public_metrics": m});
                json(200, json!({ "data": data }), &read_headers(&s))
            }
            None => {
                let detail = format!("Could not find tweet with id: [{id}].");
                let err = json!({"value": id, "detail": detail, "title": "Not Found Error",
                    "resource_type": "tweet", "parameter": "id", "resource_id": id,
                    "type": "https://api.twitter.com/2/problems/resource-not-found"});
                json(200, json!({"errors": [err]}), &read_headers(&s))
            }
        },
        ("GET", ["2", "users", "me"]) => json(
            200,
            json!({"data": {"id": USER_ID, "name": "Dream OS", "username": "dreamos"}}),
            &read_headers(&s),
        ),
        ("GET", ["2", "users", _, "tweets"]) => timeline(&s, &req),
        _ => json(
            404,
            problem(404, "Not Found", "no such endpoint in the fake"),
            &[],
        ),
    }
}

fn token(s: &mut XState, req: &Recorded) -> Response {
    let form = req.form();
    let old = form.get("refresh_token").cloned().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || !s.refresh_tokens.remove(&old)
    {
        let body = json!({"error": "invalid_request",
            "error_description": "Value passed for the token was invalid."});
        return json(400, body, &[]);
    }
    s.next_id += 1;
    let (access, refresh) = (
        format!("x-access-{}", s.next_id),
        format!("x-refresh-{}", s.next_id),
    );
    s.access_tokens.insert(access.clone());
    s.refresh_tokens.insert(refresh.clone());
    let body = json!({"token_type": "bearer", "expires_in": 7200, "access_token": access,
        "scope": "tweet.read tweet.write users.read media.write offline.access",
        "refresh_token": refresh});
    json(200, body, &[])
}

fn upload(s: &mut XState, req: &Recorded) -> Response {
    let parts = req.multipart();
    let media = parts
        .iter()
        .find(|p| p.name == "media" && p.filename.is_some());
    let category = parts.iter().find(|p| p.name == "media_category");
    let Some(media) = media.filter(|_| category.is_some()) else {
        let body = json!({"errors": [{"message": "media and media_category are required"}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"});
        return json(400, body, &[]);
    };
    s.next_id += 1;
    let id = s.next_id.to_string();
    s.media.insert(id.clone());
    let body = json!({"data": {"id": id, "media_key": format!("3_{id}"),
        "size": media.data.len(), "expires_after_secs": 86400}});
    json(200, body, &read_headers(s))
}

fn create(s: &mut XState, req: &Recorded) -> Response {
    if s.posts_used >= s.post_limit.min(s.daily_limit) {
        let h = limit_headers(s, s.post_limit.saturating_sub(s.posts_used));
        return json(
            429,
            problem(429, "Too Many Requests", "Too Many Requests"),
            &h,
        );
    }
    let body = req.json();
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let media_ids: Vec<String> = body["media"]["media_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(bad) = media_ids.iter().find(|m| !s.media.contains(*m)) {
        let body = json!({"errors": [{"parameters": {"media.media_ids": [bad]},
            "message": format!("Your media IDs are invalid.")}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"});
        return json(400, body, &[]);
    }
    s.posts_used += 1;
    let h = limit_headers(s, s.post_limit.saturating_sub(s.posts_used));
    if s.tweets.iter().any(|t| t.text == text) {
        let detail = "You are not allowed to create a Tweet with duplicate content.";
        return json(403, problem(403, "Forbidden", detail), &h);
    }
    s.next_id += 1;
    let id = s.next_id.to_string();
    s.tweets.push(Tweet {
        id: id.clone(),
        text: text.clone(),
        media_ids,
        created: now_secs(),
        likes: 0,
    });
    if std::mem::take(&mut s.drop_next_post) {
        return cut_off(201);
    }
    let data = json!({"id": id, "text": text, "edit_history_tweet_ids": [id]});
    json(201, json!({ "data": data }), &h)
}

/// The user's tweets since `start_time`, newest first; text as X returns it: HTML-escaped,
/// with a t.co link appended for attached media.
fn timeline(s: &XState, req: &Recorded) -> Response {
    let since = req
        .query
        .get("start_time")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.timestamp())
        .unwrap_or(0);
    let data: Vec<Value> = s
        .tweets
        .iter()
        .rev()
        .filter(|t| t.created >= since)
        .map(|t| {
            let mut text = t
                .text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            if !t.media_ids.is_empty() {
                text.push_str(" https://t.co/AbCdEf123");
            }
            let created = chrono::DateTime::from_timestamp(t.created, 0).unwrap_or_default();
            json!({"id": t.id, "text": text, "edit_history_tweet_ids": [t.id],
                "created_at": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
        })
        .collect();
    let meta = json!({"result_count": data.len()});
    let body: BTreeMap<&str, Value> = [("data", Value::from(data)), ("meta", meta)].into();
    json(200, json!(body), &read_headers(s))
}
