//! The outbox table's schema and row decoding, shared by the post and side-table methods.

use rusqlite::{params, Connection, Row, Transaction};

use crate::clients::social::Platform;
use crate::social::{PostId, PostRecord, Status};
use crate::store::{Millis, StoreError};

/// Migration 9.
pub(in crate::store::sqlite) const SCHEMA: &str = "
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

pub(super) const COLUMNS: &str =
    "id, account, platform, status, content, idem_key, content_hash, parent, \
    source, created_at, updated_at, not_before, attempts, max_attempts, lease_until, \
    sending_since, unsure, platform_id, url, posted_at, error_kind, error, metrics_next, \
    metrics_done";

pub(super) fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<PostRecord, StoreError>> {
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

pub(super) fn query_posts(
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

pub(super) fn one_post(conn: &Connection, id: PostId) -> Result<Option<PostRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM social_posts WHERE id = ?1");
    Ok(query_posts(conn, "social: get post", &sql, params![id])?
        .into_iter()
        .next())
}

/// Fails queued replies of posts that will never be posted, transitively.
pub(super) fn fail_orphans(txn: &Transaction<'_>, now: Millis) -> Result<(), StoreError> {
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
