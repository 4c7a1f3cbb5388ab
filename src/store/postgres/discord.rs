//! [`DiscordOutboxStore`] on PostgreSQL: migration 11's queue, claimed under a lease with
//! the statement SQLite runs. Claims from every node are serialized by a transaction-level
//! advisory lock (per schema), so the live-claim check and the lease are one step: two
//! nodes never hold a claim at once, and a post goes out once and in order.

use futures_util::future::BoxFuture;

use super::PgStore;
use crate::store::sqlite::discord::{outbox_row, CLAIM_SQL};
use crate::store::{DiscordOutboxStore, Millis, OutboxClaim, OutboxRow, StoreError};

/// ASCII "dobx": the first key of the claim lock, the schema's hash the second.
const CLAIM_LOCK: i32 = 0x646f_6278;

fn decode(rows: &[tokio_postgres::Row]) -> Result<Vec<OutboxRow>, StoreError> {
    let mut out = rows
        .iter()
        .map(|r| {
            let body: String = r.get(2);
            outbox_row(r.get(0), r.get(1), &body, r.get(3), r.get(4))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

impl DiscordOutboxStore for PgStore {
    fn outbox_push(
        &self,
        target: String,
        body: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<i64, StoreError>> {
        let body = body.to_string();
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "discord outbox: push",
                        "INSERT INTO discord_outbox (target, body, created_at) VALUES ($1, $2, $3)
                         RETURNING id",
                        &[&target, &body, &now],
                    )
                    .await?;
                Ok(row.get(0))
            })
        }))
    }

    fn outbox_claim(
        &self,
        limit: usize,
        now: Millis,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<OutboxClaim, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move {
                // Held to the commit; the claim's statement then sees every claim
                // committed before it (read committed takes its snapshot per statement).
                c.query(
                    "discord outbox: wait for other claims",
                    "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                    &[&CLAIM_LOCK],
                )
                .await?;
                let rows = c
                    .query(
                        "discord outbox: claim",
                        CLAIM_SQL,
                        &[&now, &limit, &lease_until],
                    )
                    .await?;
                Ok(OutboxClaim {
                    rows: decode(&rows)?,
                    lease_until,
                })
            })
        }))
    }

    fn outbox_done(&self, id: i64, lease_until: Millis) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "discord outbox: done",
                        "DELETE FROM discord_outbox WHERE id = $1 AND lease_until = $2",
                        &[&id, &lease_until],
                    )
                    .await?;
                Ok(n > 0)
            })
        }))
    }

    fn outbox_failed(
        &self,
        id: i64,
        lease_until: Millis,
        error: String,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "discord outbox: failed",
                        "UPDATE discord_outbox SET attempts = attempts + 1, last_error = $3,
                             lease_until = NULL
                         WHERE id = $1 AND lease_until = $2",
                        &[&id, &lease_until, &error],
                    )
                    .await?;
                Ok(n > 0)
            })
        }))
    }

    fn outbox_release(
        &self,
        ids: Vec<i64>,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                c.execute(
                    "discord outbox: release",
                    "UPDATE discord_outbox SET lease_until = NULL
                     WHERE id = ANY($1) AND lease_until = $2",
                    &[&ids, &lease_until],
                )
                .await?;
                Ok(())
            })
        }))
    }

    fn outbox_pending(&self, limit: usize) -> BoxFuture<'_, Result<Vec<OutboxRow>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "discord outbox: list",
                        "SELECT id, target, body, created_at, attempts FROM discord_outbox
                         ORDER BY id LIMIT $1",
                        &[&limit],
                    )
                    .await?;
                decode(&rows)
            })
        }))
    }
}
