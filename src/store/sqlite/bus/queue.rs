//! The hot path: enqueue, claim, ack, nack, extend. Each runs inside the writer's group
//! transaction.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{insert_event, priority_of, status_of, stored_message, MESSAGE_COLUMNS};
use crate::store::{
    Claimed, ClaimedMessage, DeliveryRef, MessageId, MessageStatus, Millis, NewMessage,
    SettleOutcome, StoreError, StoredMessage,
};

pub(super) fn enqueue(
    txn: &Transaction<'_>,
    messages: &[NewMessage],
) -> Result<Vec<MessageId>, StoreError> {
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

pub(super) fn claim(
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

pub(super) fn ack(
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

pub(super) fn nack(
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

/// Puts prefetched deliveries back as if they had never been claimed: `queued`, visible
/// now, the attempt not counted (no handler saw them, so nothing failed). The row's
/// `delivered_at` belongs to that undone attempt and goes too.
pub(super) fn release(
    txn: &Transaction<'_>,
    deliveries: &[DeliveryRef],
    now: Millis,
) -> Result<Vec<SettleOutcome>, StoreError> {
    let mut stmt = txn
        .prepare_cached(
            "UPDATE bus_messages SET status = 'queued', attempts = attempts - 1,
                 visible_at = ?3, delivered_at = NULL
             WHERE id = ?1 AND attempts = ?2 AND status = 'delivered'",
        )
        .map_err(StoreError::sql("bus: prepare release"))?;
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let changed = stmt
            .execute(params![d.id, d.attempt, now])
            .map_err(StoreError::sql("bus: release"))?;
        out.push(if changed == 1 {
            SettleOutcome::Applied(MessageStatus::Queued)
        } else {
            match current_delivery(txn, *d)? {
                Err(outcome) => outcome,
                Ok(_) => SettleOutcome::Applied(MessageStatus::Delivered),
            }
        });
    }
    Ok(out)
}

pub(super) fn extend(
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
