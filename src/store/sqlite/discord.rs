//! [`DiscordOutboxStore`] on SQLite: the queue of Discord posts, claimed under a lease as
//! on PostgreSQL (one SQLite file has one daemon, but the semantics are the trait's).

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{DiscordOutboxStore, Millis, OutboxClaim, OutboxRow, StoreError};

/// Migration 11.
pub(super) const SCHEMA: &str = "
CREATE TABLE discord_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
";

/// Migration 15: posts are claimed under a lease (several delivering nodes, each post once).
pub(super) const LEASES: &str = "
ALTER TABLE discord_outbox ADD COLUMN lease_until INTEGER;
";

/// The claim, one statement both backends run: lease the oldest `?2` posts until `?3`
/// unless some post is leased past `?1` (another deliverer holds a live claim).
pub(crate) const CLAIM_SQL: &str = "
UPDATE discord_outbox SET lease_until = $3
WHERE id IN (SELECT id FROM discord_outbox ORDER BY id LIMIT $2)
  AND NOT EXISTS (SELECT 1 FROM discord_outbox WHERE lease_until > $1)
RETURNING id, target, body, created_at, attempts";

/// A row of `id, target, body, created_at, attempts`, its body decoded.
pub(crate) fn outbox_row(
    id: i64,
    target: String,
    body: &str,
    created_at: Millis,
    attempts: i64,
) -> Result<OutboxRow, StoreError> {
    let body = serde_json::from_str(body)
        .map_err(|e| StoreError::corrupt("discord outbox: read", format!("post {id}: {e}")))?;
    Ok(OutboxRow {
        id,
        target,
        body,
        created_at,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

fn rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    args: impl rusqlite::Params,
    what: &'static str,
) -> Result<Vec<OutboxRow>, StoreError> {
    let raw = stmt
        .query_map(args, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(StoreError::sql(what))?;
    let mut out = raw
        .into_iter()
        .map(|(id, target, body, at, attempts)| outbox_row(id, target, &body, at, attempts))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

impl DiscordOutboxStore for SqliteStore {
    fn outbox_push(
        &self,
        target: String,
        body: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<i64, StoreError>> {
        let body = body.to_string();
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO discord_outbox (target, body, created_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![target, body, now]))
            .map_err(StoreError::sql("discord outbox: push"))?;
            Ok(txn.last_insert_rowid())
        }))
    }

    fn outbox_claim(
        &self,
        limit: usize,
        now: Millis,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<OutboxClaim, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The single writer runs claims one at a time: the live-claim check and the
        // update cannot interleave with another claim.
        Box::pin(self.write(move |txn| {
            let what = "discord outbox: claim";
            let mut stmt = txn
                .prepare_cached(&CLAIM_SQL.replace('$', "?"))
                .map_err(StoreError::sql(what))?;
            let rows = rows(&mut stmt, params![now, limit, lease_until], what)?;
            Ok(OutboxClaim { rows, lease_until })
        }))
    }

    fn outbox_done(&self, id: i64, lease_until: Millis) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached("DELETE FROM discord_outbox WHERE id = ?1 AND lease_until = ?2")
                .and_then(|mut s| s.execute(params![id, lease_until]))
                .map_err(StoreError::sql("discord outbox: done"))?;
            Ok(n > 0)
        }))
    }

    fn outbox_failed(
        &self,
        id: i64,
        lease_until: Millis,
        error: String,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached(
                    "UPDATE discord_outbox SET attempts = attempts + 1, last_error = ?3,
                         lease_until = NULL
                     WHERE id = ?1 AND lease_until = ?2",
                )
                .and_then(|mut s| s.execute(params![id, lease_until, error]))
                .map_err(StoreError::sql("discord outbox: failed"))?;
            Ok(n > 0)
        }))
    }

    fn outbox_release(
        &self,
        ids: Vec<i64>,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            let mut stmt = txn
                .prepare_cached(
                    "UPDATE discord_outbox SET lease_until = NULL
                     WHERE id = ?1 AND lease_until = ?2",
                )
                .map_err(StoreError::sql("discord outbox: release"))?;
            for id in ids {
                stmt.execute(params![id, lease_until])
                    .map_err(StoreError::sql("discord outbox: release"))?;
            }
            Ok(())
        }))
    }

    fn outbox_pending(&self, limit: usize) -> BoxFuture<'_, Result<Vec<OutboxRow>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.read(move |conn| {
            let what = "discord outbox: list";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, target, body, created_at, attempts FROM discord_outbox
                     ORDER BY id LIMIT ?1",
                )
                .map_err(StoreError::sql(what))?;
            rows(&mut stmt, params![limit], what)
        }))
    }
}
