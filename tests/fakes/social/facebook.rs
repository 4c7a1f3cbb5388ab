//! A fake Facebook Graph API for a Page under `/v24.0`: `/{page}/feed`, `/{page}/photos`
//! (public `url` or multipart `source`), `DELETE /{post}`, `GET /{post}?fields=...`,
//! `/{page}/posts`, `/debug_token`. Graph error objects (190 expired token, 506 duplicate,
//! 100 invalid parameter, 32 page throttling) and the JSON usage headers on every answer.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::common::{
    cut_off, graph_error, graph_token, json, meta_usage, now_secs, serve, Recorded,
};

pub const PAGE_ID: &str = "101010";
pub const PAGE_TOKEN: &str = "fb-page-token";
pub const APP_TOKEN: &str = "777|shh";

#[derive(Debug, Clone)]
pub struct FbPost {
    pub id: String,
    pub message: String,
    pub link: Option<String>,
    pub photo: Option<Vec<u8>>,
    pub photo_url: Option<String>,
    /// Unpublished photos attached by `attached_media` (multi-photo posts).
    pub attached: Vec<String>,
    pub created: i64,
    pub reactions: i64,
}

pub struct FbState {
    pub requests: Vec<Recorded>,
    pub posts: Vec<FbPost>,
    /// Photos uploaded with `published=false`, waiting to be attached.
    pub unpublished: BTreeSet<String>,
    pub tokens: BTreeSet<String>,
    /// The usage percentage reported in X-App-Usage / BUC headers.
    pub usage_percent: u32,
    /// When set, calls fail with code 32 and BUC `estimated_time_to_regain_access`.
    pub throttled_minutes: Option<u32>,
    /// Calls the Page may make before throttling starts (usage reaches 100%); then
    /// `throttled_minutes` becomes 60.
    pub page_call_limit: Option<u32>,
    pub calls: u32,
    /// What debug_token reports (0 = never expires).
    pub token_expires_at: i64,
    pub drop_next_post: bool,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeFacebook {
    pub url: String,
    pub state: Arc<Mutex<FbState>>,
}

impl FakeFacebook {
    pub async fn start() -> FakeFacebook {
        let state = Arc::new(Mutex::new(FbState {
            requests: Vec::new(),
            posts: Vec::new(),
            unpublished: BTreeSet::new(),
            tokens: [PAGE_TOKEN.to_string()].into(),
            usage_percent: 12,
            throttled_minutes: None,
            page_call_limit: None,
            calls: 0,
            token_expires_at: 0,
            drop_next_post: false,
            next_id: 5_550_000,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        FakeFacebook {
            url: serve(router).await,
            state,
        }
    }

    /// The versioned base URL, as configured for a real account.
    pub fn base(&self) -> String {
        format!("{}/v24.0", self.url)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn posts(&self) -> Vec<FbPost> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FbState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

async fn handle(
    State(state): State<Arc<Mutex<FbState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    if let Some(limit) = s.page_call_limit {
        s.calls += 1;
        s.usage_percent = (s.calls * 100 / limit.max(1)).min(100);
        if s.calls > limit {
            s.throttled_minutes = Some(60);
        }
    }
    let h = meta_usage(PAGE_ID, s.usage_percent, s.throttled_minutes.unwrap_or(0));
    // debug_token also takes an app token, `app_id|app_secret`.
    let app_token =
        req.path.ends_with("/debug_token") && graph_token(&req).as_deref() == Some(APP_TOKEN);
    if !app_token && !graph_token(&req).is_some_and(|t| s.tokens.contains(&t)) {
        let msg = "Error validating access token: Session has expired on Tuesday, 24-Nov-26 09:00:00 PST.";
        return graph_error(400, 190, Some(463), msg, &h);
    }
    if s.throttled_minutes.is_some() {
        return graph_error(400, 32, None, "(#32) Page request limit reached", &h);
    }
    let Some(path) = req.path.strip_prefix("/v24.0/") else {
        return graph_error(
            400,
            2635,
            None,
            "You are calling a deprecated version of the Ads API.",
            &h,
        );
    };
    let segs: Vec<&str> = path.split('/').collect();
    let p = req.params();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", [page, "feed"]) if *page == PAGE_ID => {
            let message = p.get("message").cloned().unwrap_or_default();
            let mut attached = Vec::new();
            for (_, v) in p.iter().filter(|(k, _)| k.starts_with("attached_media[")) {
                let fbid = serde_json::from_str::<Value>(v)
                    .ok()
                    .and_then(|v| v["media_fbid"].as_str().map(str::to_string));
                match fbid.filter(|id| s.unpublished.remove(id)) {
                    Some(id) => attached.push(id),
                    None => {
                        return graph_error(400, 100, None, "(#100) Invalid attached_media", &h)
                    }
                }
            }
            let post = NewPost {
                message,
                link: p.get("link").cloned(),
                attached,
                ..NewPost::default()
            };
            create(&mut s, &h, post)
        }
        ("POST", [page, "photos"]) if *page == PAGE_ID => {
            let caption = p.get("caption").cloned().unwrap_or_default();
            let source = req
                .multipart()
                .into_iter()
                .find(|part| part.name == "source")
                .map(|part| part.data);
            let url = p.get("url").cloned();
            if source.is_none() && url.is_none() {
                return graph_error(400, 324, None, "(#324) Requires upload file", &h);
            }
            if p.get("published").map(String::as_str) == Some("false") {
                s.next_id += 1;
                let id = s.next_id.to_string();
                s.unpublished.insert(id.clone());
                return json(200, json!({ "id": id }), &h);
            }
            let post = NewPost {
                message: caption,
                photo: source,
                photo_url: url,
                ..NewPost::default()
            };
            create(&mut s, &h, post)
        }
        ("GET", ["debug_token"]) => {
            let data = json!({"app_id": "777", "type": "PAGE", "application": "dreamos",
                "expires_at": s.token_expires_at, "is_valid": true, "scopes": ["pages_manage_posts"]});
            json(200, json!({ "data": data }), &h)
        }
        ("GET", [page, "posts"]) if *page == PAGE_ID => {
            let since: i64 = p.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
            let data: Vec<Value> = s.posts.iter().rev().filter(|x| x.created >= since).map(|x| {
                let at = chrono::DateTime::from_timestamp(x.created, 0).unwrap_or_default();
                json!({"id": x.id, "message": x.message, "created_time": at.format("%Y-%m-%dT%H:%M:%S+0000").to_string()})
            }).collect();
            json(200, json!({"data": data, "paging": {}}), &h)
        }
        ("DELETE", [id]) => {
            let before = s.posts.len();
            s.posts.retain(|x| x.id != *id);
            if s.posts.len() == before {
                let msg =
                    format!("Unsupported delete request. Object with ID '{id}' does not exist");
                return graph_error(400, 100, Some(33), &msg, &h);
            }
            json(200, json!({"success": true}), &h)
        }
        ("GET", [id]) => match s.posts.iter().find(|x| x.id == *id) {
            Some(x) => {
                let body = json!({"id": x.id,
                    "reactions": {"data": [], "summary": {"total_count": x.reactions, "viewer_reaction": "NONE"}},
                    "comments": {"data": [], "summary": {"order": "ranked", "total_count": 2, "can_comment": true}}});
                json(200, body, &h)
            }
            None => {
                let msg = format!("Unsupported get request. Object with ID '{id}' does not exist");
                graph_error(400, 100, Some(33), &msg, &h)
            }
        },
        _ => graph_error(400, 100, None, "Unknown path components", &h),
    }
}

#[derive(Default)]
struct NewPost {
    message: String,
    link: Option<String>,
    photo: Option<Vec<u8>>,
    photo_url: Option<String>,
    attached: Vec<String>,
}

fn create(s: &mut FbState, h: &[(String, String)], new: NewPost) -> Response {
    let NewPost {
        message,
        link,
        photo,
        photo_url,
        attached,
    } = new;
    if message.is_empty()
        && link.is_none()
        && photo.is_none()
        && photo_url.is_none()
        && attached.is_empty()
    {
        return graph_error(400, 100, None, "(#100) Invalid parameter", h);
    }
    if !message.is_empty() && s.posts.iter().any(|p| p.message == message) {
        return graph_error(400, 506, None, "(#506) Duplicate status message", h);
    }
    s.next_id += 1;
    let post_id = format!("{PAGE_ID}_{}", s.next_id);
    let is_photo = photo.is_some() || photo_url.is_some();
    s.posts.push(FbPost {
        id: post_id.clone(),
        message,
        link,
        photo,
        photo_url,
        attached,
        created: now_secs(),
        reactions: 0,
    });
    if std::mem::take(&mut s.drop_next_post) {
        return cut_off(200);
    }
    if is_photo {
        s.next_id += 1;
        return json(
            200,
            json!({"id": s.next_id.to_string(), "post_id": post_id}),
            h,
        );
    }
    json(200, json!({ "id": post_id }), h)
}
