//! [`BusStore`] on SQLite.
//!
//! One row per message in `bus_messages` holds the message and its happy path (created,
//! delivered, acked). Earlier attempts and unusual transitions (retried, timeout, failed,
//! dead, requeued) are rows in `bus_events`; see [`transitions`] for how they combine.
//! A partial index over pending messages only keeps claiming fast however long the
//! history grows.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::SqliteStore;
use crate::store::{
    transitions, BusStats, BusStore, ChannelDepth, Claimed, ClaimedMessage, DeliveryRef, EventRow,
    HistoryQuery, HistoryRecord, MessageId, MessageStatus, Millis, NewMessage, Priority,
    SettleOutcome, StoreError, StoredMessage,
};
use futures_util::future::BoxFuture;

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
const PRUNE_CHUNK: usize = 2000;

const MESSAGE_COLUMNS: &str = "id, channel, recipient, sender, priority, payload, headers, \
    correlation_id, reply_to, max_attempts, backoff_ms, expires_at, created_at";

const HISTORY_COLUMNS: &str = "id, sender, recipient, channel, payload, priority, status, \
    attempts, created_at, delivered_at, finished_at, error";

fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    text.parse()
        .map_err(|e| StoreError::corrupt("bus: read status", e))
}

fn priority_of(rank: i64) -> Result<Priority, StoreError> {
    Priority::from_rank(rank).ok_or_else(|| StoreError::corrupt("bus: read priority", rank))
}

fn stored_message(row: &Row<'_>) -> rusqlite::Result<(StoredMessage, i64)> {
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

fn insert_event(
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

fn enqueue(txn: &Transaction<'_>, messages: &[NewMessage]) -> Result<Vec<MessageId>, StoreError> {
    let first: MessageId = txn
        .prepare_cached("SELECT next_id FROM bus_sequence")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(StoreError::sql("bus: read next id"))?;
    let mut stmt = txn
        .prepare_cached(
            "INSERT INTO bus_messages (id, channel, recipient, sender, priority, payload, headers,
                 correlation_id, reply_to, status, max_attempts, backoff_ms, visible_at,
                 expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'queued', ?10, ?11, ?12, ?13, ?12)",
        )
        .map_err(StoreError::sql("bus: prepare insert"))?;
    let mut ids = Vec::with_capacity(messages.len());
    for (id, m) in (first..).zip(messages) {
        stmt.execute(params![
            id,
            m.channel,
            m.recipient,
            m.sender,
            m.priority.rank(),
            m.payload,
            m.headers,
            m.correlation_id,
            m.reply_to,
            m.max_attempts,
            m.backoff_ms,
            m.created_at,
            m.expires_at,
        ])
        .map_err(StoreError::sql("bus: insert message"))?;
        ids.push(id);
    }
    let next = first + ids.len() as i64;
    txn.prepare_cached("UPDATE bus_sequence SET next_id = ?1")
        .and_then(|mut s| s.execute(params![next]))
        .map_err(StoreError::sql("bus: advance next id"))?;
    Ok(ids)
}

/// A pending row the claim looked at.
struct Candidate {
    id: MessageId,
    status: MessageStatus,
    attempts: u32,
    max_attempts: u32,
    expires_at: Option<Millis>,
    delivered_at: Option<Millis>,
}

fn claim(
    txn: &Transaction<'_>,
    channel: &str,
    max: usize,
    now: Millis,
    visibility_ms: i64,
) -> Result<Claimed, StoreError> {
    let mut out = Claimed::default();
    // Rows this loop settles leave the visible set, so each pass sees new candidates;
    // looping lets expired or dead rows at the head not starve the ones behind them.
    while out.messages.len() < max {
        let candidates = visible_candidates(txn, channel, now, max - out.messages.len())?;
        if candidates.is_empty() {
            break;
        }
        for c in candidates {
            if c.status == MessageStatus::Delivered {
                // Its consumer never answered in time: that attempt is over.
                end_attempt(
                    txn,
                    &c,
                    "timeout",
                    now,
                    Some("no ack before the visibility timeout"),
                )?;
                if c.attempts >= c.max_attempts {
                    let error = format!(
                        "no ack before the visibility timeout, {} of {} attempts used",
                        c.attempts, c.max_attempts
                    );
                    finish(txn, c.id, MessageStatus::Dead, now, Some(&error))?;
                    insert_event(txn, c.id, "dead", c.attempts, now, Some(&error))?;
                    out.finished.push((c.id, MessageStatus::Dead));
                    continue;
                }
            }
            if c.expires_at.is_some_and(|t| t <= now) {
                finish(txn, c.id, MessageStatus::Expired, now, None)?;
                out.finished.push((c.id, MessageStatus::Expired));
                continue;
            }
            out.messages
                .push(deliver(txn, c.id, now, now + visibility_ms)?);
        }
    }
    if out.messages.is_empty() {
        out.next_visible_at = txn
            .prepare_cached(
                "SELECT MIN(visible_at) FROM bus_messages
                 WHERE channel = ?1 AND status IN ('queued', 'delivered')",
            )
            .and_then(|mut s| s.query_row(params![channel], |r| r.get(0)))
            .map_err(StoreError::sql("bus: find next visible message"))?;
    }
    Ok(out)
}

fn visible_candidates(
    txn: &Transaction<'_>,
    channel: &str,
    now: Millis,
    limit: usize,
) -> Result<Vec<Candidate>, StoreError> {
    let mut stmt = txn
        .prepare_cached(
            "SELECT id, status, attempts, max_attempts, expires_at, delivered_at
             FROM bus_messages INDEXED BY bus_messages_pending
             WHERE channel = ?1 AND status IN ('queued', 'delivered') AND visible_at <= ?2
             ORDER BY priority, id LIMIT ?3",
        )
        .map_err(StoreError::sql("bus: prepare claim"))?;
    let rows = stmt
        .query_map(params![channel, now, limit as i64], |r| {
            Ok((
                r.get::<_, MessageId>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, Option<Millis>>(4)?,
                r.get::<_, Option<Millis>>(5)?,
            ))
        })
        .map_err(StoreError::sql("bus: claim"))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, status, attempts, max_attempts, expires_at, delivered_at) =
            row.map_err(StoreError::sql("bus: claim"))?;
        out.push(Candidate {
            id,
            status: status_of(&status)?,
            attempts,
            max_attempts,
            expires_at,
            delivered_at,
        });
    }
    Ok(out)
}

fn deliver(
    txn: &Transaction<'_>,
    id: MessageId,
    now: Millis,
    deadline: Millis,
) -> Result<ClaimedMessage, StoreError> {
    let sql = format!(
        "UPDATE bus_messages SET status = 'delivered', attempts = attempts + 1,
             delivered_at = ?2, visible_at = ?3
         WHERE id = ?1 RETURNING {MESSAGE_COLUMNS}, attempts"
    );
    let (message, rank, attempt) = txn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![id, now, deadline], |r| {
                let (m, rank) = stored_message(r)?;
                Ok((m, rank, r.get::<_, u32>(13)?))
            })
        })
        .map_err(StoreError::sql("bus: mark delivered"))?;
    Ok(ClaimedMessage {
        message: StoredMessage {
            priority: priority_of(rank)?,
            ..message
        },
        attempt,
        deadline,
    })
}

/// Records an attempt that ended without an ack: its delivery, then how it ended.
fn end_attempt(
    txn: &Transaction<'_>,
    c: &Candidate,
    how: &str,
    now: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(at) = c.delivered_at {
        insert_event(txn, c.id, "delivered", c.attempts, at, None)?;
    }
    insert_event(txn, c.id, how, c.attempts, now, error)
}

fn finish(
    txn: &Transaction<'_>,
    id: MessageId,
    status: MessageStatus,
    now: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    txn.prepare_cached(
        "UPDATE bus_messages SET status = ?2, finished_at = ?3, error = COALESCE(?4, error)
         WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![id, status.as_str(), now, error]))
    .map_err(StoreError::sql("bus: finish message"))?;
    Ok(())
}

/// Looks up a delivery that an ack/nack/extend names; `Err(outcome)` when it is not the
/// current attempt of a delivered message.
fn current_delivery(
    txn: &Transaction<'_>,
    d: DeliveryRef,
) -> Result<Result<Candidate, SettleOutcome>, StoreError> {
    let row = txn
        .prepare_cached(
            "SELECT status, attempts, max_attempts, expires_at, delivered_at
             FROM bus_messages WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![d.id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, Option<Millis>>(3)?,
                    r.get::<_, Option<Millis>>(4)?,
                ))
            })
            .optional()
        })
        .map_err(StoreError::sql("bus: look up delivery"))?;
    let Some((status, attempts, max_attempts, expires_at, delivered_at)) = row else {
        return Ok(Err(SettleOutcome::Missing));
    };
    let status = status_of(&status)?;
    if status != MessageStatus::Delivered || attempts != d.attempt {
        return Ok(Err(SettleOutcome::Stale { status, attempts }));
    }
    Ok(Ok(Candidate {
        id: d.id,
        status,
        attempts,
        max_attempts,
        expires_at,
        delivered_at,
    }))
}

fn ack(
    txn: &Transaction<'_>,
    deliveries: &[DeliveryRef],
    now: Millis,
) -> Result<Vec<SettleOutcome>, StoreError> {
    let mut stmt = txn
        .prepare_cached(
            "UPDATE bus_messages SET status = 'acked', finished_at = ?3, error = NULL
             WHERE id = ?1 AND attempts = ?2 AND status = 'delivered'",
        )
        .map_err(StoreError::sql("bus: prepare ack"))?;
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let changed = stmt
            .execute(params![d.id, d.attempt, now])
            .map_err(StoreError::sql("bus: ack"))?;
        out.push(if changed == 1 {
            SettleOutcome::Applied(MessageStatus::Acked)
        } else {
            match current_delivery(txn, *d)? {
                Err(outcome) => outcome,
                // Unreachable in one transaction, but answer honestly if it ever happens.
                Ok(_) => SettleOutcome::Applied(MessageStatus::Delivered),
            }
        });
    }
    Ok(out)
}

fn nack(
    txn: &Transaction<'_>,
    d: DeliveryRef,
    error: &str,
    retry_at: Option<Millis>,
    now: Millis,
) -> Result<SettleOutcome, StoreError> {
    let c = match current_delivery(txn, d)? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let status = match retry_at {
        Some(at) if c.attempts < c.max_attempts => {
            end_attempt(txn, &c, "retried", now, Some(error))?;
            txn.prepare_cached(
                "UPDATE bus_messages SET status = 'queued', visible_at = ?2, error = ?3 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![c.id, at, error]))
            .map_err(StoreError::sql("bus: requeue for retry"))?;
            MessageStatus::Queued
        }
        Some(_) => {
            end_attempt(txn, &c, "dead", now, Some(error))?;
            finish(txn, c.id, MessageStatus::Dead, now, Some(error))?;
            MessageStatus::Dead
        }
        None => {
            end_attempt(txn, &c, "failed", now, Some(error))?;
            finish(txn, c.id, MessageStatus::Failed, now, Some(error))?;
            MessageStatus::Failed
        }
    };
    Ok(SettleOutcome::Applied(status))
}

fn extend(
    txn: &Transaction<'_>,
    d: DeliveryRef,
    deadline: Millis,
) -> Result<SettleOutcome, StoreError> {
    if let Err(outcome) = current_delivery(txn, d)? {
        return Ok(outcome);
    }
    txn.prepare_cached("UPDATE bus_messages SET visible_at = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![d.id, deadline]))
        .map_err(StoreError::sql("bus: extend visibility"))?;
    Ok(SettleOutcome::Applied(MessageStatus::Delivered))
}

fn history(conn: &Connection, q: &HistoryQuery) -> Result<Vec<HistoryRecord>, StoreError> {
    let mut sql = format!("SELECT {HISTORY_COLUMNS} FROM bus_messages WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(channel) = &q.channel {
        arg(&mut sql, " AND channel = ?", channel.clone().into());
    }
    if let Some(agent) = &q.agent {
        let inbox = format!("agent:{agent}");
        arg(&mut sql, " AND (channel = ?", inbox.clone().into());
        arg(&mut sql, " OR sender = ?", inbox.into());
        arg(&mut sql, " OR sender = ?)", agent.clone().into());
    }
    if let Some(since) = q.since {
        arg(&mut sql, " AND created_at >= ?", since.into());
    }
    if let Some(until) = q.until {
        arg(&mut sql, " AND created_at <= ?", until.into());
    }
    let newest_first = q.after_id.is_none();
    if let Some(after) = q.after_id {
        arg(&mut sql, " AND id > ?", after.into());
    }
    sql.push_str(if newest_first {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id"
    });
    arg(&mut sql, " LIMIT ?", (q.limit as i64).into());
    let mut records = query_records(conn, &sql, rusqlite::params_from_iter(args))?;
    if newest_first {
        records.reverse();
    }
    Ok(records)
}

fn query_records(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(StoreError::sql("bus: prepare history"))?;
    let mut rows = stmt.query(args).map_err(StoreError::sql("bus: history"))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(StoreError::sql("bus: history"))? {
        out.push(history_record(conn, r)?);
    }
    Ok(out)
}

fn history_record(conn: &Connection, r: &Row<'_>) -> Result<HistoryRecord, StoreError> {
    let get = StoreError::sql("bus: read history row");
    let read = || -> rusqlite::Result<_> {
        Ok((
            r.get::<_, MessageId>(0)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, u32>(7)?,
            r.get::<_, Millis>(8)?,
            r.get::<_, Option<Millis>>(9)?,
            r.get::<_, Option<Millis>>(10)?,
        ))
    };
    let (id, payload, rank, status, attempts, created_at, delivered_at, finished_at) =
        read().map_err(get)?;
    let status = status_of(&status)?;
    let events = events_of(conn, id)?;
    let sql = StoreError::sql("bus: read history row");
    Ok(HistoryRecord {
        id,
        from: r.get(1).map_err(sql)?,
        to: r.get(2).map_err(StoreError::sql("bus: read history row"))?,
        channel: r.get(3).map_err(StoreError::sql("bus: read history row"))?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::corrupt("bus: read payload", format!("message {id}: {e}")))?,
        priority: priority_of(rank)?,
        status,
        attempts,
        created_at,
        delivered_at,
        acked_at: finished_at.filter(|_| status == MessageStatus::Acked),
        error: r
            .get(11)
            .map_err(StoreError::sql("bus: read history row"))?,
        transitions: transitions(
            status,
            attempts,
            created_at,
            delivered_at,
            finished_at,
            &events,
        ),
    })
}

fn events_of(conn: &Connection, id: MessageId) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT event, attempt, at, error FROM bus_events WHERE message_id = ?1 ORDER BY id",
        )
        .map_err(StoreError::sql("bus: prepare events"))?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok(EventRow {
                event: r.get(0)?,
                attempt: r.get(1)?,
                at: r.get(2)?,
                error: r.get(3)?,
            })
        })
        .map_err(StoreError::sql("bus: read events"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(StoreError::sql("bus: read events"))
}

fn retry_dead(
    txn: &Transaction<'_>,
    id: Option<MessageId>,
    now: Millis,
) -> Result<Vec<(MessageId, String)>, StoreError> {
    let mut found: Vec<(MessageId, String, u32)> = Vec::new();
    {
        let mut stmt = txn
            .prepare_cached(
                "SELECT id, channel, attempts FROM bus_messages
                 WHERE status IN ('failed', 'dead') AND (?1 IS NULL OR id = ?1) ORDER BY id",
            )
            .map_err(StoreError::sql("bus: find dead letters"))?;
        let rows = stmt
            .query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(StoreError::sql("bus: find dead letters"))?;
        for row in rows {
            found.push(row.map_err(StoreError::sql("bus: find dead letters"))?);
        }
    }
    for (id, _, attempts) in &found {
        insert_event(txn, *id, "requeued", *attempts, now, None)?;
        // A fresh start: new attempts, no ttl (an operator asked for it explicitly).
        txn.prepare_cached(
            "UPDATE bus_messages SET status = 'queued', attempts = 0, visible_at = ?2,
                 expires_at = NULL, delivered_at = NULL, finished_at = NULL, error = NULL
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(StoreError::sql("bus: requeue dead letter"))?;
    }
    Ok(found
        .into_iter()
        .map(|(id, channel, _)| (id, channel))
        .collect())
}

fn delete_messages(txn: &Transaction<'_>, ids: &[MessageId]) -> Result<(), StoreError> {
    let mut events = txn
        .prepare_cached("DELETE FROM bus_events WHERE message_id = ?1")
        .map_err(StoreError::sql("bus: prepare delete"))?;
    let mut messages = txn
        .prepare_cached("DELETE FROM bus_messages WHERE id = ?1")
        .map_err(StoreError::sql("bus: prepare delete"))?;
    for id in ids {
        events
            .execute(params![id])
            .map_err(StoreError::sql("bus: delete events"))?;
        messages
            .execute(params![id])
            .map_err(StoreError::sql("bus: delete message"))?;
    }
    Ok(())
}

/// Ids of up to `limit` rows `sql` selects (with `?1` bound to `arg`).
fn select_ids(
    txn: &Transaction<'_>,
    sql: &str,
    arg: i64,
    limit: usize,
) -> Result<Vec<MessageId>, StoreError> {
    let mut stmt = txn
        .prepare_cached(sql)
        .map_err(StoreError::sql("bus: prepare prune"))?;
    let rows = stmt
        .query_map(params![arg, limit as i64], |r| r.get(0))
        .map_err(StoreError::sql("bus: select for prune"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(StoreError::sql("bus: select for prune"))
}

impl SqliteStore {
    /// Deletes, chunk by chunk (one write job each), the final rows that `sql` selects.
    async fn delete_in_chunks(&self, sql: &'static str, arg: i64) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        loop {
            let n = self
                .write(move |txn| {
                    let ids = select_ids(txn, sql, arg, PRUNE_CHUNK)?;
                    delete_messages(txn, &ids)?;
                    Ok(ids.len())
                })
                .await?;
            deleted += n as u64;
            if n < PRUNE_CHUNK {
                return Ok(deleted);
            }
        }
    }
}

fn stats(conn: &Connection) -> Result<BusStats, StoreError> {
    let err = || StoreError::sql("bus: stats");
    let mut out = BusStats::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT channel, status, COUNT(*) FROM bus_messages INDEXED BY bus_messages_pending
             WHERE status IN ('queued', 'delivered') GROUP BY channel, status ORDER BY channel",
        )
        .map_err(err())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })
        .map_err(err())?;
    for row in rows {
        let (channel, status, n) = row.map_err(err())?;
        if out.channels.last().is_none_or(|c| c.channel != channel) {
            out.channels.push(ChannelDepth {
                channel,
                ..ChannelDepth::default()
            });
        }
        if let Some(depth) = out.channels.last_mut() {
            match status_of(&status)? {
                MessageStatus::Queued => depth.queued = n,
                _ => depth.in_flight = n,
            }
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT status, COUNT(*) FROM bus_messages GROUP BY status")
        .map_err(err())?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
        .map_err(err())?;
    for row in rows {
        let (status, n) = row.map_err(err())?;
        out.total += n;
        match status_of(&status)? {
            MessageStatus::Queued => out.queued += n,
            MessageStatus::Delivered => out.in_flight += n,
            MessageStatus::Acked => out.acked += n,
            MessageStatus::Failed | MessageStatus::Dead => out.dead += n,
            MessageStatus::Expired => out.expired += n,
        }
    }
    Ok(out)
}

impl BusStore for SqliteStore {
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, StoreError>> {
        Box::pin(self.write(move |txn| enqueue(txn, &messages)))
    }

    fn claim(
        &self,
        channel: &str,
        max: usize,
        now: Millis,
        visibility_ms: i64,
    ) -> BoxFuture<'_, Result<Claimed, StoreError>> {
        let channel = channel.to_string();
        Box::pin(self.write(move |txn| claim(txn, &channel, max, now, visibility_ms)))
    }

    fn ack(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>> {
        Box::pin(self.write(move |txn| ack(txn, &deliveries, now)))
    }

    fn nack(
        &self,
        delivery: DeliveryRef,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(self.write(move |txn| nack(txn, delivery, &error, retry_at, now)))
    }

    fn extend(
        &self,
        delivery: DeliveryRef,
        deadline: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(self.write(move |txn| extend(txn, delivery, deadline)))
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
        Box::pin(self.read(move |conn| history(conn, &query)))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let sql = format!(
                "SELECT {HISTORY_COLUMNS} FROM bus_messages INDEXED BY bus_messages_dead
                 WHERE status IN ('failed', 'dead') ORDER BY id LIMIT ?1"
            );
            query_records(conn, &sql, params![limit as i64])
        }))
    }

    fn retry_dead(
        &self,
        id: Option<MessageId>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, String)>, StoreError>> {
        Box::pin(self.write(move |txn| retry_dead(txn, id, now)))
    }

    fn purge_dead(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.delete_in_chunks(
            "SELECT id FROM bus_messages WHERE status IN ('failed', 'dead') AND ?1 = ?1
             ORDER BY id LIMIT ?2",
            0,
        ))
    }

    fn stats(&self) -> BoxFuture<'_, Result<BusStats, StoreError>> {
        Box::pin(self.read(stats))
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
}
