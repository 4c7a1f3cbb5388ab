//! A fake LinkedIn: `/rest/posts` (201 with an empty body and the id in `x-restli-id`;
//! list by author; delete → 204), `/rest/images?action=initializeUpload` and the upload URL
//! it hands out, `/rest/socialActions/{urn}`, `/oauth/v2/accessToken` (refresh grant).
//! Requires `LinkedIn-Version` (426 otherwise) and answers a 429 with no headers at all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::common::{cut_off, json, serve, Recorded};

pub const AUTHOR: &str = "urn:li:person:abc123";
pub const TOKEN: &str = "li-token-0";
pub const REFRESH: &str = "li-refresh-0";

#[derive(Debug, Clone)]
pub struct LiPost {
    pub urn: String,
    pub body: Value,
    pub created_ms: i64,
    pub likes: i64,
}

pub struct LinkedinState {
    pub url: String,
    pub requests: Vec<Recorded>,
    pub posts: Vec<LiPost>,
    pub tokens: BTreeSet<String>,
    pub refresh_tokens: BTreeSet<String>,
    /// image urn → uploaded bytes (None until the PUT arrives).
    pub images: BTreeMap<String, Option<Vec<u8>>>,
    /// Posts allowed today; 429 beyond.
    pub daily_posts: u32,
    pub drop_next_post: bool,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeLinkedin {
    pub url: String,
    pub state: Arc<Mutex<LinkedinState>>,
}

impl FakeLinkedin {
    pub async fn start() -> FakeLinkedin {
        let state = Arc::new(Mutex::new(LinkedinState {
            url: String::new(),
            requests: Vec::new(),
            posts: Vec::new(),
            tokens: [TOKEN.to_string()].into(),
            refresh_tokens: [REFRESH.to_string()].into(),
            images: BTreeMap::new(),
            daily_posts: 150,
            drop_next_post: false,
            next_id: 7_100_000_000,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let url = serve(router).await;
        state.lock().unwrap().url = url.clone();
        FakeLinkedin { url, state }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn posts(&self) -> Vec<LiPost> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut LinkedinState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn li_error(status: u16, service: i64, code: &str, message: &str) -> Response {
    json(
        status,
        json!({"status": status, "serviceErrorCode": service, "code": code, "message": message}),
        &[],
    )
}

fn decode_urn(s: &str) -> String {
    s.replace("%3A", ":").replace("%3a", ":")
}

async fn handle(
    State(state): State<Arc<Mutex<LinkedinState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    if req.path == "/oauth/v2/accessToken" {
        return token(&mut s, &req);
    }
    if !req.token().is_some_and(|t| s.tokens.contains(t)) {
        return li_error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token");
    }
    if let Some(id) = req.path.strip_prefix("/dms-uploads/") {
        let urn = format!("urn:li:image:{id}");
        return match s.images.get_mut(&urn) {
            Some(slot) if req.method == "PUT" => {
                *slot = Some(req.body.clone());
                (axum::http::StatusCode::CREATED, "").into_response()
            }
            _ => li_error(404, 0, "NOT_FOUND", "upload URL not found"),
        };
    }
    let version = req.header("linkedin-version").unwrap_or("");
    if version != "202601" {
        return li_error(
            426,
            0,
            "NONEXISTENT_VERSION",
            &format!("Requested version {version} is not active"),
        );
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["rest", "images"])
            if req.query.get("action").map(String::as_str) == Some("initializeUpload") =>
        {
            s.next_id += 1;
            let id = format!("C4E10AQ{}", s.next_id);
            s.images.insert(format!("urn:li:image:{id}"), None);
            let value = json!({"uploadUrlExpiresAt": 1_900_000_000_000i64,
                "uploadUrl": format!("{}/dms-uploads/{id}", s.url), "image": format!("urn:li:image:{id}")});
            json(200, json!({ "value": value }), &[])
        }
        ("POST", ["rest", "posts"]) => create(&mut s, &req),
        ("GET", ["rest", "posts"]) => {
            let author = req.query.get("author").cloned().unwrap_or_default();
            let elements: Vec<Value> = s
                .posts
                .iter()
                .rev()
                .filter(|p| p.body["author"] == author.as_str())
                .map(|p| {
                    let mut v = p.body.clone();
                    v["id"] = p.urn.clone().into();
                    v["createdAt"] = p.created_ms.into();
                    v
                })
                .collect();
            json(
                200,
                json!({"elements": elements, "paging": {"start": 0, "count": 20}}),
                &[],
            )
        }
        ("DELETE", ["rest", "posts", urn]) => {
            // Idempotent, as the real API: deleting again is also 204.
            let urn = decode_urn(urn);
            s.posts.retain(|p| p.urn != urn);
            (axum::http::StatusCode::NO_CONTENT, "").into_response()
        }
        ("GET", ["rest", "socialActions", urn]) => {
            let urn = decode_urn(urn);
            match s.posts.iter().find(|p| p.urn == urn) {
                Some(p) => json(
                    200,
                    json!({"target": urn, "likesSummary": {"totalLikes": p.likes, "likedByCurrentUser": false},
                    "commentsSummary": {"aggregatedTotalComments": 3, "totalFirstLevelComments": 3}}),
                    &[],
                ),
                None => li_error(404, 0, "NOT_FOUND", &format!("Not found: {urn}")),
            }
        }
        _ => li_error(404, 0, "NOT_FOUND", "no such resource in the fake"),
    }
}

fn create(s: &mut LinkedinState, req: &Recorded) -> Response {
    if s.daily_posts == 0 {
        // No Retry-After, no rate-limit headers: LinkedIn sends none.
        return li_error(
            429,
            101,
            "TOO_MANY_REQUESTS",
            "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
        );
    }
    let body = req.json();
    if body["author"].as_str().is_none() || body["commentary"].as_str().is_none() {
        return li_error(
            422,
            100,
            "UNPROCESSABLE_ENTITY",
            "/author and /commentary are required",
        );
    }
    let single = body["content"]["media"]["id"].as_str().into_iter();
    let multi = body["content"]["multiImage"]["images"]
        .as_array()
        .into_iter()
        .flatten();
    for image in single.chain(multi.filter_map(|i| i["id"].as_str())) {
        if !matches!(s.images.get(image), Some(Some(_))) {
            return li_error(
                422,
                100,
                "UNPROCESSABLE_ENTITY",
                &format!("Image {image} has not been uploaded"),
            );
        }
    }
    if let Some(dup) = s
        .posts
        .iter()
        .find(|p| p.body["commentary"] == body["commentary"])
    {
        return li_error(
            422,
            0,
            "DUPLICATE_POST",
            &format!("Content is a duplicate of {}", dup.urn),
        );
    }
    s.daily_posts -= 1;
    s.next_id += 1;
    let urn = format!("urn:li:share:{}", s.next_id);
    s.posts.push(LiPost {
        urn: urn.clone(),
        body,
        created_ms: chrono::Utc::now().timestamp_millis(),
        likes: 0,
    });
    if std::mem::take(&mut s.drop_next_post) {
        return cut_off(201);
    }
    let mut resp = (axum::http::StatusCode::CREATED, "").into_response();
    if let Ok(v) = urn.parse() {
        resp.headers_mut().insert("x-restli-id", v);
    }
    resp
}

fn token(s: &mut LinkedinState, req: &Recorded) -> Response {
    let f = req.form();
    let old = f.get("refresh_token").cloned().unwrap_or_default();
    let ok = f.get("grant_type").map(String::as_str) == Some("refresh_token")
        && f.get("client_secret").map(String::as_str) == Some("li-secret")
        && s.refresh_tokens.contains(&old);
    if !ok {
        let body = json!({"error": "invalid_request", "error_description": "The provided authorization grant or refresh token is invalid, expired or revoked."});
        return json(400, body, &[]);
    }
    s.next_id += 1;
    let access = format!("li-token-{}", s.next_id);
    s.tokens.insert(access.clone());
    // The refresh token stays the same and its 365-day lifetime does not reset.
    let body = json!({"access_token": access, "expires_in": 5_184_000, "refresh_token": old,
        "refresh_token_expires_in": 31_000_000, "scope": "openid,profile,w_member_social"});
    json(200, body, &[])
}
