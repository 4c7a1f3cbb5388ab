//! The agent supervisor's durable record: every lifecycle transition of every agent, and
//! each agent's `self.state` table. Plain data and one trait, shared by every backend; the
//! supervisor ([`crate::agents`]) owns the meaning of the state names.

use futures_util::future::BoxFuture;
use serde::Serialize;

use super::{Millis, StoreError};

/// One lifecycle step of one agent, as recorded and as published on `agents.events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentTransition {
    pub agent: String,
    /// State names as [`crate::agents::AgentState::as_str`] spells them.
    pub from: String,
    pub to: String,
    /// Why, in words an operator reads (`"crashed: scout.lua:3: boom"`).
    pub reason: String,
    pub at: Millis,
}

/// Durable agent bookkeeping. Each method is one atomic step, committed before it resolves.
pub trait AgentStore: Send + Sync + 'static {
    /// Appends one transition to the agent's log.
    fn record_agent_transition(
        &self,
        transition: AgentTransition,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The newest `limit` transitions of `agent`, oldest first.
    fn agent_transitions(
        &self,
        agent: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AgentTransition>, StoreError>>;

    /// The agent's persisted `self.state` (a JSON object), if it ever saved one.
    fn load_agent_state(
        &self,
        agent: String,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, StoreError>>;

    /// `self.state` of several agents in one read (one answer per name, same order): agents
    /// starting together load their state this way instead of one read each.
    fn load_agent_states(
        &self,
        agents: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<serde_json::Value>>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(agents.len());
            for agent in agents {
                out.push(self.load_agent_state(agent).await?);
            }
            Ok(out)
        })
    }

    /// Replaces the agent's persisted `self.state`.
    fn save_agent_state(
        &self,
        agent: String,
        state: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
}
