//! The daemon's HTTP side: the control API the CLI talks to, and `/metrics`.
//!
//! - [`files`]: the lock, token and address files in the data directory.
//! - [`control`]: requests carried from the HTTP tasks to the supervisor's local task.
//! - [`metrics`]: the Prometheus text.
//!
//! Routes (JSON; every `/api` route needs `Authorization: Bearer <token>`, the token being
//! in `<data_dir>/daemon.token`, mode 0600):
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
//! | `GET /metrics` | Prometheus text (no token: read-only numbers, loopback by default) |

pub mod control;
pub mod files;
pub mod metrics;
pub mod repl;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{Bus, SendOptions, BROADCAST};
use control::{Action, Refused, Request};

/// What every handler shares. `Send + Sync`: only channels, the bus and the token.
#[derive(Clone)]
pub struct ApiState {
    pub requests: mpsc::UnboundedSender<Request>,
    pub bus: Bus,
    pub token: String,
}

/// The control API and `/metrics`.
pub fn router(state: ApiState) -> Router {
    Router::new()
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
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

type ApiResult = Result<Response, ApiError>;

/// A refusal as the API sends it: a status and `{"kind": ..., "error": ...}`.
pub struct ApiError {
    code: StatusCode,
    kind: &'static str,
    message: String,
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

/// Compares the bearer token in constant time (the token is short; timing leaks matter
/// little on loopback, but it costs nothing).
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.token.as_bytes();
    let ok = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong token (see <data_dir>/daemon.token)",
        ))
    }
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

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult {
    authorize(&state, &headers)?;
    let rows = ask(&state, Request::List).await?;
    Ok(Json(rows).into_response())
}

async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&state, &headers)?;
    let detail = ask(&state, |tx| Request::Status(name, tx))
        .await?
        .map_err(refused)?;
    Ok(Json(detail).into_response())
}

async fn logs(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&state, &headers)?;
    let lines = ask(&state, |tx| Request::Logs(name, tx))
        .await?
        .map_err(refused)?;
    Ok(Json(json!({ "lines": lines })).into_response())
}

async fn act(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult {
    authorize(&state, &headers)?;
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
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(payload): Json<Value>,
) -> ApiResult {
    authorize(&state, &headers)?;
    let to = format!("agent:{name}");
    let receipt = state
        .bus
        .send("cli", &to, &payload, SendOptions::default())
        .await
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, "bus", e.to_string()))?;
    Ok(Json(json!({ "ok": true, "id": receipt.id(), "to": to })).into_response())
}

async fn broadcast(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(payload): Json<Value>,
) -> ApiResult {
    authorize(&state, &headers)?;
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

async fn repl_open(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult {
    authorize(&state, &headers)?;
    let (id, preloaded) = ask(&state, Request::ReplOpen).await?.map_err(refused)?;
    Ok(Json(json!({ "session": id, "preloaded": preloaded })).into_response())
}

async fn repl_close(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> ApiResult {
    authorize(&state, &headers)?;
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
    headers: HeaderMap,
    Path(id): Path<u64>,
    Json(req): Json<repl::EvalRequest>,
) -> ApiResult {
    authorize(&state, &headers)?;
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
    headers: HeaderMap,
    Path(id): Path<u64>,
    Json(req): Json<repl::CompleteRequest>,
) -> ApiResult {
    authorize(&state, &headers)?;
    let (tx, rx) = oneshot::channel();
    to_session(&state, id, repl::SessionRequest::Complete(req, tx)).await?;
    let reply = rx
        .await
        .map_err(|_| error(StatusCode::GONE, "ended", "the REPL session ended"))?;
    Ok(Json(reply).into_response())
}
