//! `agent list` across nodes: each row names the node holding the agent's lease, and an
//! agent held by another node shows what that node last recorded for it (the transition
//! log is shared when the nodes share a database), not this node's idle copy.

use super::control::AgentRow;
use crate::agents::{AgentState, Placement};
use crate::store::AgentStore;

/// Fills in `node` of every row, and the state of agents placed on other nodes.
pub(super) async fn locate(
    placement: &Placement,
    store: &dyn AgentStore,
    mut rows: Vec<AgentRow>,
) -> Vec<AgentRow> {
    let holders = match placement.holders().await {
        Ok(holders) => holders,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which node runs each agent");
            return rows;
        }
    };
    for row in &mut rows {
        let name = row.status.name.clone();
        let Some(holder) = holders.get(&name) else {
            continue;
        };
        row.node = Some(holder.node.clone());
        row.node_lapsed = holder.lapsed;
        if holder.node == placement.node() {
            continue;
        }
        // Recorded by the holder since it took the agent (older entries are another run's).
        let last = store
            .agent_transitions(name.clone(), 1)
            .await
            .ok()
            .and_then(|mut t| t.pop())
            .filter(|t| t.at >= holder.since)
            .and_then(|t| Some((t.to.parse::<AgentState>().ok()?, t.reason, t.at)));
        let (state, reason, since) = last.unwrap_or_else(|| {
            let state = if placement.autostart(&name) {
                AgentState::Running
            } else {
                AgentState::Stopped
            };
            (
                state,
                format!("placed on node {}", holder.node),
                holder.since,
            )
        });
        let status = &mut row.status;
        status.state = state;
        status.reason = reason;
        status.since = since;
        status.started_at = (state == AgentState::Running).then_some(since);
        status.last_activity = None;
    }
    rows
}
