//! [`AgentStore`] on PostgreSQL: the append-only transition log and one state row per
//! agent of `store::sqlite::agents`, in migration 4's tables.

use futures_util::future::BoxFuture;

use super::PgStore;
use crate::store::{AgentStore, AgentTransition, Millis, StoreError};

/// Transitions kept per agent, as on SQLite: older ones go when new ones arrive.
const KEEP_PER_AGENT: i64 = 1000;

impl AgentStore for PgStore {
    fn record_agent_transition(&self, t: AgentTransition) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "agents: record transition",
                        "INSERT INTO agent_transitions (agent, from_state, to_state, reason, at)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        &[&t.agent, &t.from, &t.to, &t.reason, &t.at],
                    )
                    .await?;
                let id: i64 = row.get(0);
                c.execute(
                    "agents: prune transitions",
                    "DELETE FROM agent_transitions WHERE agent = $1 AND id <= $2",
                    &[&t.agent, &(id - KEEP_PER_AGENT)],
                )
                .await?;
                Ok(())
            })
        }))
    }

    fn agent_transitions(
        &self,
        agent: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AgentTransition>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "agents: read transitions",
                        "SELECT from_state, to_state, reason, at FROM agent_transitions
                         WHERE agent = $1 ORDER BY id DESC LIMIT $2",
                        &[&agent, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .rev()
                    .map(|r| AgentTransition {
                        agent: agent.clone(),
                        from: r.get(0),
                        to: r.get(1),
                        reason: r.get(2),
                        at: r.get(3),
                    })
                    .collect())
            })
        }))
    }

    fn load_agent_state(
        &self,
        agent: String,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(async move {
            let mut states = self.load_agent_states(vec![agent]).await?;
            Ok(states.pop().flatten())
        })
    }

    /// One query for every name (`= ANY($1)`), answered in the order asked.
    fn load_agent_states(
        &self,
        agents: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<serde_json::Value>>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "agents: load state",
                        "SELECT agent, state FROM agent_state WHERE agent = ANY($1)",
                        &[&agents],
                    )
                    .await?;
                let mut found = std::collections::HashMap::with_capacity(rows.len());
                for r in &rows {
                    let (agent, text): (String, String) = (r.get(0), r.get(1));
                    let value = serde_json::from_str(&text)
                        .map_err(|e| c.corrupt("agents: load state", format!("{agent}: {e}")))?;
                    found.insert(agent, value);
                }
                Ok(agents.iter().map(|a| found.get(a).cloned()).collect())
            })
        }))
    }

    fn save_agent_state(
        &self,
        agent: String,
        state: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let text = state.to_string();
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                c.execute(
                    "agents: save state",
                    "INSERT INTO agent_state (agent, state, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (agent) DO UPDATE SET state = excluded.state,
                         updated_at = excluded.updated_at",
                    &[&agent, &text, &now],
                )
                .await?;
                Ok(())
            })
        }))
    }
}
