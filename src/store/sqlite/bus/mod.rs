//! [`BusStore`] on SQLite.
//!
//! One row per message in `bus_messages` holds the message and its happy path (created,
//! delivered, acked). Earlier attempts and unusual transitions (retried, timeout, failed,
//! dead, requeued) are rows in `bus_events`; see [`transitions`](crate::store::transitions) for how they
//! combine.
//! A partial index over pending messages only keeps claiming fast however long the
//! history grows.

mod history;
mod queue;

use futures_util::future::BoxFuture;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::SqliteStore;
use crate::store::{
    BusStats, BusStore, Claimed, DeliveryRef, HistoryQuery, HistoryRecord, MessageId,
    MessageStatus, Millis, NewMessage, Priority, SettleOutcome, StoreError, StoredMessage,
};

/// Migration 1.
///
/// Ids must never be reused (a receipt or an export cursor must never point at a different
/// message), which plain rowids do after the newest row is deleted. `bus_sequence` holds
/// the next id; an enqueue reads it once and writes it back once per batch, where
/// `AUTOINCREMENT` would write its counter once per row.
///
/// Indexes are what the hot path needs, nothing more: a partial index over pending
/// messages only (claiming stays fast however long history grows) and one over dead
/// letters. History filters scan newest-first over a table that retention keeps bounded.
pub(super) const SCHEMA: &str = "
CREATE TABLE bus_messages (
    id             INTEGER PRIMARY KEY,
    channel        TEXT    NOT NULL,
    recipient      TEXT    NOT NULL,
    sender         TEXT    NOT NULL,
    priority       INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    headers        TEXT,
    correlation_id TEXT,
    reply_to       TEXT,
    status         TEXT    NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    backoff_ms     INTEGER,
    visible_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    created_at     INTEGER NOT NULL,
    delivered_at   INTEGER,
    finished_at    INTEGER,
    error          TEXT
);
CREATE INDEX bus_messages_pending ON bus_messages (channel, priority, id, visible_at)
    WHERE status IN ('queued', 'delivered');
CREATE INDEX bus_messages_dead ON bus_messages (id) WHERE status IN ('failed', 'dead');
CREATE TABLE bus_events (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    error      TEXT
);
CREATE INDEX bus_events_message ON bus_events (message_id, id);
CREATE TABLE bus_sequence (
    next_id INTEGER NOT NULL
);
INSERT INTO bus_sequence (next_id) VALUES (1);
CREATE TABLE bus_inboxes (
    channel       TEXT    PRIMARY KEY,
    registered_at INTEGER NOT NULL
);
";

/// Rows deleted per write job while pruning, so a big prune never holds the writer (and
/// every sender behind it) for long.
pub(super) const PRUNE_CHUNK: usize = 2000;

pub(super) const MESSAGE_COLUMNS: &str =
    "id, channel, recipient, sender, priority, payload, headers, \
    correlation_id, reply_to, max_attempts, backoff_ms, expires_at, created_at";

pub(super) const HISTORY_COLUMNS: &str =
    "id, sender, recipient, channel, payload, priority, status, \
    attempts, created_at, delivered_at, finished_at, error";

pub(super) fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    text.parse()
        .map_err(|e| StoreError::corrupt("bus: read status", e))
}

pub(super) fn priority_of(rank: i64) -> Result<Priority, StoreError> {
    Priority::from_rank(rank).ok_or_else(|| StoreError::corrupt("bus: read priority", rank))
}

pub(super) fn stored_message(row: &Row<'_>) -> rusqlite::Result<(StoredMessage, i64)> {
    let rank: i64 = row.get(4)?;
    Ok((
        StoredMessage {
            id: row.get(0)?,
            channel: row.get(1)?,
            recipient: row.get(2)?,
            sender: row.get(3)?,
            priority: Priority::Normal,
            payload: row.get(5)?,
            headers: row.get(6)?,
            correlation_id: row.get(7)?,
            reply_to: row.get(8)?,
            max_attempts: row.get(9)?,
            backoff_ms: row.get(10)?,
            expires_at: row.get(11)?,
            created_at: row.get(12)?,
        },
        rank,
    ))
}

pub(super) fn insert_event(
    txn: &Transaction<'_>,
    id: MessageId,
    event: &str,
    attempt: u32,
    at: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    txn.prepare_cached(
        "INSERT INTO bus_events (message_id, event, attempt, at, error) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![id, event, attempt, at, error]))
    .map_err(StoreError::sql("bus: record event"))?;
    Ok(())
}

impl BusStore for SqliteStore {
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, StoreError>> {
        Box::pin(self.write(move |txn| queue::enqueue(txn, &messages)))
    }

    fn claim(
        &self,
        channel: &str,
        max: usize,
        now: Millis,
        visibility_ms: i64,
    ) -> BoxFuture<'_, Result<Claimed, StoreError>> {
        let channel = channel.to_string();
        // The claim answers before its commit: the consumer starts on the messages one
        // fsync sooner (the latency of a message is then two commits, send and ack, not
        // three). A claim lost with a failed commit only leaves its messages queued, to be
        // delivered again. A claim that also made messages dead or expired waits for the
        // commit, so a receipt never reports a final status that is not on disk.
        Box::pin(self.write_early(
            move |txn| queue::claim(txn, &channel, max, now, visibility_ms),
            |claimed| claimed.finished.is_empty(),
        ))
    }

    fn ack(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>> {
        Box::pin(self.write(move |txn| queue::ack(txn, &deliveries, now)))
    }

    fn nack(
        &self,
        delivery: DeliveryRef,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(self.write(move |txn| queue::nack(txn, delivery, &error, retry_at, now)))
    }

    fn release(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>> {
        Box::pin(self.write(move |txn| queue::release(txn, &deliveries, now)))
    }

    fn extend(
        &self,
        delivery: DeliveryRef,
        deadline: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(self.write(move |txn| queue::extend(txn, delivery, deadline)))
    }

    fn statuses(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, MessageStatus)>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT status FROM bus_messages WHERE id = ?1")
                .map_err(StoreError::sql("bus: read status"))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let status: Option<String> = stmt
                    .query_row(params![id], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::sql("bus: read status"))?;
                if let Some(status) = status {
                    out.push((id, status_of(&status)?));
                }
            }
            Ok(out)
        }))
    }

    fn register_inbox(
        &self,
        channel: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            txn.prepare_cached(
                "INSERT INTO bus_inboxes (channel, registered_at) VALUES (?1, ?2)
                 ON CONFLICT (channel) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![channel, now]))
            .map_err(StoreError::sql("bus: register inbox"))?;
            Ok(())
        }))
    }

    fn inboxes(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT channel FROM bus_inboxes ORDER BY channel")
                .map_err(StoreError::sql("bus: list inboxes"))?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .map_err(StoreError::sql("bus: list inboxes"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(StoreError::sql("bus: list inboxes"))
        }))
    }

    fn history(
        &self,
        query: HistoryQuery,
    ) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>> {
        Box::pin(self.read(move |conn| history::history(conn, &query)))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let sql = format!(
                "SELECT {HISTORY_COLUMNS} FROM bus_messages INDEXED BY bus_messages_dead
                 WHERE status IN ('failed', 'dead') ORDER BY id LIMIT ?1"
            );
            history::query_records(conn, &sql, params![limit as i64])
        }))
    }

    fn retry_dead(
        &self,
        id: Option<MessageId>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, String)>, StoreError>> {
        Box::pin(self.write(move |txn| history::retry_dead(txn, id, now)))
    }

    fn purge_dead(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.delete_in_chunks(
            "SELECT id FROM bus_messages WHERE status IN ('failed', 'dead') AND ?1 = ?1
             ORDER BY id LIMIT ?2",
            0,
        ))
    }

    fn stats(&self) -> BoxFuture<'_, Result<BusStats, StoreError>> {
        Box::pin(self.read(history::stats))
    }

    fn prune(
        &self,
        now: Millis,
        older_than: Millis,
        keep_count: u64,
    ) -> BoxFuture<'_, Result<(u64, u64), StoreError>> {
        Box::pin(async move {
            let expired = self
                .write(move |txn| {
                    txn.prepare_cached(
                        "UPDATE bus_messages SET status = 'expired', finished_at = ?1
                         WHERE status IN ('queued', 'delivered') AND status = 'queued'
                           AND expires_at <= ?1",
                    )
                    .and_then(|mut s| s.execute(params![now]))
                    .map_err(StoreError::sql("bus: expire messages"))
                })
                .await? as u64;
            // Only acked and expired messages are ever pruned: pending ones are work still
            // to do, dead letters wait for an operator.
            let mut deleted = self
                .delete_in_chunks(
                    "SELECT id FROM bus_messages
                     WHERE status IN ('acked', 'expired') AND created_at < ?1 ORDER BY id LIMIT ?2",
                    older_than,
                )
                .await?;
            let keep = i64::try_from(keep_count).unwrap_or(i64::MAX);
            let newest_to_delete: Option<MessageId> = self
                .read(move |conn| {
                    conn.prepare_cached(
                        "SELECT id FROM bus_messages WHERE status IN ('acked', 'expired')
                         ORDER BY id DESC LIMIT 1 OFFSET ?1",
                    )
                    .and_then(|mut s| s.query_row(params![keep], |r| r.get(0)).optional())
                    .map_err(StoreError::sql("bus: find retention cutoff"))
                })
                .await?;
            if let Some(cutoff) = newest_to_delete {
                deleted += self
                    .delete_in_chunks(
                        "SELECT id FROM bus_messages
                         WHERE status IN ('acked', 'expired') AND id <= ?1 ORDER BY id LIMIT ?2",
                        cutoff,
                    )
                    .await?;
            }
            Ok((expired, deleted))
        })
    }

    fn ready_channels(
        &self,
        channels: Vec<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let err = |e| StoreError::sql("bus: find channels with visible messages")(e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT 1 FROM bus_messages INDEXED BY bus_messages_pending
                     WHERE channel = ?1 AND status IN ('queued', 'delivered')
                       AND visible_at <= ?2 LIMIT 1",
                )
                .map_err(err)?;
            let mut ready = Vec::new();
            for channel in channels {
                if stmt.exists(params![channel, now]).map_err(err)? {
                    ready.push(channel);
                }
            }
            Ok(ready)
        }))
    }
}
