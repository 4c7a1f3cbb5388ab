//! A fake Instagram Graph API under `/v24.0`: containers (`/{user}/media`, carousel
//! children), container status that answers `IN_PROGRESS` a configurable number of times
//! before `FINISHED`, `/{user}/media_publish` with a daily publishing quota (error 9 /
//! 2207042), `/{user}/media`, `/{media}/insights`, and `/refresh_access_token`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::common::{
    cut_off, graph_error, graph_token, json, meta_usage, now_secs, serve, Recorded,
};

pub const IG_USER: &str = "17841400000000001";
pub const IG_TOKEN: &str = "ig-token-0";

#[derive(Debug, Clone)]
pub struct Container {
    pub image_url: String,
    pub caption: String,
    pub children: Vec<String>,
    pub polls_left: u32,
    pub published: bool,
}

#[derive(Debug, Clone)]
pub struct IgMedia {
    pub id: String,
    pub caption: String,
    pub created: i64,
    pub likes: i64,
}

pub struct IgState {
    pub requests: Vec<Recorded>,
    pub containers: BTreeMap<String, Container>,
    pub media: Vec<IgMedia>,
    pub tokens: BTreeSet<String>,
    /// Status polls answered IN_PROGRESS before FINISHED.
    pub in_progress_polls: u32,
    /// When set, containers end in this status (ERROR, EXPIRED) instead.
    pub container_fails: Option<String>,
    /// Publishes allowed per 24 h (Meta's docs say 25, 50 or 100).
    pub quota_total: u32,
    pub quota_used: u32,
    pub drop_next_post: bool,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeInstagram {
    pub url: String,
    pub state: Arc<Mutex<IgState>>,
}

impl FakeInstagram {
    pub async fn start() -> FakeInstagram {
        let state = Arc::new(Mutex::new(IgState {
            requests: Vec::new(),
            containers: BTreeMap::new(),
            media: Vec::new(),
            tokens: [IG_TOKEN.to_string()].into(),
            in_progress_polls: 2,
            container_fails: None,
            quota_total: 100,
            quota_used: 0,
            drop_next_post: false,
            next_id: 17_900_000_000,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        FakeInstagram {
            url: serve(router).await,
            state,
        }
    }

    pub fn base(&self) -> String {
        format!("{}/v24.0", self.url)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn media(&self) -> Vec<IgMedia> {
        self.state.lock().unwrap().media.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut IgState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

async fn handle(
    State(state): State<Arc<Mutex<IgState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Recorded::new(&method, &uri, &headers, &body);
    let mut s = state.lock().unwrap();
    s.requests.push(req.clone());
    let h = meta_usage(IG_USER, 5, 0);
    let token = graph_token(&req);
    if !token.as_ref().is_some_and(|t| s.tokens.contains(t)) {
        return graph_error(
            400,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
            &h,
        );
    }
    if req.path == "/refresh_access_token" {
        if req.query.get("grant_type").map(String::as_str) != Some("ig_refresh_token") {
            return graph_error(400, 100, None, "Unsupported grant type", &h);
        }
        s.next_id += 1;
        let new = format!("ig-token-{}", s.next_id);
        if let Some(old) = &token {
            s.tokens.remove(old);
        }
        s.tokens.insert(new.clone());
        return json(
            200,
            json!({"access_token": new, "token_type": "bearer", "expires_in": 5_183_944}),
            &h,
        );
    }
    let Some(path) = req.path.strip_prefix("/v24.0/") else {
        return graph_error(400, 100, None, "Unknown path components", &h);
    };
    let segs: Vec<&str> = path.split('/').collect();
    let p = req.params();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", [user, "media"]) if *user == IG_USER => {
            let children: Vec<String> = p
                .get("children")
                .map(|c| c.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let image_url = p.get("image_url").cloned().unwrap_or_default();
            if image_url.is_empty() && children.is_empty() {
                return graph_error(400, 100, None, "The parameter image_url is required", &h);
            }
            s.next_id += 1;
            let id = s.next_id.to_string();
            let polls_left = s.in_progress_polls;
            let caption = p.get("caption").cloned().unwrap_or_default();
            s.containers.insert(
                id.clone(),
                Container {
                    image_url,
                    caption,
                    children,
                    polls_left,
                    published: false,
                },
            );
            json(200, json!({ "id": id }), &h)
        }
        ("POST", [user, "media_publish"]) if *user == IG_USER => {
            publish(&mut s, &h, p.get("creation_id"))
        }
        ("GET", [user, "media"]) if *user == IG_USER => {
            let data: Vec<Value> = s.media.iter().rev().map(|m| {
                let at = chrono::DateTime::from_timestamp(m.created, 0).unwrap_or_default();
                json!({"id": m.id, "caption": m.caption, "timestamp": at.format("%Y-%m-%dT%H:%M:%S%z").to_string(),
                    "permalink": format!("https://www.instagram.com/p/{}/", m.id)})
            }).collect();
            json(200, json!({"data": data, "paging": {}}), &h)
        }
        ("GET", [media, "insights"]) => match s.media.iter().find(|m| m.id == *media) {
            Some(m) => {
                let metric = |name: &str, v: i64| {
                    json!({"name": name, "period": "lifetime",
                    "values": [{"value": v}], "title": name, "id": format!("{}/insights/{name}/lifetime", m.id)})
                };
                let data = json!([
                    metric("views", m.likes * 20),
                    metric("reach", m.likes * 10),
                    metric("likes", m.likes),
                    metric("comments", 1),
                    metric("saved", 0)
                ]);
                json(200, json!({ "data": data }), &h)
            }
            None => graph_error(400, 100, Some(33), "Unsupported get request.", &h),
        },
        ("GET", [container]) => {
            let fails = s.container_fails.clone();
            let Some(c) = s.containers.get_mut(*container) else {
                return graph_error(400, 100, Some(33), "Unsupported get request.", &h);
            };
            let (code, status) = if c.published {
                (
                    "PUBLISHED".to_string(),
                    "Published: Media has been published".to_string(),
                )
            } else if c.polls_left > 0 {
                c.polls_left -= 1;
                (
                    "IN_PROGRESS".into(),
                    "In Progress: Media is still being processed.".into(),
                )
            } else if let Some(f) = fails {
                (
                    f,
                    "Error: We could not fetch the image from image_url (2207052)".into(),
                )
            } else {
                (
                    "FINISHED".into(),
                    "Finished: Media has been uploaded and it is ready to be published.".into(),
                )
            };
            json(
                200,
                json!({"status_code": code, "status": status, "id": container}),
                &h,
            )
        }
        _ => graph_error(400, 100, None, "Unknown path components", &h),
    }
}

fn publish(s: &mut IgState, h: &[(String, String)], creation_id: Option<&String>) -> Response {
    let id = creation_id.cloned().unwrap_or_default();
    let Some(c) = s.containers.get(&id).cloned() else {
        return graph_error(400, 100, None, "The parameter creation_id is required", h);
    };
    if c.polls_left > 0 || s.container_fails.is_some() {
        return graph_error(400, 9007, Some(2207027), "Media ID is not available", h);
    }
    if s.quota_used >= s.quota_total {
        let throttled = meta_usage(IG_USER, 100, 60);
        return graph_error(
            400,
            9,
            Some(2207042),
            "Application request limit reached",
            &throttled,
        );
    }
    s.quota_used += 1;
    s.next_id += 1;
    let media_id = s.next_id.to_string();
    if let Some(c) = s.containers.get_mut(&id) {
        c.published = true;
    }
    s.media.push(IgMedia {
        id: media_id.clone(),
        caption: c.caption,
        created: now_secs(),
        likes: 0,
    });
    if std::mem::take(&mut s.drop_next_post) {
        return cut_off(200);
    }
    json(200, json!({ "id": media_id }), h)
}
