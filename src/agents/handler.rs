//! How a runner calls a handler (under the stall limit) and the event sources its loop
//! waits on, each pending forever when the agent lacks it (no inbox, no tasks, no tick).

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, Interval};

use super::agent::AgentError;
use super::inbox::Inbox;
use super::work::{Claimed, TaskFeed};
use crate::bus::Delivery;
use crate::units::format_duration;

/// Runs one handler under the stall timeout; `Err` is why the agent crashes. A stall drops
/// the handler's future, which interrupts it at its next suspension; a Lua agent also arms
/// its instruction hook with the same deadline so a loop that never suspends is stopped too.
pub async fn call<T>(
    stall: Option<Duration>,
    what: &str,
    handler: impl Future<Output = Result<T, AgentError>>,
) -> Result<T, String> {
    let result = match stall {
        Some(limit) => match tokio::time::timeout(limit, handler).await {
            Ok(result) => result,
            Err(_) => {
                return Err(format!(
                    "stalled: {what} ran past stall_timeout ({})",
                    format_duration(limit)
                ))
            }
        },
        None => handler.await,
    };
    result.map_err(|e| match e.0.starts_with("stalled:") {
        // The agent noticed the stall itself (a Lua loop stopped by its hook).
        true => e.0,
        false => format!("{what} failed: {e}"),
    })
}

pub(super) async fn next_message(inbox: &mut Option<Box<dyn Inbox>>) -> Result<Delivery, String> {
    match inbox {
        Some(inbox) => inbox.next().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn next_task(feed: &mut Option<TaskFeed>) -> Option<Claimed> {
    match feed {
        Some(feed) => feed.rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn next_tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A deadline that never comes (for `select!` branches that are disabled anyway).
pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}
