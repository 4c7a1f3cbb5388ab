//! The daemon's HTTP side: the control API the CLI talks to, the dashboard, `/metrics`.
//!
//! - [`files`]: the lock, token and address files in the data directory.
//! - [`control`]: requests carried from the HTTP tasks to the supervisor's local task.
//! - [`auth`]: the token (bearer or session cookie) and the anti-forgery checks.
//! - [`assets`]: the dashboard's page, script and style, embedded in the binary.
//! - [`api`]: JSON for the dashboard's Tasks, Bus, Schedules and Logs pages; [`social`]
//!   for its Social page.
//! - [`events`]: server-sent events that keep the dashboard live.
//! - [`metrics`], [`telemetry`], [`process`]: the Prometheus text and what feeds it;
//!   [`families`] registers every exported metric, [`promql`] reads dashboard queries.
//!
//! Routes (JSON; every `/api` route needs the token: `Authorization: Bearer <token>` with
//! the token from `<data_dir>/daemon.token`, mode 0600, or the dashboard's session cookie):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/agents` | every agent: state, reason, since, started_at, restarts, inbox, ... |
//! | `GET /api/agents/{name}` | one agent, with its newest transitions |
//! | `POST /api/agents/{name}/{start,stop,restart,reload}` | operator actions |
//! | `POST /api/agents/{name}/message` | body: any JSON, sent durably to `agent:<name>` |
//! | `POST /api/broadcast` | body: any JSON, one copy per agent inbox |
//! | `GET /api/agents/{name}/logs` | recent `self:log` lines |
//! | `POST /api/repl` · `POST /api/repl/{id}/eval` · `.../complete` · `DELETE /api/repl/{id}` | `repl --attach` sessions |
//! | `GET /api/tasks` · `GET /api/tasks/{id}` | tasks (filters: status, agent, category), one task with its dependencies |
//! | `GET /api/bus/messages` · `/api/bus/dead` · `/api/bus/stats` · `POST /api/bus/dead/{id}/retry` | bus history, dead letters |
//! | `GET /api/schedules` · `GET /api/schedules/{name}/runs` · `POST /api/schedules/{name}/run` | schedules |
//! | `GET /api/social/posts` · `GET /api/social/posts/{id}/metrics` | outbox posts with counts by status, engagement samples |
//! | `GET /api/logs` · `GET /api/logs/stream` | log search (live and archived files), live tail (SSE) |
//! | `GET /api/events` | server-sent events: agents, tasks, schedules, bus, social |
//! | `GET /` · `POST /login` · `POST /logout` · `/assets/*` | the dashboard |
//! | `GET /metrics` | Prometheus text (no token: read-only numbers, loopback by default) |
//! | `GET /health` | `ok` (no token; for container health checks) |

pub mod api;
pub mod assets;
pub mod auth;
pub mod control;
pub mod events;
pub mod families;
pub mod files;
pub mod metrics;
mod placed;
pub mod process;
pub mod promql;
pub mod repl;
pub mod social;
pub mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Request as HttpRequest, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{Bus, SendOptions, BROADCAST};
use control::{Action, Refused, Request};

/// What every handler shares. `Send + Sync`: channels, the bus, the task service and
/// stores (all handles), the token.
#[derive(Clone)]
pub struct ApiState {
    pub requests: mpsc::UnboundedSender<Request>,
    pub bus: Bus,
    pub token: String,
    /// The dashboard's Tasks page; `None` where the daemon runs no task service.
    pub tasks: Option<crate::tasks::Tasks>,
    /// Run history for the Schedules page.
    pub schedules: Option<Arc<dyn crate::store::ScheduleStore>>,
    /// Where the JSON-lines logs are, for the Logs page; `None` when no files are written.
    pub log_dir: Option<PathBuf>,
    /// The social outbox's store, for the Social page.
    pub social: Option<Arc<dyn crate::store::SocialStore>>,
}

/// The control API, the dashboard and `/metrics`.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/agents", get(list))
        .route("/api/agents/{name}", get(status))
        .route("/api/agents/{name}/logs", get(logs))
        .route("/api/agents/{name}/message", post(message))
        .route("/api/agents/{name}/{action}", post(act))
        .route("/api/broadcast", post(broadcast))
        .route("/api/repl", post(repl_open))
        .route("/api/repl/{id}", axum::routing::delete(repl_close))
        .route("/api/repl/{id}/eval", post(repl_eval))
        .route("/api/repl/{id}/complete", post(repl_complete))
        .route("/api/tasks", get(api::tasks))
        .route("/api/tasks/{id}", get(api::task))
        .route("/api/bus/messages", get(api::bus_messages))
        .route("/api/bus/dead", get(api::bus_dead))
        .route("/api/bus/dead/{id}/retry", post(api::bus_retry))
        .route("/api/bus/stats", get(api::bus_stats))
        .route("/api/schedules", get(api::schedules))
        .route("/api/schedules/{name}/runs", get(api::schedule_runs))
        .route("/api/schedules/{name}/run", post(api::schedule_run))
        .route("/api/social/posts", get(social::posts))
        .route("/api/social/posts/{id}/metrics", get(social::post_metrics))
        .route("/api/logs", get(api::logs))
        .route("/api/logs/stream", get(events::log_stream))
        .route("/api/events", get(events::events))
        .route("/assets/app.js", get(assets::script))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .route("/", get(assets::index))
        .route("/assets/app.css", get(assets::style))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/metrics", get(metrics_text))
        .route("/health", get(api::health))
        .layer(middleware::map_response(assets::security_headers))
        .with_state(state)
}

/// Refuses every protected route without the token (see [`auth`]).
async fn require_token(
    State(state): State<ApiState>,
    request: HttpRequest,
    next: Next,
) -> Response {
    match auth::authorize(&state, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

type ApiResult = Result<Response, ApiError>;

/// A refusal as the API sends it: a status and `{"kind": ..., "error": ...}`.
pub struct ApiError {
    code: StatusCode,
    kind: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "kind": self.kind, "error": self.message }));
        (self.code, body).into_response()
    }
}

fn error(code: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        kind,
        message: message.into(),
    }
}

fn refused(r: Refused) -> ApiError {
    let code = match r.kind {
        "not_found" => StatusCode::NOT_FOUND,
        "invalid" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    };
    error(code, r.kind, r.error)
}

/// Sends a request to the control loop and waits for its answer.
async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    let gone = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the daemon is shutting down",
        )
    };
    state.requests.send(make(tx)).map_err(|_| gone())?;
    rx.await.map_err(|_| gone())
}

async fn list(State(state): State<ApiState>) -> ApiResult {
    let rows = ask(&state, Request::List).await?;
    Ok(Json(rows).into_response())
}

async fn status(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let detail = ask(&state, |tx| Request::Status(name, tx))
        .await?
        .map_err(refused)?;
    Ok(Json(detail).into_response())
}

async fn logs(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let lines = ask(&state, |tx| Request::Logs(name, tx))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "lines": lines })).into_response())
}

async fn act(
    State(state): State<ApiState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult {
    let action: Action = action
        .parse()
        .map_err(|e: String| error(StatusCode::NOT_FOUND, "not_found", e))?;
    let done = ask(&state, |reply| Request::Act {
        name,
        action,
        reply,
    })
    .await?
    .map_err(refused)?;
    Ok(Json(json!({ "ok": true, "message": done })).into_response())
}

async fn message(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Json(payload): Json<Value>,
) -> ApiResult {
    let to = format!("agent:{name}");
    let receipt = state
        .bus
        .send("cli", &to, &payload, SendOptions::default())
        .await
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, "bus", e.to_string()))?;
    Ok(Json(json!({ "ok": true, "id": receipt.id(), "to": to })).into_response())
}

async fn broadcast(State(state): State<ApiState>, Json(payload): Json<Value>) -> ApiResult {
    let receipt = state
        .bus
        .send("cli", BROADCAST, &payload, SendOptions::default())
        .await
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, "bus", e.to_string()))?;
    Ok(Json(json!({ "ok": true, "ids": receipt.ids() })).into_response())
}

async fn metrics_text(State(state): State<ApiState>) -> ApiResult {
    let text = ask(&state, Request::Metrics).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn repl_open(State(state): State<ApiState>) -> ApiResult {
    let (id, preloaded) = ask(&state, Request::ReplOpen).await?.map_err(refused)?;
    Ok(Json(json!({ "session": id, "preloaded": preloaded })).into_response())
}

async fn repl_close(State(state): State<ApiState>, Path(id): Path<u64>) -> ApiResult {
    let _ = state.requests.send(Request::ReplClose(id));
    Ok(Json(json!({ "ok": true })).into_response())
}

/// Hands `request` to session `id`; the caller then awaits the request's own answer.
async fn to_session(
    state: &ApiState,
    id: u64,
    request: repl::SessionRequest,
) -> Result<(), ApiError> {
    ask(state, |ack| Request::Repl {
        session: id,
        request,
        ack,
    })
    .await?
    .map_err(refused)
}

async fn repl_eval(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
    Json(req): Json<repl::EvalRequest>,
) -> ApiResult {
    let (tx, rx) = oneshot::channel();
    to_session(&state, id, repl::SessionRequest::Eval(req, tx)).await?;
    // If the client goes away, this handler is dropped with `rx`, and the session drops
    // the running chunk.
    let reply = rx
        .await
        .map_err(|_| error(StatusCode::GONE, "ended", "the REPL session ended"))?;
    Ok(Json(reply).into_response())
}

async fn repl_complete(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
    Json(req): Json<repl::CompleteRequest>,
) -> ApiResult {
    let (tx, rx) = oneshot::channel();
    to_session(&state, id, repl::SessionRequest::Complete(req, tx)).await?;
    let reply = rx
        .await
        .map_err(|_| error(StatusCode::GONE, "ended", "the REPL session ended"))?;
    Ok(Json(reply).into_response())
}
