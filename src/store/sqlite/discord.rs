//! The Discord outbox on SQLite: alerts, summaries and `discord.send` posts wait here until
//! Discord has taken them, so a dropped connection or a daemon restart loses none.

use rusqlite::params;

use super::SqliteStore;
use crate::store::{Millis, StoreError};

/// Migration 11.
pub(super) const SCHEMA: &str = "
CREATE TABLE discord_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    target     TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
";

/// One queued post.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// `channel:<id>` or `webhook_env:<VAR>` (the webhook URL stays in the environment).
    pub target: String,
    pub body: serde_json::Value,
    pub created_at: Millis,
    pub attempts: u32,
}

impl SqliteStore {
    /// Queues a post; returns once it is on disk.
    pub async fn outbox_push(
        &self,
        target: &str,
        body: &serde_json::Value,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let (target, body) = (target.to_string(), body.to_string());
        self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO discord_outbox (target, body, created_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![target, body, now]))
            .map_err(StoreError::sql("discord outbox: push"))?;
            Ok(txn.last_insert_rowid())
        })
        .await
    }

    /// The oldest queued posts, first in first out.
    pub async fn outbox_peek(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, target, body, created_at, attempts FROM discord_outbox
                     ORDER BY id LIMIT ?1",
                )
                .map_err(StoreError::sql("discord outbox: peek"))?;
            let rows = stmt
                .query_map(params![limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(StoreError::sql("discord outbox: peek"))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, target, body, created_at, attempts) =
                    row.map_err(StoreError::sql("discord outbox: peek"))?;
                let body = serde_json::from_str(&body).map_err(|e| {
                    StoreError::corrupt("discord outbox: peek", format!("{id}: {e}"))
                })?;
                out.push(OutboxRow {
                    id,
                    target,
                    body,
                    created_at,
                    attempts: attempts as u32,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Discord took the post.
    pub async fn outbox_done(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.prepare_cached("DELETE FROM discord_outbox WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .map_err(StoreError::sql("discord outbox: done"))?;
            Ok(())
        })
        .await
    }

    /// A failed attempt: counted, with its error, and the post stays queued.
    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write(move |txn| {
            txn.prepare_cached(
                "UPDATE discord_outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, error]))
            .map_err(StoreError::sql("discord outbox: failed"))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[tokio::test]
    async fn queued_posts_survive_a_reopen_and_leave_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let store = crate::store::open_sqlite(&path).await.unwrap();
            store
                .outbox_push("channel:5", &json!({"content": "a"}), 1)
                .await
                .unwrap();
            store
                .outbox_push("webhook_env:HOOK", &json!({"content": "b"}), 2)
                .await
                .unwrap();
        }
        let store = crate::store::open_sqlite(&path).await.unwrap();
        let rows = store.outbox_peek(10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].target, "channel:5");
        assert_eq!(rows[1].body, json!({"content": "b"}));
        store.outbox_failed(rows[0].id, "503").await.unwrap();
        store.outbox_done(rows[1].id).await.unwrap();
        let rows = store.outbox_peek(10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 1);
    }
}
