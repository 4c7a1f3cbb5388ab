//! [`KvStore`] on SQLite: one row per (namespace, key), the value as JSON text.

use futures_util::future::BoxFuture;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::{KvStore, StoreError};

/// Migration 2.
pub(super) const SCHEMA: &str = "
CREATE TABLE kv (
    ns         TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
);
";

impl KvStore for SqliteStore {
    fn kv_get<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        let (ns, key) = (ns.to_string(), key.to_string());
        Box::pin(self.read(move |conn| {
            let text: Option<String> = conn
                .prepare_cached("SELECT value FROM kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.query_row(params![ns, key], |r| r.get(0)).optional())
                .map_err(StoreError::sql("kv: get"))?;
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::corrupt("kv: get", format!("{ns}/{key}: {e}")))
            })
            .transpose()
        }))
    }

    fn kv_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (ns, key) = (ns.to_string(), key.to_string());
        // Serialized here, on the caller's side, so the writer thread only writes.
        let text = value.to_string();
        let now = chrono::Utc::now().timestamp_millis();
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO kv (ns, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,
                     updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![ns, key, text, now]))
            .map_err(StoreError::sql("kv: set"))?;
            Ok(())
        }))
    }

    fn kv_delete<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (ns, key) = (ns.to_string(), key.to_string());
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![ns, key]))
                .map_err(StoreError::sql("kv: delete"))?;
            Ok(n > 0)
        }))
    }
}
