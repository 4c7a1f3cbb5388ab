//! The JSON routes behind the dashboard's Tasks, Bus, Schedules and Logs pages. Agents
//! are served by the control API in `mod.rs`. Every route here sits behind the token check
//! of [`super::auth`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::control::Request;
use super::{ask, error, refused, ApiError, ApiResult, ApiState};
use crate::bus::HistoryQuery;
use crate::logging::LogFilterArgs;
use crate::tasks::{ListFilter, Status, TaskId};

/// Rows a listing returns unless asked for fewer.
const DEFAULT_LIMIT: usize = 200;
/// The most rows one listing returns.
const MAX_LIMIT: usize = 2000;

fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn unavailable(what: &str) -> ApiError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("this daemon has no {what}"),
    )
}

#[derive(Deserialize)]
pub struct TaskFilter {
    status: Option<String>,
    agent: Option<String>,
    category: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/tasks?status=&agent=&category=&limit=`
pub async fn tasks(State(state): State<ApiState>, Query(f): Query<TaskFilter>) -> ApiResult {
    let tasks = state
        .tasks
        .as_ref()
        .ok_or_else(|| unavailable("task service"))?;
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let status = match nonempty(f.status) {
        None => None,
        Some(s) => Some(
            s.parse::<Status>()
                .map_err(|e| bad_request(format!("status: {e}")))?,
        ),
    };
    let list = tasks
        .list(ListFilter {
            status,
            assignee: nonempty(f.agent),
            category: nonempty(f.category),
            priority: None,
            limit: limit(f.limit),
        })
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    Ok(Json(list).into_response())
}

/// `GET /api/tasks/{id}`: the task, what it depends on and what depends on it.
pub async fn task(State(state): State<ApiState>, Path(id): Path<TaskId>) -> ApiResult {
    let tasks = state
        .tasks
        .as_ref()
        .ok_or_else(|| unavailable("task service"))?;
    let store_error = |e: String| error(StatusCode::INTERNAL_SERVER_ERROR, "store", e);
    let task = tasks
        .get(id)
        .await
        .map_err(|e| store_error(e.to_string()))?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not_found", format!("no task #{id}")))?;
    let edges = tasks
        .store()
        .task_edges(Some(vec![id]))
        .await
        .map_err(|e| store_error(e.to_string()))?;
    let mut depends_on = Vec::new();
    let mut dependents = Vec::new();
    for (from, to) in edges {
        let (other, list) = if from == id {
            (to, &mut depends_on)
        } else {
            (from, &mut dependents)
        };
        if let Some(t) = tasks
            .get(other)
            .await
            .map_err(|e| store_error(e.to_string()))?
        {
            list.push(
                json!({"id": t.id, "title": t.title, "status": t.status, "progress": t.progress}),
            );
        }
    }
    Ok(
        Json(json!({"task": task, "depends_on": depends_on, "dependents": dependents}))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct BusFilter {
    channel: Option<String>,
    agent: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/bus/messages?channel=&agent=&after=&limit=`: history, oldest first.
pub async fn bus_messages(State(state): State<ApiState>, Query(f): Query<BusFilter>) -> ApiResult {
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let records = state
        .bus
        .history(HistoryQuery {
            channel: nonempty(f.channel),
            agent: nonempty(f.agent),
            after_id: f.after,
            limit: limit(f.limit),
            ..HistoryQuery::default()
        })
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "bus", e.to_string()))?;
    Ok(Json(records).into_response())
}

/// `GET /api/bus/dead`
pub async fn bus_dead(State(state): State<ApiState>) -> ApiResult {
    let dead = state
        .bus
        .dead_letters(MAX_LIMIT)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "bus", e.to_string()))?;
    Ok(Json(dead).into_response())
}

/// `POST /api/bus/dead/{id}/retry`
pub async fn bus_retry(State(state): State<ApiState>, Path(id): Path<i64>) -> ApiResult {
    state.bus.retry_dead(id).await.map_err(|e| {
        let code = match e {
            crate::bus::BusError::NotFound(_) => StatusCode::NOT_FOUND,
            crate::bus::BusError::NotDead { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(code, "bus", e.to_string())
    })?;
    Ok(Json(json!({"ok": true, "message": format!("message {id} queued again")})).into_response())
}

/// `GET /api/bus/stats`
pub async fn bus_stats(State(state): State<ApiState>) -> ApiResult {
    let stats = state
        .bus
        .stats()
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "bus", e.to_string()))?;
    Ok(Json(stats).into_response())
}

/// `GET /api/schedules`
pub async fn schedules(State(state): State<ApiState>) -> ApiResult {
    let list = ask(&state, Request::Schedules).await?;
    Ok(Json(list).into_response())
}

/// `GET /api/schedules/{name}/runs`: the newest runs, oldest first.
pub async fn schedule_runs(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let store = state
        .schedules
        .as_ref()
        .ok_or_else(|| unavailable("schedule store"))?;
    let runs = store
        .schedule_runs(name, 50)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    Ok(Json(runs).into_response())
}

/// `POST /api/schedules/{name}/run`
pub async fn schedule_run(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let message = ask(&state, |tx| Request::RunSchedule(name, tx))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({"ok": true, "message": message})).into_response())
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

/// `GET /api/logs?level=&agent=&text=&since=&limit=`: the newest matching lines from the
/// live file, backups and gzip archives, oldest first.
pub async fn logs(
    State(state): State<ApiState>,
    Query(filter): Query<LogFilterArgs>,
    Query(l): Query<Limit>,
) -> ApiResult {
    let dir = state
        .log_dir
        .clone()
        .ok_or_else(|| unavailable("log directory"))?;
    let mut query = filter.query(chrono::Utc::now()).map_err(bad_request)?;
    query.limit = Some(limit(l.limit));
    let found = tokio::task::spawn_blocking(move || crate::logging::search(&dir, &query))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "logs", e.to_string()))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "logs", format!("{e:#}")))?;
    Ok(Json(found).into_response())
}

/// `GET /health`: 200 while the daemon serves; no token (container health checks).
pub async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}
