//! [`SocialStore`] on SQLite. Plain SQL that PostgreSQL runs as written (a PostgreSQL claim
//! would add `FOR UPDATE SKIP LOCKED`); JSON lives in TEXT columns.

mod rows;
mod state;

pub(super) use rows::SCHEMA;
use rows::{fail_orphans, one_post, query_posts, COLUMNS};

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::SqliteStore;
use crate::clients::social::Tokens;
use crate::social::{Inserted, MetricSample, NewPost, Outcome, PostFilter, PostId, PostRecord};
use crate::store::{Millis, SocialStore, StoreError};

impl SocialStore for SqliteStore {
    fn insert_post(
        &self,
        post: NewPost,
        content_hash: String,
        dedup_since: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Inserted, StoreError>> {
        let content = serde_json::to_string(&post.content);
        Box::pin(self.write(move |txn| {
            let content = content.map_err(|e| StoreError::corrupt("social: insert post", e))?;
            let sql =
                format!("SELECT {COLUMNS} FROM social_posts WHERE account = ?1 AND idem_key = ?2");
            let same = query_posts(
                txn,
                "social: find key",
                &sql,
                params![post.account, post.idempotency_key],
            )?;
            if let Some(found) = same.into_iter().next() {
                return Ok(Inserted::SameKey(found));
            }
            if let Some(since) = dedup_since {
                let sql = format!(
                    "SELECT {COLUMNS} FROM social_posts WHERE account = ?1 AND content_hash = ?2
                     AND created_at >= ?3 AND status IN ('queued', 'sending', 'posted')
                     ORDER BY id DESC LIMIT 1"
                );
                let dup = query_posts(
                    txn,
                    "social: dedup",
                    &sql,
                    params![post.account, content_hash, since],
                )?;
                if let Some(found) = dup.into_iter().next() {
                    return Ok(Inserted::Duplicate(found));
                }
            }
            let id: PostId = txn
                .prepare_cached(
                    "INSERT INTO social_posts (account, platform, status, content, idem_key,
                         content_hash, parent, source, created_at, updated_at, not_before,
                         max_attempts)
                     VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)
                     RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            post.account,
                            post.platform.name(),
                            content,
                            post.idempotency_key,
                            content_hash,
                            post.parent,
                            post.source,
                            now,
                            post.not_before,
                            post.max_attempts
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(StoreError::sql("social: insert post"))?;
            let created = one_post(txn, id)?
                .ok_or_else(|| StoreError::corrupt("social: insert post", "row vanished"))?;
            Ok(Inserted::Created(created))
        }))
    }

    fn claim_posts(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
        only: Option<PostId>,
    ) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let ids: Vec<PostId> = txn
                .prepare_cached(
                    "SELECT p.id FROM social_posts p
                     WHERE ((p.status = 'queued' AND p.not_before <= ?1 AND (p.parent IS NULL
                            OR EXISTS (SELECT 1 FROM social_posts q
                                       WHERE q.id = p.parent AND q.status = 'posted')))
                        OR (p.status = 'sending' AND p.lease_until < ?1))
                       AND (?3 IS NULL OR p.id = ?3)
                     ORDER BY p.not_before, p.id LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![now, limit as i64, only], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<PostId>>>()
                })
                .map_err(StoreError::sql("social: find due posts"))?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                // A lapsed `sending` row's sender died mid-call: whether the platform got
                // the post is unknown until it is looked up.
                txn.prepare_cached(
                    "UPDATE social_posts SET
                         unsure = CASE WHEN status = 'sending' THEN 1 ELSE unsure END,
                         status = 'sending', lease_until = ?2, updated_at = ?3,
                         sending_since = CASE WHEN status = 'sending' THEN sending_since ELSE ?3 END
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, lease_until, now]))
                .map_err(StoreError::sql("social: claim post"))?;
                if let Some(p) = one_post(txn, id)? {
                    claimed.push(p);
                }
            }
            Ok(claimed)
        }))
    }

    fn finish_post(
        &self,
        id: PostId,
        outcome: Outcome,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let what = "social: finish post";
            let n = match &outcome {
                Outcome::Posted {
                    platform_id,
                    url,
                    at,
                    metrics_next,
                } => txn
                    .prepare_cached(
                        "UPDATE social_posts SET status = 'posted', platform_id = ?2, url = ?3,
                             posted_at = ?4, metrics_next = ?5, lease_until = NULL, unsure = 0,
                             error_kind = NULL, error = NULL, updated_at = ?6
                         WHERE id = ?1 AND status = 'sending'",
                    )
                    .and_then(|mut s| {
                        s.execute(params![id, platform_id, url, at, metrics_next, now])
                    }),
                Outcome::Requeue {
                    not_before,
                    kind,
                    error,
                    counted,
                    unsure,
                } => txn
                    .prepare_cached(
                        "UPDATE social_posts SET status = 'queued', not_before = ?2,
                             error_kind = ?3, error = ?4, attempts = attempts + ?5,
                             unsure = ?6, lease_until = NULL, updated_at = ?7
                         WHERE id = ?1 AND status = 'sending'",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id,
                            not_before,
                            kind,
                            error,
                            i64::from(*counted),
                            i64::from(*unsure),
                            now
                        ])
                    }),
                Outcome::Give {
                    status,
                    kind,
                    error,
                } => txn
                    .prepare_cached(
                        "UPDATE social_posts SET status = ?2, error_kind = ?3, error = ?4,
                             attempts = attempts + 1, lease_until = NULL, updated_at = ?5
                         WHERE id = ?1 AND status = 'sending'",
                    )
                    .and_then(|mut s| s.execute(params![id, status.name(), kind, error, now])),
            }
            .map_err(StoreError::sql(what))?;
            if n == 0 {
                return Ok(None);
            }
            fail_orphans(txn, now)?;
            one_post(txn, id)
        }))
    }

    fn get_post(&self, id: PostId) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.read(move |conn| one_post(conn, id)))
    }

    fn list_posts(&self, filter: PostFilter) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let statuses: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| format!("'{}'", s.name()))
                .collect();
            let mut sql = format!(
                "SELECT {COLUMNS} FROM social_posts WHERE (?1 IS NULL OR account = ?1)
                 AND created_at >= ?2"
            );
            if !statuses.is_empty() {
                // Names come from the Status enum, never from input.
                sql.push_str(&format!(" AND status IN ({})", statuses.join(", ")));
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?3");
            query_posts(
                conn,
                "social: list posts",
                &sql,
                params![
                    filter.account,
                    filter.since.unwrap_or(i64::MIN),
                    filter.limit.map_or(i64::MAX, |l| l as i64)
                ],
            )
        }))
    }

    fn retry_post(
        &self,
        id: PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached(
                    "UPDATE social_posts SET status = 'queued', attempts = 0, not_before = ?2,
                         updated_at = ?2
                     WHERE id = ?1 AND status IN ('failed', 'dead', 'cancelled')",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map_err(StoreError::sql("social: retry post"))?;
            if n == 0 {
                return Ok(None);
            }
            one_post(txn, id)
        }))
    }

    fn cancel_post(
        &self,
        id: PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<PostRecord>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached(
                    "UPDATE social_posts SET status = 'cancelled', updated_at = ?2
                     WHERE id = ?1 AND status = 'queued'",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map_err(StoreError::sql("social: cancel post"))?;
            if n == 0 {
                return Ok(None);
            }
            fail_orphans(txn, now)?;
            one_post(txn, id)
        }))
    }

    fn mark_deleted(&self, id: PostId, now: Millis) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached(
                    "UPDATE social_posts SET status = 'deleted', metrics_next = NULL, updated_at = ?2
                     WHERE id = ?1 AND status = 'posted'",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map_err(StoreError::sql("social: delete post"))?;
            Ok(n > 0)
        }))
    }

    fn send_times(
        &self,
        account: String,
        since: Millis,
        except: PostId,
    ) -> BoxFuture<'_, Result<Vec<Millis>, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached(
                "SELECT COALESCE(posted_at, sending_since) AS t FROM social_posts
                 WHERE account = ?1 AND status IN ('posted', 'deleted', 'sending')
                   AND COALESCE(posted_at, sending_since) >= ?2 AND id <> ?3
                 ORDER BY t",
            )
            .and_then(|mut s| {
                s.query_map(params![account, since, except], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<Millis>>>()
            })
            .map_err(StoreError::sql("social: send times"))
        }))
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<Millis>, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached(
                "SELECT MIN(t) FROM (
                     SELECT MIN(p.not_before) AS t FROM social_posts p WHERE p.status = 'queued'
                         AND (p.parent IS NULL OR EXISTS (SELECT 1 FROM social_posts q
                              WHERE q.id = p.parent AND q.status = 'posted'))
                     UNION ALL SELECT MIN(lease_until) FROM social_posts WHERE status = 'sending'
                     UNION ALL SELECT MIN(metrics_next) FROM social_posts
                         WHERE metrics_next IS NOT NULL AND status = 'posted'
                 ) AS due",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(StoreError::sql("social: next due"))
        }))
    }

    fn metrics_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<PostRecord>, StoreError>> {
        self.social_metrics_due(now, limit)
    }

    fn record_metrics(
        &self,
        id: PostId,
        taken_at: Millis,
        metrics: Vec<(String, i64)>,
        next: Option<Millis>,
        done: Option<u32>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.social_record_metrics(id, taken_at, metrics, next, done)
    }

    fn metric_samples(
        &self,
        ids: Vec<PostId>,
    ) -> BoxFuture<'_, Result<Vec<MetricSample>, StoreError>> {
        self.social_metric_samples(ids)
    }

    fn save_budget(
        &self,
        account: String,
        op: String,
        bucket: String,
        info: serde_json::Value,
        blocked_until: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.social_save_budget(account, op, bucket, info, blocked_until, now)
    }

    fn blocked_until(
        &self,
        account: String,
        op: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<Millis>, StoreError>> {
        self.social_blocked_until(account, op, now)
    }

    #[allow(clippy::type_complexity)]
    fn budgets(
        &self,
    ) -> BoxFuture<
        '_,
        Result<Vec<(String, String, String, serde_json::Value, Option<Millis>)>, StoreError>,
    > {
        self.social_budgets()
    }

    fn load_tokens(&self, account: String) -> BoxFuture<'_, Result<Option<Tokens>, StoreError>> {
        self.social_load_tokens(account)
    }

    fn save_tokens(
        &self,
        account: String,
        tokens: Tokens,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.social_save_tokens(account, tokens, now)
    }
}
