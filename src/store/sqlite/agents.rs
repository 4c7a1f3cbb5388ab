//! [`AgentStore`] on SQLite: an append-only transition log and one state row per agent.

use futures_util::future::BoxFuture;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::{AgentStore, AgentTransition, Millis, StoreError};

/// Transitions kept per agent; older ones are pruned when new ones arrive, so a crash-looping
/// agent cannot grow the database without bound.
const KEEP_PER_AGENT: i64 = 1000;

/// Migration 4 (3 is reserved for the task store, written at the same time).
pub(super) const SCHEMA: &str = "
CREATE TABLE agent_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent      TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX agent_transitions_by_agent ON agent_transitions (agent, id);
CREATE TABLE agent_state (
    agent      TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
";

impl AgentStore for SqliteStore {
    fn record_agent_transition(&self, t: AgentTransition) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO agent_transitions (agent, from_state, to_state, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![t.agent, t.from, t.to, t.reason, t.at]))
            .map_err(StoreError::sql("agents: record transition"))?;
            let id = txn.last_insert_rowid();
            txn.prepare_cached("DELETE FROM agent_transitions WHERE agent = ?1 AND id <= ?2")
                .and_then(|mut s| s.execute(params![t.agent, id - KEEP_PER_AGENT]))
                .map_err(StoreError::sql("agents: prune transitions"))?;
            Ok(())
        }))
    }

    fn agent_transitions(
        &self,
        agent: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AgentTransition>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.read(move |conn| {
            let mut rows = conn
                .prepare_cached(
                    "SELECT from_state, to_state, reason, at FROM agent_transitions
                     WHERE agent = ?1 ORDER BY id DESC LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![agent, limit], |r| {
                        Ok(AgentTransition {
                            agent: agent.clone(),
                            from: r.get(0)?,
                            to: r.get(1)?,
                            reason: r.get(2)?,
                            at: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(StoreError::sql("agents: read transitions"))?;
            rows.reverse();
            Ok(rows)
        }))
    }

    fn load_agent_state(
        &self,
        agent: String,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(self.read(move |conn| load_state(conn, &agent)))
    }

    fn load_agent_states(
        &self,
        agents: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<serde_json::Value>>, StoreError>> {
        Box::pin(self.read(move |conn| agents.iter().map(|a| load_state(conn, a)).collect()))
    }

    fn save_agent_state(
        &self,
        agent: String,
        state: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        // Serialized on the caller's side, so the writer thread only writes.
        let text = state.to_string();
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO agent_state (agent, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent) DO UPDATE SET state = excluded.state,
                     updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![agent, text, now]))
            .map_err(StoreError::sql("agents: save state"))?;
            Ok(())
        }))
    }
}

fn load_state(
    conn: &rusqlite::Connection,
    agent: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT state FROM agent_state WHERE agent = ?1")
        .and_then(|mut s| s.query_row(params![agent], |r| r.get(0)).optional())
        .map_err(StoreError::sql("agents: load state"))?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::corrupt("agents: load state", format!("{agent}: {e}")))
    })
    .transpose()
}
