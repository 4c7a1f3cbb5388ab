//! [`KvStore`] on PostgreSQL: one row per (namespace, key), the value as JSON text, as on
//! SQLite.

use futures_util::future::BoxFuture;

use super::PgStore;
use crate::store::{KvStore, StoreError};

impl KvStore for PgStore {
    fn kv_get<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool().get().await?;
            let row = conn
                .query_opt(
                    "kv: get",
                    "SELECT value FROM kv WHERE ns = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await?;
            row.map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text)
                    .map_err(|e| conn.corrupt("kv: get", format!("{ns}/{key}: {e}")))
            })
            .transpose()
        })
    }

    fn kv_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let text = value.to_string();
        let now = chrono::Utc::now().timestamp_millis();
        Box::pin(async move {
            let mut conn = self.pool().get().await?;
            conn.execute(
                "kv: set",
                "INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,
                     updated_at = excluded.updated_at",
                &[&ns, &key, &text, &now],
            )
            .await?;
            Ok(())
        })
    }

    fn kv_delete<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool().get().await?;
            let n = conn
                .execute(
                    "kv: delete",
                    "DELETE FROM kv WHERE ns = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await?;
            Ok(n > 0)
        })
    }
}
