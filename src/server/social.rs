//! The dashboard's Social page: outbox posts by state and each post's engagement samples,
//! read from the social store ([`crate::store::SocialStore`]); and the outbox's numbers for
//! `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{error, ApiError, ApiResult, ApiState};
use crate::social::{PostFilter, PostId, Status};
use crate::store::SocialStore;

fn store(state: &ApiState) -> Result<&Arc<dyn SocialStore>, ApiError> {
    state.social.as_ref().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this daemon has no social outbox",
        )
    })
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
}

#[derive(Deserialize)]
pub struct PostQuery {
    status: Option<String>,
    account: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/social/posts?status=&account=&limit=`: the newest posts (JSON as in
/// `dreamos social list --json`) and the count of every post by status.
pub async fn posts(State(state): State<ApiState>, Query(q): Query<PostQuery>) -> ApiResult {
    let store = store(&state)?;
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let statuses = match nonempty(q.status) {
        None => Vec::new(),
        Some(s) => vec![Status::parse(&s).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("status: '{s}' is not one of queued, sending, posted, failed, dead, cancelled, deleted"),
            )
        })?],
    };
    let list = store
        .list_posts(PostFilter {
            account: nonempty(q.account),
            statuses,
            since: None,
            limit: Some(q.limit.unwrap_or(200).clamp(1, 2000)),
        })
        .await
        .map_err(store_error)?;
    let counts = counts(store.as_ref()).await.map_err(store_error)?;
    let by_status: BTreeMap<&str, u64> = Status::ALL
        .iter()
        .map(|s| {
            let n = counts
                .iter()
                .filter(|(_, st, _)| st == s)
                .map(|(_, _, n)| n)
                .sum();
            (s.name(), n)
        })
        .collect();
    let posts: Vec<_> = list.iter().map(crate::social::view::record_json).collect();
    Ok(Json(json!({"posts": posts, "counts": by_status})).into_response())
}

/// `GET /api/social/posts/{id}/metrics`: engagement samples, oldest first.
pub async fn post_metrics(State(state): State<ApiState>, Path(id): Path<PostId>) -> ApiResult {
    let samples = store(&state)?
        .metric_samples(vec![id])
        .await
        .map_err(store_error)?;
    Ok(Json(samples).into_response())
}

/// Posts per (account, status), for `dreamos_social_posts` and the page's counts.
pub async fn counts(
    store: &dyn SocialStore,
) -> Result<Vec<(String, Status, u64)>, crate::store::StoreError> {
    let all = store.list_posts(PostFilter::default()).await?;
    let mut counts: BTreeMap<(String, &str), (Status, u64)> = BTreeMap::new();
    for p in &all {
        counts
            .entry((p.account.clone(), p.status.name()))
            .or_insert((p.status, 0))
            .1 += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((account, _), (status, n))| (account, status, n))
        .collect())
}
