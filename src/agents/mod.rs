//! Agents: supervised units of work with a lifecycle, restart policies and idle handling.
//! Plain Rust; `lua/agent.rs` makes Lua scripts into [`Agent`]s.
//!
//! How the pieces fit:
//! - [`agent`]: the [`Agent`] trait (async handlers `on_start`, `on_message`, `on_task`,
//!   `on_tick`, `on_idle`, `on_stop`) and the [`Context`] a handler gets.
//! - [`state`]: the lifecycle states and which steps between them are legal.
//! - [`policy`]: restart policies (OTP's permanent/transient/temporary), restart intensity
//!   and exponential backoff, and [`Supervision`], every per-agent knob with its default.
//! - `handler`: a handler call under the stall limit, and what a runner's loop waits on.
//! - [`runner`]: one task per live agent — its event loop (inbox, ticks, idle nudges,
//!   resumes, stall interruption) and what happens after each exit.
//! - [`lifecycle`]: every transition goes to the store, to `agents.events` on the bus, and
//!   to the shared [`AgentStatus`] that `dreamos agent list` reads.
//! - [`inbox`]: where messages come from (the durable `agent:<name>` queue in the daemon).
//! - [`work`]: tasks claimed for agents that declare a category, fed to `on_task` (one
//!   at a time, or up to `tasks.concurrency` side by side).
//! - [`supervisor`]: the registry of agents and the operator actions on them.
//! - [`placement`]: which node runs each agent when several share one database (leases).
//!
//! Time is tokio's, so tests pause and advance it.

pub mod agent;
pub mod commands;
pub mod config;
mod handler;
pub mod inbox;
pub mod lifecycle;
pub mod placement;
pub mod policy;
pub mod runner;
pub mod state;
pub mod supervisor;
pub mod work;

#[cfg(test)]
mod tests;

pub use agent::{Agent, AgentError, Context, Factory, Handled, TaskOutcome, TaskWork, TaskWorker};
pub use config::{AgentConfig, DaemonConfig};
pub use inbox::{BusInbox, Inbox, InboxFactory};
pub use lifecycle::{AgentStatus, Recorder, SharedStatus, EVENTS_TOPIC};
pub use placement::{Placement, Service};
pub use policy::{Decision, Overrides, RestartPolicy, RestartTracker, Supervision};
pub use state::AgentState;
pub use supervisor::{Supervisor, SupervisorError};
