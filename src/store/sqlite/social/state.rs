//! The outbox's side tables on SQLite: engagement samples, learned rate-limit budgets and
//! refreshed tokens (the [`SocialStore`](crate::store::SocialStore) methods delegate here).

use futures_util::future::BoxFuture;
use rusqlite::{params, OptionalExtension};

use super::rows::{query_posts, COLUMNS};
use crate::clients::social::Tokens;
use crate::social::{MetricSample, PostId, PostRecord};
use crate::store::sqlite::SqliteStore;
use crate::store::{Millis, StoreError};

impl SqliteStore {
    pub(super) fn social_metrics_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM social_posts WHERE status = 'posted'
                 AND metrics_next IS NOT NULL AND metrics_next <= ?1
                 ORDER BY metrics_next LIMIT ?2"
            );
            query_posts(
                conn,
                "social: metrics due",
                &sql,
                params![now, limit as i64],
            )
        }))
    }

    pub(super) fn social_record_metrics(
        &self,
        id: PostId,
        taken_at: Millis,
        metrics: Vec<(String, i64)>,
        next: Option<Millis>,
        done: Option<u32>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            let what = "social: record metrics";
            for (name, value) in &metrics {
                txn.prepare_cached(
                    "INSERT INTO social_metrics (post, taken_at, name, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (post, taken_at, name) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![id, taken_at, name, value]))
                .map_err(StoreError::sql(what))?;
            }
            txn.prepare_cached(
                "UPDATE social_posts SET metrics_next = ?2,
                     metrics_done = COALESCE(?3, metrics_done)
                 WHERE id = ?1 AND status = 'posted'",
            )
            .and_then(|mut s| s.execute(params![id, next, done]))
            .map_err(StoreError::sql(what))?;
            Ok(())
        }))
    }

    pub(super) fn social_metric_samples(
        &self,
        ids: Vec<PostId>,
    ) -> BoxFuture<'_, Result<Vec<MetricSample>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let mut out = Vec::new();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT taken_at, name, value FROM social_metrics WHERE post = ?1
                     ORDER BY taken_at, name",
                )
                .map_err(StoreError::sql("social: read metrics"))?;
            for id in ids {
                let rows = stmt
                    .query_map(params![id], |r| {
                        Ok(MetricSample {
                            post: id,
                            taken_at: r.get(0)?,
                            name: r.get(1)?,
                            value: r.get(2)?,
                        })
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(StoreError::sql("social: read metrics"))?;
                out.extend(rows);
            }
            Ok(out)
        }))
    }

    pub(super) fn social_save_budget(
        &self,
        account: String,
        op: String,
        bucket: String,
        info: serde_json::Value,
        blocked_until: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let info = info.to_string();
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO social_budgets (account, op, bucket, info, blocked_until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account, op, bucket) DO UPDATE SET info = excluded.info,
                     blocked_until = excluded.blocked_until, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![account, op, bucket, info, blocked_until, now]))
            .map_err(StoreError::sql("social: save budget"))?;
            Ok(())
        }))
    }

    pub(super) fn social_blocked_until(
        &self,
        account: String,
        op: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<Millis>, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached(
                "SELECT MAX(blocked_until) FROM social_budgets
                 WHERE account = ?1 AND op = ?2 AND blocked_until > ?3",
            )
            .and_then(|mut s| s.query_row(params![account, op, now], |r| r.get(0)))
            .map_err(StoreError::sql("social: read budgets"))
        }))
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn social_budgets(
        &self,
    ) -> BoxFuture<
        '_,
        Result<Vec<(String, String, String, serde_json::Value, Option<Millis>)>, StoreError>,
    > {
        Box::pin(self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT account, op, bucket, info, blocked_until FROM social_budgets
                     ORDER BY account, op, bucket",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<Millis>>(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(StoreError::sql("social: read budgets"))?;
            Ok(rows
                .into_iter()
                .map(|(a, o, b, info, until)| {
                    (
                        a,
                        o,
                        b,
                        serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
                        until,
                    )
                })
                .collect())
        }))
    }

    pub(super) fn social_load_tokens(
        &self,
        account: String,
    ) -> BoxFuture<'_, Result<Option<Tokens>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let text: Option<String> = conn
                .prepare_cached("SELECT tokens FROM social_tokens WHERE account = ?1")
                .and_then(|mut s| s.query_row(params![account], |r| r.get(0)).optional())
                .map_err(StoreError::sql("social: load tokens"))?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| StoreError::corrupt("social: load tokens", e))
            })
            .transpose()
        }))
    }

    pub(super) fn social_save_tokens(
        &self,
        account: String,
        tokens: Tokens,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let text = serde_json::to_string(&tokens);
        Box::pin(self.write(move |txn| {
            let text = text.map_err(|e| StoreError::corrupt("social: save tokens", e))?;
            txn.prepare_cached(
                "INSERT INTO social_tokens (account, tokens, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) DO UPDATE SET tokens = excluded.tokens,
                     updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![account, text, now]))
            .map_err(StoreError::sql("social: save tokens"))?;
            Ok(())
        }))
    }
}
