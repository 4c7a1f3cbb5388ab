//! Decoding outbox rows and the statements several methods share.

use tokio_postgres::Row;

use crate::clients::social::Platform;
use crate::social::{PostId, PostRecord, Status};
use crate::store::postgres::pool::{Conn, Params};
use crate::store::{Millis, StoreError};

/// Columns [`post_of`] reads, in order (the SQLite backend's list).
pub(super) const COLUMNS: &str = "id, account, platform, status, content, idem_key, \
    content_hash, parent, source, created_at, updated_at, not_before, attempts, max_attempts, \
    lease_until, sending_since, unsure, platform_id, url, posted_at, error_kind, error, \
    metrics_next, metrics_done";

pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A row of [`COLUMNS`]; unknown names and bad JSON are errors, not panics.
pub(super) fn post_of(row: &Row) -> Result<PostRecord, StoreError> {
    let what = "social: read post";
    let get = |e: tokio_postgres::Error| StoreError::corrupt(what, e);
    let platform: String = row.try_get(2).map_err(get)?;
    let status: String = row.try_get(3).map_err(get)?;
    let content: String = row.try_get(4).map_err(get)?;
    Ok(PostRecord {
        id: row.try_get(0).map_err(get)?,
        account: row.try_get(1).map_err(get)?,
        platform: Platform::parse(&platform)
            .ok_or_else(|| StoreError::corrupt(what, format!("platform {platform}")))?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::corrupt(what, format!("status {status}")))?,
        content: serde_json::from_str(&content).map_err(|e| StoreError::corrupt(what, e))?,
        idempotency_key: row.try_get(5).map_err(get)?,
        content_hash: row.try_get(6).map_err(get)?,
        parent: row.try_get(7).map_err(get)?,
        source: row.try_get(8).map_err(get)?,
        created_at: row.try_get(9).map_err(get)?,
        updated_at: row.try_get(10).map_err(get)?,
        not_before: row.try_get(11).map_err(get)?,
        attempts: count(row.try_get(12).map_err(get)?),
        max_attempts: count(row.try_get(13).map_err(get)?),
        lease_until: row.try_get(14).map_err(get)?,
        sending_since: row.try_get(15).map_err(get)?,
        unsure: row.try_get::<_, i64>(16).map_err(get)? != 0,
        platform_id: row.try_get(17).map_err(get)?,
        url: row.try_get(18).map_err(get)?,
        posted_at: row.try_get(19).map_err(get)?,
        error_kind: row.try_get(20).map_err(get)?,
        error: row.try_get(21).map_err(get)?,
        metrics_next: row.try_get(22).map_err(get)?,
        metrics_done: count(row.try_get(23).map_err(get)?),
    })
}

pub(super) async fn query_posts(
    c: &mut Conn,
    what: &'static str,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<PostRecord>, StoreError> {
    c.query(what, sql, params)
        .await?
        .iter()
        .map(post_of)
        .collect()
}

pub(super) async fn one_post(c: &mut Conn, id: PostId) -> Result<Option<PostRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM social_posts WHERE id = $1");
    Ok(query_posts(c, "social: get post", &sql, &[&id])
        .await?
        .into_iter()
        .next())
}

/// Fails queued replies of posts that will never be posted, transitively.
pub(super) async fn fail_orphans(c: &mut Conn, now: Millis) -> Result<(), StoreError> {
    loop {
        let n = c
            .execute(
                "social: fail replies",
                "UPDATE social_posts SET status = 'failed', error_kind = 'invalid',
                     error = 'the post it replies to was not posted', updated_at = $1
                 WHERE status = 'queued' AND parent IN (SELECT id FROM social_posts
                     WHERE status IN ('failed', 'dead', 'cancelled', 'deleted'))",
                &[&now],
            )
            .await?;
        if n == 0 {
            return Ok(());
        }
    }
}
