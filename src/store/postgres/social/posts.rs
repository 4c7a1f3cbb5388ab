//! Post transitions, each in its caller's transaction. Where SQLite's single writer makes
//! them safe by running one at a time, here nodes run them at once:
//! - a claim takes due posts `FOR UPDATE SKIP LOCKED` and rechecks each (PostgreSQL
//!   re-evaluates the condition on the newest version of a row it locks), so a post is
//!   claimed, and sent, by one node;
//! - an insert holds an advisory lock on its (account, content hash) while it checks for a
//!   duplicate, and inserts `ON CONFLICT (account, idem_key) DO NOTHING`: the same order
//!   from two nodes stores one row, and the same content within the window one post.

use super::rows::{fail_orphans, one_post, query_posts, COLUMNS};
use crate::social::{Inserted, NewPost, Outcome, PostFilter, PostId, PostRecord};
use crate::store::postgres::pool::Conn;
use crate::store::{Millis, StoreError};

/// ASCII "dsoc": the first key of the per-content insert lock.
const INSERT_LOCK: i32 = 0x6473_6f63;

async fn same_key(c: &mut Conn, post: &NewPost) -> Result<Option<PostRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM social_posts WHERE account = $1 AND idem_key = $2");
    Ok(query_posts(
        c,
        "social: find key",
        &sql,
        &[&post.account, &post.idempotency_key],
    )
    .await?
    .into_iter()
    .next())
}

pub(super) async fn insert(
    c: &mut Conn,
    post: &NewPost,
    content: &str,
    content_hash: &str,
    dedup_since: Option<Millis>,
    now: Millis,
) -> Result<Inserted, StoreError> {
    // Held to the commit: a second insert of the same content waits here, then sees this
    // one's row in its duplicate check.
    c.query(
        "social: lock the content",
        "SELECT pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))",
        &[&INSERT_LOCK, &post.account, &content_hash],
    )
    .await?;
    if let Some(found) = same_key(c, post).await? {
        return Ok(Inserted::SameKey(found));
    }
    if let Some(since) = dedup_since {
        let sql = format!(
            "SELECT {COLUMNS} FROM social_posts WHERE account = $1 AND content_hash = $2
             AND created_at >= $3 AND status IN ('queued', 'sending', 'posted')
             ORDER BY id DESC LIMIT 1"
        );
        let dup = query_posts(
            c,
            "social: dedup",
            &sql,
            &[&post.account, &content_hash, &since],
        )
        .await?;
        if let Some(found) = dup.into_iter().next() {
            return Ok(Inserted::Duplicate(found));
        }
    }
    let sql = format!(
        "INSERT INTO social_posts (account, platform, status, content, idem_key, content_hash,
             parent, source, created_at, updated_at, not_before, max_attempts)
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $8, $9, $10)
         ON CONFLICT (account, idem_key) DO NOTHING
         RETURNING {COLUMNS}"
    );
    let created = query_posts(
        c,
        "social: insert post",
        &sql,
        &[
            &post.account,
            &post.platform.name(),
            &content,
            &post.idempotency_key,
            &content_hash,
            &post.parent,
            &post.source,
            &now,
            &post.not_before,
            &i64::from(post.max_attempts),
        ],
    )
    .await?;
    if let Some(created) = created.into_iter().next() {
        return Ok(Inserted::Created(created));
    }
    // Another node committed the same key (with other content) since the check above.
    same_key(c, post)
        .await?
        .map(Inserted::SameKey)
        .ok_or_else(|| StoreError::corrupt("social: insert post", "conflicting row vanished"))
}

pub(super) async fn claim(
    c: &mut Conn,
    now: Millis,
    lease_until: Millis,
    limit: usize,
    only: Option<PostId>,
) -> Result<Vec<PostRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // A lapsed `sending` row's sender died mid-call: whether the platform got the post is
    // unknown until it is looked up, hence `unsure`. SET reads the row as it was.
    let sql = format!(
        "WITH due AS (
             SELECT p.id AS due_id FROM social_posts p
             WHERE ((p.status = 'queued' AND p.not_before <= $1 AND (p.parent IS NULL
                    OR EXISTS (SELECT 1 FROM social_posts q
                               WHERE q.id = p.parent AND q.status = 'posted')))
                OR (p.status = 'sending' AND p.lease_until < $1))
               AND ($3::BIGINT IS NULL OR p.id = $3)
             ORDER BY p.not_before, p.id LIMIT $2
             FOR UPDATE OF p SKIP LOCKED
         )
         UPDATE social_posts SET
             unsure = CASE WHEN status = 'sending' THEN 1 ELSE unsure END,
             status = 'sending', lease_until = $4, updated_at = $1,
             sending_since = CASE WHEN status = 'sending' THEN sending_since ELSE $1 END
         FROM due WHERE id = due.due_id
         RETURNING {COLUMNS}"
    );
    let mut claimed = query_posts(
        c,
        "social: claim posts",
        &sql,
        &[&now, &limit, &only, &lease_until],
    )
    .await?;
    claimed.sort_by_key(|p| (p.not_before, p.id));
    Ok(claimed)
}

pub(super) async fn finish(
    c: &mut Conn,
    id: PostId,
    outcome: &Outcome,
    now: Millis,
) -> Result<Option<PostRecord>, StoreError> {
    let what = "social: finish post";
    let n = match outcome {
        Outcome::Posted {
            platform_id,
            url,
            at,
            metrics_next,
        } => {
            c.execute(
                what,
                "UPDATE social_posts SET status = 'posted', platform_id = $2, url = $3,
                     posted_at = $4, metrics_next = $5, lease_until = NULL, unsure = 0,
                     error_kind = NULL, error = NULL, updated_at = $6
                 WHERE id = $1 AND status = 'sending'",
                &[&id, platform_id, url, at, metrics_next, &now],
            )
            .await?
        }
        Outcome::Requeue {
            not_before,
            kind,
            error,
            counted,
            unsure,
        } => {
            c.execute(
                what,
                "UPDATE social_posts SET status = 'queued', not_before = $2,
                     error_kind = $3, error = $4, attempts = attempts + $5,
                     unsure = $6, lease_until = NULL, updated_at = $7
                 WHERE id = $1 AND status = 'sending'",
                &[
                    &id,
                    not_before,
                    kind,
                    error,
                    &i64::from(*counted),
                    &i64::from(*unsure),
                    &now,
                ],
            )
            .await?
        }
        Outcome::Give {
            status,
            kind,
            error,
        } => {
            c.execute(
                what,
                "UPDATE social_posts SET status = $2, error_kind = $3, error = $4,
                     attempts = attempts + 1, lease_until = NULL, updated_at = $5
                 WHERE id = $1 AND status = 'sending'",
                &[&id, &status.name(), kind, error, &now],
            )
            .await?
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // Only giving up makes replies orphans; skipping the sweep otherwise keeps concurrent
    // finishes on several nodes from locking each other's rows.
    if matches!(outcome, Outcome::Give { .. }) {
        fail_orphans(c, now).await?;
    }
    one_post(c, id).await
}

pub(super) async fn list(c: &mut Conn, filter: &PostFilter) -> Result<Vec<PostRecord>, StoreError> {
    let statuses: Vec<String> = filter
        .statuses
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM social_posts WHERE ($1::TEXT IS NULL OR account = $1)
         AND created_at >= $2 AND (cardinality($3::TEXT[]) = 0 OR status = ANY($3))
         ORDER BY id DESC LIMIT $4"
    );
    query_posts(
        c,
        "social: list posts",
        &sql,
        &[
            &filter.account,
            &filter.since.unwrap_or(i64::MIN),
            &statuses,
            &filter
                .limit
                .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        ],
    )
    .await
}

/// Runs `sql` (an UPDATE of post `$1` at `$2`); the row afterwards, or `None` when the
/// update did not apply. `orphans`: replies of a post that will not be posted fail too.
pub(super) async fn update_one(
    c: &mut Conn,
    what: &'static str,
    sql: &str,
    id: PostId,
    now: Millis,
    orphans: bool,
) -> Result<Option<PostRecord>, StoreError> {
    if c.execute(what, sql, &[&id, &now]).await? == 0 {
        return Ok(None);
    }
    if orphans {
        fail_orphans(c, now).await?;
    }
    one_post(c, id).await
}
