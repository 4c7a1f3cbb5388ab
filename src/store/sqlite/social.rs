//! [`SocialStore`] on SQLite. Plain SQL that PostgreSQL runs as written (a PostgreSQL claim
//! would add `FOR UPDATE SKIP LOCKED`); JSON lives in TEXT columns.

use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::SqliteStore;
use crate::clients::social::{Platform, Tokens};
use crate::social::{
    Inserted, MetricSample, NewPost, Outcome, PostFilter, PostId, PostRecord, Status,
};
use crate::store::{Millis, SocialStore, StoreError};

/// Migration 9.
pub(super) const SCHEMA: &str = "
CREATE TABLE social_posts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account         TEXT    NOT NULL,
    platform        TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    idem_key        TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    parent          INTEGER REFERENCES social_posts (id),
    source          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    not_before      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    lease_until     INTEGER,
    sending_since   INTEGER,
    unsure          INTEGER NOT NULL DEFAULT 0,
    platform_id     TEXT,
    url             TEXT,
    posted_at       INTEGER,
    error_kind      TEXT,
    error           TEXT,
    metrics_next    INTEGER,
    metrics_done    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, idem_key)
);
CREATE INDEX social_posts_due ON social_posts (status, not_before);
CREATE INDEX social_posts_hash ON social_posts (account, content_hash, created_at);
CREATE INDEX social_posts_metrics ON social_posts (metrics_next) WHERE metrics_next IS NOT NULL;
CREATE TABLE social_metrics (
    post      INTEGER NOT NULL REFERENCES social_posts (id),
    taken_at  INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    value     INTEGER NOT NULL,
    PRIMARY KEY (post, taken_at, name)
);
CREATE TABLE social_budgets (
    account       TEXT    NOT NULL,
    op            TEXT    NOT NULL,
    bucket        TEXT    NOT NULL,
    info          TEXT    NOT NULL,
    blocked_until INTEGER,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (account, op, bucket)
);
CREATE TABLE social_tokens (
    account    TEXT    PRIMARY KEY,
    tokens     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
";

const COLUMNS: &str = "id, account, platform, status, content, idem_key, content_hash, parent, \
    source, created_at, updated_at, not_before, attempts, max_attempts, lease_until, \
    sending_since, unsure, platform_id, url, posted_at, error_kind, error, metrics_next, \
    metrics_done";

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<PostRecord, StoreError>> {
    let platform: String = row.get(2)?;
    let status: String = row.get(3)?;
    let content: String = row.get(4)?;
    let decoded = (|| {
        let platform = Platform::parse(&platform).ok_or_else(|| {
            StoreError::corrupt("social: read post", format!("platform {platform}"))
        })?;
        let status = Status::parse(&status)
            .ok_or_else(|| StoreError::corrupt("social: read post", format!("status {status}")))?;
        let content = serde_json::from_str(&content)
            .map_err(|e| StoreError::corrupt("social: read post", e))?;
        Ok((platform, status, content))
    })();
    let (platform, status, content) = match decoded {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(PostRecord {
        id: row.get(0)?,
        account: row.get(1)?,
        platform,
        status,
        content,
        idempotency_key: row.get(5)?,
        content_hash: row.get(6)?,
        parent: row.get(7)?,
        source: row.get(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
        not_before: row.get(11)?,
        attempts: row.get(12)?,
        max_attempts: row.get(13)?,
        lease_until: row.get(14)?,
        sending_since: row.get(15)?,
        unsure: row.get::<_, i64>(16)? != 0,
        platform_id: row.get(17)?,
        url: row.get(18)?,
        posted_at: row.get(19)?,
        error_kind: row.get(20)?,
        error: row.get(21)?,
        metrics_next: row.get(22)?,
        metrics_done: row.get(23)?,
    }))
}

fn query_posts(
    conn: &Connection,
    what: &'static str,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PostRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::sql(what))?;
    let rows = stmt
        .query_map(args, read_row)
        .map_err(StoreError::sql(what))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(StoreError::sql(what))??);
    }
    Ok(out)
}

fn one_post(conn: &Connection, id: PostId) -> Result<Option<PostRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM social_posts WHERE id = ?1");
    Ok(query_posts(conn, "social: get post", &sql, params![id])?
        .into_iter()
        .next())
}

/// Fails queued replies of posts that will never be posted, transitively.
fn fail_orphans(txn: &Transaction<'_>, now: Millis) -> Result<(), StoreError> {
    loop {
        let n = txn
            .prepare_cached(
                "UPDATE social_posts SET status = 'failed', error_kind = 'invalid',
                     error = 'the post it replies to was not posted', updated_at = ?1
                 WHERE status = 'queued' AND parent IN (SELECT id FROM social_posts
                     WHERE status IN ('failed', 'dead', 'cancelled', 'deleted'))",
            )
            .and_then(|mut s| s.execute(params![now]))
            .map_err(StoreError::sql("social: fail replies"))?;
        if n == 0 {
            return Ok(());
        }
    }
}

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

    fn record_metrics(
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

    fn metric_samples(
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

    fn save_budget(
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

    fn blocked_until(
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
    fn budgets(
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

    fn load_tokens(&self, account: String) -> BoxFuture<'_, Result<Option<Tokens>, StoreError>> {
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

    fn save_tokens(
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
