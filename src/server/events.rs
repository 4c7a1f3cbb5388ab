//! Server-sent events for the dashboard: a page opens one stream and redraws what changed
//! as events arrive, so a state change shows without reloading.
//!
//! - `GET /api/events`: `agents` (every lifecycle transition, from `agents.events`),
//!   `schedules` (runs starting and ending, from `schedules.events`), `social` (outbox
//!   events: posted, failed, dead, ..., from `social.events`), `tasks` (every task
//!   transition, read from the store's transition log after the last event seen) and `bus`
//!   (each new message, read from the history after the last id seen). Tasks and messages
//!   are read from the store rather than from in-process events because the CLI and other
//!   nodes add tasks and send messages too.
//! - `GET /api/logs/stream?level=&agent=&text=`: new lines of the live log file that pass
//!   the same filters as `dreamos log tail --follow`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};

use super::{error, ApiResult, ApiState};
use crate::bus::{HistoryQuery, Subscription};
use crate::logging::{Follower, LogFilterArgs, LogQuery};

/// How often the streams look at the bus history and the log file.
const POLL: Duration = Duration::from_millis(300);

struct Live {
    bus: crate::bus::Bus,
    tasks: Option<crate::tasks::Tasks>,
    agents: Subscription,
    schedules: Subscription,
    social: Subscription,
    last_message: i64,
    last_task_event: i64,
    ticker: tokio::time::Interval,
    /// Events read but not yet sent (one bus poll can bring several).
    queued: std::collections::VecDeque<Event>,
}

fn event(name: &str, payload: &impl serde::Serialize) -> Option<Event> {
    Event::default().event(name).json_data(payload).ok()
}

impl Live {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            tokio::select! {
                Some(m) = self.agents.recv() => return event("agents", &m.payload),
                Some(m) = self.schedules.recv() => return event("schedules", &m.payload),
                Some(m) = self.social.recv() => return event("social", &m.payload),
                _ = self.ticker.tick() => {
                    self.poll_tasks().await;
                    self.poll_bus().await;
                }
            }
        }
    }

    async fn poll_tasks(&mut self) {
        let Some(tasks) = &self.tasks else { return };
        if let Ok(events) = tasks
            .store()
            .task_events(self.last_task_event, 200, None)
            .await
        {
            for e in events {
                self.last_task_event = self.last_task_event.max(e.seq);
                self.queued.extend(event("tasks", &e));
            }
        }
    }

    async fn poll_bus(&mut self) {
        let query = HistoryQuery {
            after_id: Some(self.last_message),
            limit: 100,
            ..HistoryQuery::default()
        };
        if let Ok(records) = self.bus.history(query).await {
            for r in records {
                self.last_message = self.last_message.max(r.id);
                self.queued.extend(event("bus", &r));
            }
        }
    }
}

/// `GET /api/events`
pub async fn events(State(state): State<ApiState>) -> ApiResult {
    let subscribe = |topic: &str| {
        state.bus.subscribe(topic).map_err(|e| {
            error(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "bus",
                e.to_string(),
            )
        })
    };
    let newest = state
        .bus
        .history(HistoryQuery {
            limit: 1,
            ..HistoryQuery::default()
        })
        .await
        .ok()
        .and_then(|r| r.last().map(|m| m.id))
        .unwrap_or(0);
    let last_task_event = match &state.tasks {
        Some(t) => t.store().last_task_event().await.unwrap_or(0),
        None => 0,
    };
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        bus: state.bus.clone(),
        tasks: state.tasks.clone(),
        agents: subscribe(crate::agents::EVENTS_TOPIC)?,
        schedules: subscribe(crate::scheduler::TOPIC)?,
        social: subscribe(crate::social::TOPIC)?,
        last_message: newest,
        last_task_event,
        ticker,
        queued: Default::default(),
    };
    let stream = stream::unfold(live, |mut live| async move {
        let e = live.next().await?;
        Some((Ok::<_, Infallible>(e), live))
    });
    Ok(sse(stream))
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Tail {
    follower: Option<Follower>,
    query: LogQuery,
    ticker: tokio::time::Interval,
    queued: std::collections::VecDeque<Event>,
}

/// `GET /api/logs/stream?level=&agent=&text=`
pub async fn log_stream(
    State(state): State<ApiState>,
    Query(filter): Query<LogFilterArgs>,
) -> ApiResult {
    let dir = state.log_dir.clone().ok_or_else(|| {
        error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this daemon writes no log files",
        )
    })?;
    let query = filter
        .query(chrono::Utc::now())
        .map_err(|e| error(axum::http::StatusCode::BAD_REQUEST, "invalid", e))?;
    let path = dir.join(query.source.file_name());
    let follower = tokio::task::spawn_blocking(move || Follower::at_end(path))
        .await
        .map_err(|e| {
            error(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "logs",
                e.to_string(),
            )
        })?;
    let tail = Tail {
        follower: Some(follower),
        query,
        ticker: tokio::time::interval(POLL),
        queued: Default::default(),
    };
    let stream = stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some(e) = tail.queued.pop_front() {
                return Some((Ok::<_, Infallible>(e), tail));
            }
            tail.ticker.tick().await;
            // File reads block; keep them off the daemon's only runtime thread.
            let mut follower = tail.follower.take()?;
            let (follower, fresh) = tokio::task::spawn_blocking(move || {
                let fresh = follower.poll().unwrap_or_default();
                (follower, fresh)
            })
            .await
            .ok()?;
            tail.follower = Some(follower);
            for record in fresh.iter().filter(|r| tail.query.matches(r)) {
                tail.queued.extend(event("log", record));
            }
        }
    });
    Ok(sse(stream))
}
