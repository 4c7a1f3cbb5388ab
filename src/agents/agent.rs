//! The `Agent` trait: what the supervisor calls. Lua agents (`lua/agent.rs`) implement it
//! over their own Lua state; a Rust agent implements it directly and is supervised the same
//! way (restart policy, idle nudges, stall interruption, transitions on `agents.events`).
//!
//! Handlers return boxed *local* futures: a Lua state is `!Send`, so agents run on the
//! daemon's single-threaded `LocalSet`. The trait stays object-safe so the supervisor holds
//! `Box<dyn Agent>` whatever language the agent is written in.

use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use crate::bus::{Bus, Message};

/// Why a handler failed. The text becomes the `crashed` transition's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

impl AgentError {
    pub fn new(message: impl Into<String>) -> AgentError {
        AgentError(message.into())
    }
}

/// What a handler returns.
pub type Handled<'a, T = ()> = LocalBoxFuture<'a, Result<T, AgentError>>;

/// Builds a fresh instance of an agent: called for the first start and for every restart,
/// so a restart really starts over (for Lua, a new state with the script loaded again).
pub type Factory = Rc<dyn Fn() -> LocalBoxFuture<'static, Result<Box<dyn Agent>, AgentError>>>;

/// A claimed task handed to `on_task`. The runner settles it from the handler's result:
/// complete on `Ok` (the value is the task's result), fail with a retry on `Err`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskWork {
    pub id: crate::tasks::TaskId,
    /// The claim; `progress` and `heartbeat` need it.
    pub lease: crate::tasks::Lease,
    /// The task as JSON (title, payload, priority, attempts, ...).
    pub task: serde_json::Value,
}

/// A task handler that can run beside the agent's other handlers, for agents declaring
/// `tasks.concurrency` above one: the runner calls it once per claimed task, with up to
/// that many running at a time. Each call returns its own future (a Lua agent runs each
/// task in its own coroutine of the agent's state), so it owns what it needs.
pub type TaskWorker = Rc<dyn Fn(TaskWork) -> LocalBoxFuture<'static, TaskOutcome>>;

/// What a [`TaskWorker`] call ended with.
pub struct TaskOutcome {
    /// The task's result, or why the handler failed (a crash, as for `on_task`).
    pub result: Result<serde_json::Value, AgentError>,
    /// The handler asked the agent to stop, as [`Context::stop`] does.
    pub stop: Option<String>,
}

/// An agent. Every handler has a default that does nothing, so an agent implements only
/// what it needs.
pub trait Agent {
    /// Runs once per start, before any message. An error is a crash.
    fn on_start<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// One message from the agent's inbox (`agent:<name>`, broadcasts included). Returning
    /// `Ok` acknowledges it; an error returns it to the queue for redelivery and is a crash.
    fn on_message<'a>(&'a mut self, ctx: &'a mut Context, message: Message) -> Handled<'a> {
        let _ = (ctx, message);
        Box::pin(async { Ok(()) })
    }

    /// One claimed task; the value is its result.
    fn on_task<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        task: TaskWork,
    ) -> Handled<'a, serde_json::Value> {
        let _ = (ctx, task);
        Box::pin(async { Ok(serde_json::Value::Null) })
    }

    /// For several tasks at once (`tasks.concurrency` above one): a handler the runner can
    /// run side by side with itself and with the other handlers. `None` (the default):
    /// tasks go to `on_task`, one at a time.
    fn task_worker(&mut self) -> Option<TaskWorker> {
        None
    }

    /// Every `tick` interval, when the agent has one.
    fn on_tick<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// The nudge: no activity for `idle_timeout`.
    fn on_idle<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// Runs before an orderly stop or restart, with the reason. Not run after a crash.
    fn on_stop<'a>(&'a mut self, ctx: &'a mut Context, reason: &'a str) -> Handled<'a> {
        let _ = (ctx, reason);
        Box::pin(async { Ok(()) })
    }
}

/// What a handler may do besides its own work: reach the bus, or ask to stop.
pub struct Context {
    /// The agent's name (its inbox is `agent:<name>`).
    pub name: String,
    /// The daemon's bus; `None` in tests that supervise without one.
    pub bus: Option<Bus>,
    /// Set by [`Context::stop`]: the agent exits normally after the current handler.
    pub(crate) stop_requested: Option<String>,
    /// Set by [`Context::touch`]: the handler did real work, so the agent is not idle.
    pub(crate) touched: bool,
}

impl Context {
    pub fn new(name: impl Into<String>, bus: Option<Bus>) -> Context {
        Context {
            name: name.into(),
            bus,
            stop_requested: None,
            touched: false,
        }
    }

    /// The sender name this agent uses on the bus.
    pub fn sender(&self) -> String {
        format!("agent:{}", self.name)
    }

    /// Asks the supervisor to stop this agent normally once the handler returns
    /// (`transient` and `temporary` agents then stay stopped).
    pub fn stop(&mut self, reason: impl Into<String>) {
        self.stop_requested = Some(reason.into());
    }

    /// Counts as activity for idle detection (a tick that found work to do).
    pub fn touch(&mut self) {
        self.touched = true;
    }
}
