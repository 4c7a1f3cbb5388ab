//! A fake Reddit: `/api/v1/access_token` (password grant, HTTP Basic client auth, a wrong
//! password answered 200 `{"error":"invalid_grant"}`), `/api/submit` (self, link, image),
//! `/api/comment`, `/api/media/asset.json` plus the S3-style upload it leases, `/api/del`,
//! `/api/info`, `/user/:name/submitted|comments`. Errors inside HTTP 200 (`RATELIMIT`,
//! `SUBREDDIT_NOEXIST`, ...), `X-Ratelimit-Used/Remaining/Reset` on every API answer and a
//! 429 when the request budget is spent.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::common::{basic, cut_off, json, now_secs, serve, Recorded};

pub const CLIENT_ID: &str = "rd-client";
pub const CLIENT_SECRET: &str = "rd-secret";
pub const USERNAME: &str = "dreambot";
pub const PASSWORD: &str = "hunter2";
pub const REFRESH_TOKEN: &str = "rd-refresh";

#[derive(Debug, Clone)]
pub struct Thing {
    pub name: String,
    pub subreddit: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub url: String,
    pub created: i64,
    pub score: i64,
}

pub struct RedditState {
    pub url: String,
    pub requests: Vec<Recorded>,
    pub things: Vec<Thing>,
    pub subreddits: BTreeSet<String>,
    pub tokens: BTreeSet<String>,
    pub uploaded_keys: BTreeSet<String>,
    /// Requests per period; `used` counts up, 429 when it reaches the limit.
    pub limit: u32,
    pub used: u32,
    pub reset_secs: u32,
    /// When set, submits answer 200 with RATELIMIT "Take a break for N minutes".
    pub ratelimit_minutes: Option<u32>,
    pub drop_next_post: bool,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeReddit {
    pub url: String,
    pub state: Arc<Mutex<RedditState>>,
}

impl FakeReddit {
    pub async fn start() -> FakeReddit {
        let state = Arc::new(Mutex::new(RedditState {
            url: String::new(),
            requests: Vec::new(),
            things: Vec::new(),
            subreddits: ["test".to_string(), "dreamos".to_string()].into(),
            tokens: BTreeSet::new(),
            uploaded_keys: BTreeSet::new(),
            limit: 600,
            used: 0,
            reset_secs: 240,
            ratelimit_minutes: None,
            drop_next_post: false,
            next_id: 46_656,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let url = serve(router).await;
        state.lock().unwrap().url = url.clone();
        FakeReddit { url, state }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn things(&self) -> Vec<Thing> {
        self.state.lock().unwrap().things.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut RedditState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn budget(s: &RedditState) -> Vec<(String, String)> {
    let remaining = s.limit.saturating_sub(s.used);
    vec![
        ("x-ratelimit-used".into(), s.used.to_string()),
        ("x-ratelimit-remaining".into(), format!("{remaining}.0")),
        ("x-ratelimit-reset".into(), s.reset_secs.to_string()),
    ]
}

fn errors(list: Value) -> Value {
    json!({"json": {"errors": list}})
}

async fn handle(
    State(state): State<Arc<Mutex<RedditState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    match req.path.as_str() {
        "/api/v1/access_token" => return token(&mut s, &req),
        "/s3-upload" => return s3_upload(&mut s, &req),
        _ => {}
    }
    if !req.token().is_some_and(|t| s.tokens.contains(t)) {
        let mut resp = json(401, json!({"message": "Unauthorized", "error": 401}), &[]);
        let challenge = r#"Bearer realm="reddit", error="invalid_token""#;
        if let Ok(v) = challenge.parse() {
            resp.headers_mut().insert("www-authenticate", v);
        }
        return resp;
    }
    if s.used >= s.limit {
        return json(
            429,
            json!({"message": "Too Many Requests", "error": 429}),
            &budget(&s),
        );
    }
    s.used += 1;
    let h = budget(&s);
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (status, body) = match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["api", "submit"]) => match submit(&mut s, &req) {
            Ok(body) if std::mem::take(&mut s.drop_next_post) => {
                drop(body);
                return cut_off(200);
            }
            Ok(body) | Err(body) => (200, body),
        },
        ("POST", ["api", "comment"]) => (200, comment(&mut s, &req)),
        ("POST", ["api", "media", "asset.json"]) => {
            let form = req.form();
            let file = form.get("filepath").cloned().unwrap_or_default();
            let key = format!("rte_images/{}-{file}", s.next_id);
            s.next_id += 1;
            let action = format!("//{}/s3-upload", s.url.trim_start_matches("http://"));
            let fields = json!([{"name": "key", "value": key}, {"name": "acl", "value": "public-read"},
                {"name": "Content-Type", "value": form.get("mimetype").cloned().unwrap_or_default()},
                {"name": "policy", "value": "eyJleHBpcmF0aW9uIjoi"}]);
            let asset = json!({"asset_id": format!("asset{}", s.next_id), "processing_state": "incomplete",
                "websocket_url": "wss://ws-fake.example/rte_images"});
            (
                200,
                json!({"args": {"action": action, "fields": fields}, "asset": asset}),
            )
        }
        ("POST", ["api", "del"]) => {
            let id = req.form().get("id").cloned().unwrap_or_default();
            s.things.retain(|t| t.name != id);
            (200, json!({}))
        }
        ("GET", ["api", "info"]) => {
            let ids: Vec<String> = req
                .query
                .get("id")
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let items: Vec<&Thing> = s.things.iter().filter(|t| ids.contains(&t.name)).collect();
            (200, listing(&items))
        }
        ("GET", ["user", _, kind]) => {
            let want = if *kind == "comments" { "t1" } else { "t3" };
            let items: Vec<&Thing> = s
                .things
                .iter()
                .rev()
                .filter(|t| t.kind.starts_with(want))
                .collect();
            (200, listing(&items))
        }
        _ => (404, json!({"message": "Not Found", "error": 404})),
    };
    json(status, body, &h)
}

fn token(s: &mut RedditState, req: &Recorded) -> Response {
    if req.header("authorization") != Some(basic(CLIENT_ID, CLIENT_SECRET).as_str()) {
        return json(401, json!({"message": "Unauthorized", "error": 401}), &[]);
    }
    let form = req.form();
    let field = |k: &str| form.get(k).map(String::as_str);
    // Script apps: the password grant. Web apps: a permanent refresh token.
    let ok = match field("grant_type") {
        Some("password") => {
            field("username") == Some(USERNAME) && field("password") == Some(PASSWORD)
        }
        Some("refresh_token") => field("refresh_token") == Some(REFRESH_TOKEN),
        _ => false,
    };
    if !ok {
        return json(200, json!({"error": "invalid_grant"}), &[]);
    }
    s.next_id += 1;
    let token = format!("rd-token-{}", s.next_id);
    s.tokens.insert(token.clone());
    json(
        200,
        json!({"access_token": token, "token_type": "bearer", "expires_in": 3600, "scope": "*"}),
        &[],
    )
}

fn s3_upload(s: &mut RedditState, req: &Recorded) -> Response {
    let parts = req.multipart();
    let key = parts
        .iter()
        .find(|p| p.name == "key")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned());
    let file = parts
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some() && !p.data.is_empty());
    match (key, file) {
        (Some(key), Some(_)) => {
            s.uploaded_keys.insert(key.clone());
            let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}/s3-upload/{key}</Location><Bucket>reddit-uploaded-media</Bucket><Key>{key}</Key></PostResponse>", s.url);
            (
                axum::http::StatusCode::CREATED,
                [("content-type", "application/xml")],
                xml,
            )
                .into_response()
        }
        _ => (
            axum::http::StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidArgument</Code></Error>",
        )
            .into_response(),
    }
}

fn submit(s: &mut RedditState, req: &Recorded) -> Result<Value, Value> {
    let f = req.form();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if let Some(minutes) = s.ratelimit_minutes {
        let msg = format!("Looks like you've been doing that a lot. Take a break for {minutes} minutes before trying again.");
        return Err(errors(json!([["RATELIMIT", msg, "ratelimit"]])));
    }
    if !s.subreddits.contains(&get("sr")) {
        return Err(errors(json!([[
            "SUBREDDIT_NOEXIST",
            "Hmm, that community doesn't exist. Try checking the spelling.",
            "sr"
        ]])));
    }
    if get("title").is_empty() {
        return Err(errors(json!([[
            "NO_TEXT",
            "we need something here",
            "title"
        ]])));
    }
    if get("title").chars().count() > 300 {
        return Err(errors(json!([[
            "TOO_LONG",
            "this is too long (max: 300)",
            "title"
        ]])));
    }
    let kind = get("kind");
    if kind == "image" {
        let key = get("url")
            .rsplit("/s3-upload/")
            .next()
            .unwrap_or("")
            .to_string();
        if !s.uploaded_keys.contains(&key) {
            return Err(errors(json!([[
                "BAD_URL",
                "you should check that url",
                "url"
            ]])));
        }
    }
    if kind == "link"
        && s.things
            .iter()
            .any(|t| t.url == get("url") && t.subreddit == get("sr"))
    {
        return Err(errors(json!([[
            "ALREADY_SUB",
            "that link has already been submitted",
            "url"
        ]])));
    }
    s.next_id += 1;
    let id = format!("{:x}", s.next_id);
    let permalink = format!("/r/{}/comments/{id}/post/", get("sr"));
    s.things.push(Thing {
        name: format!("t3_{id}"),
        subreddit: get("sr"),
        title: get("title"),
        body: get("text"),
        kind: format!("t3:{kind}"),
        url: if kind == "self" {
            format!("https://www.reddit.com{permalink}")
        } else {
            get("url")
        },
        created: now_secs(),
        score: 1,
    });
    if kind == "image" {
        // As the real API: no id; it arrives on the websocket.
        let data = json!({"user_submitted_page": format!("https://www.reddit.com/user/{USERNAME}/submitted/"),
            "websocket_url": "wss://ws-fake.example/submit"});
        return Ok(json!({"json": {"errors": [], "data": data}}));
    }
    let data = json!({"url": format!("https://www.reddit.com{permalink}"), "drafts_count": 0,
        "id": id, "name": format!("t3_{id}")});
    Ok(json!({"json": {"errors": [], "data": data}}))
}

fn comment(s: &mut RedditState, req: &Recorded) -> Value {
    let f = req.form();
    let parent = f.get("thing_id").cloned().unwrap_or_default();
    let Some(post) = s.things.iter().find(|t| t.name == parent).cloned() else {
        return errors(json!([[
            "DELETED_LINK",
            "the link you are commenting on has been deleted",
            "parent"
        ]]));
    };
    s.next_id += 1;
    let id = format!("{:x}", s.next_id);
    let text = f.get("text").cloned().unwrap_or_default();
    s.things.push(Thing {
        name: format!("t1_{id}"),
        subreddit: post.subreddit.clone(),
        title: String::new(),
        body: text.clone(),
        kind: "t1".into(),
        url: String::new(),
        created: now_secs(),
        score: 1,
    });
    let data = json!({"id": id, "name": format!("t1_{id}"), "body": text, "parent_id": parent,
        "permalink": format!("/r/{}/comments/x/post/{id}/", post.subreddit)});
    json!({"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": data}]}}})
}

fn listing(items: &[&Thing]) -> Value {
    let children: Vec<Value> = items
        .iter()
        .map(|t| {
            let kind = &t.kind[..2];
            let id = t.name.split('_').nth(1).unwrap_or("");
            json!({"kind": kind, "data": {"id": id, "name": t.name, "title": t.title, "body": t.body,
                "selftext": t.body, "subreddit": t.subreddit, "score": t.score, "ups": t.score,
                "upvote_ratio": 0.97, "num_comments": 0, "url": t.url,
                "permalink": format!("/r/{}/comments/{id}/post/", t.subreddit),
                "created_utc": t.created as f64}})
        })
        .collect();
    json!({"kind": "Listing", "data": {"children": children, "after": null, "before": null}})
}
