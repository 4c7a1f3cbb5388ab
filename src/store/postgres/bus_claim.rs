//! The bus claim on PostgreSQL: the one-statement claim of plain queued messages, and the
//! full claim (in a transaction) that also times out lapsed deliveries and expires
//! messages, as `store::sqlite::bus::queue::claim` does.

use std::collections::HashMap;

use super::bus::{count, insert_event, status_of, stored_message, MESSAGE_COLUMNS};
use super::pool::Conn;
use crate::store::{Claimed, ClaimedMessage, MessageId, MessageStatus, Millis, StoreError};

/// The common claim in one statement, committed on its own: lock the best visible rows
/// (`SKIP LOCKED`) and deliver those that are plain queued messages. Returns what it
/// delivered and how many rows it looked at; when that is more, some of them need the
/// full claim (a lapsed delivery to time out, an expired message), which [`claim`] then
/// runs in a transaction. One round trip instead of four for the usual case.
pub(super) async fn claim_plain(
    c: &mut Conn,
    channel: &str,
    max: usize,
    now: Millis,
    deadline: Millis,
) -> Result<(Vec<ClaimedMessage>, usize), StoreError> {
    let rows = c
        .query(
            "bus: claim",
            &format!(
                "WITH c AS (
                     SELECT id, status, expires_at FROM bus_messages
                     WHERE channel = $1 AND status IN ('queued', 'delivered')
                       AND visible_at <= $2
                     ORDER BY priority, id LIMIT $3 FOR UPDATE SKIP LOCKED),
                 u AS (
                     UPDATE bus_messages m SET status = 'delivered', attempts = m.attempts + 1,
                         delivered_at = $2, visible_at = $4
                     FROM c
                     WHERE m.id = c.id AND c.status = 'queued'
                       AND (c.expires_at IS NULL OR c.expires_at > $2)
                     RETURNING {})
                 SELECT u.*, k.n FROM (SELECT COUNT(*) AS n FROM c) AS k LEFT JOIN u ON TRUE",
                MESSAGE_COLUMNS
                    .split(", ")
                    .map(|col| format!("m.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&channel, &now, &(max as i64), &deadline],
        )
        .await?;
    let mut looked_at = 0;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        looked_at = usize::try_from(r.get::<_, i64>(14)).unwrap_or(0);
        if r.get::<_, Option<MessageId>>(0).is_none() {
            continue;
        }
        let (message, attempt) = stored_message(r)?;
        out.push(ClaimedMessage {
            message,
            attempt,
            deadline,
        });
    }
    out.sort_by_key(|m| (m.message.priority, m.message.id));
    Ok((out, looked_at))
}

/// When the next pending message of `channel` becomes visible.
pub(super) async fn next_visible(
    c: &mut Conn,
    channel: &str,
) -> Result<Option<Millis>, StoreError> {
    Ok(c.query_one(
        "bus: find next visible message",
        "SELECT MIN(visible_at) FROM bus_messages
             WHERE channel = $1 AND status IN ('queued', 'delivered')",
        &[&channel],
    )
    .await?
    .get(0))
}

/// A pending row the claim looked at (and locked).
pub(super) struct Candidate {
    pub id: MessageId,
    pub status: MessageStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub expires_at: Option<Millis>,
    pub delivered_at: Option<Millis>,
}

pub(super) async fn claim(
    c: &mut Conn,
    channel: &str,
    max: usize,
    now: Millis,
    visibility_ms: i64,
) -> Result<Claimed, StoreError> {
    let mut out = Claimed::default();
    // As on SQLite: rows settled here leave the visible set, so each pass sees new ones,
    // and expired or dead rows at the head do not starve the ones behind them.
    while out.messages.len() < max {
        let limit = (max - out.messages.len()) as i64;
        let rows = c
            .query(
                "bus: claim",
                "SELECT id, status, attempts, max_attempts, expires_at, delivered_at
                 FROM bus_messages
                 WHERE channel = $1 AND status IN ('queued', 'delivered') AND visible_at <= $2
                 ORDER BY priority, id LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&channel, &now, &limit],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut deliver = Vec::with_capacity(rows.len());
        for r in &rows {
            let status: String = r.get(1);
            let cand = Candidate {
                id: r.get(0),
                status: status_of(&status)?,
                attempts: count(r.get(2)),
                max_attempts: count(r.get(3)),
                expires_at: r.get(4),
                delivered_at: r.get(5),
            };
            if cand.status == MessageStatus::Delivered {
                // Its consumer never answered in time: that attempt is over.
                let why = "no ack before the visibility timeout";
                end_attempt(c, &cand, "timeout", now, Some(why)).await?;
                if cand.attempts >= cand.max_attempts {
                    let error = format!(
                        "no ack before the visibility timeout, {} of {} attempts used",
                        cand.attempts, cand.max_attempts
                    );
                    finish(c, cand.id, MessageStatus::Dead, now, Some(&error)).await?;
                    insert_event(c, cand.id, "dead", cand.attempts, now, Some(&error)).await?;
                    out.finished.push((cand.id, MessageStatus::Dead));
                    continue;
                }
            }
            if cand.expires_at.is_some_and(|t| t <= now) {
                finish(c, cand.id, MessageStatus::Expired, now, None).await?;
                out.finished.push((cand.id, MessageStatus::Expired));
                continue;
            }
            deliver.push(cand.id);
        }
        let deadline = now + visibility_ms;
        let rows = c
            .query(
                "bus: mark delivered",
                &format!(
                    "UPDATE bus_messages SET status = 'delivered', attempts = attempts + 1,
                         delivered_at = $2, visible_at = $3
                     WHERE id = ANY($1) RETURNING {MESSAGE_COLUMNS}"
                ),
                &[&deliver, &now, &deadline],
            )
            .await?;
        let mut by_id = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (message, attempt) = stored_message(r)?;
            by_id.insert(message.id, (message, attempt));
        }
        for id in deliver {
            if let Some((message, attempt)) = by_id.remove(&id) {
                out.messages.push(ClaimedMessage {
                    message,
                    attempt,
                    deadline,
                });
            }
        }
    }
    if out.messages.is_empty() {
        out.next_visible_at = next_visible(c, channel).await?;
    }
    Ok(out)
}

/// Records an attempt that ended without an ack: its delivery, then how it ended.
pub(super) async fn end_attempt(
    c: &mut Conn,
    cand: &Candidate,
    how: &str,
    now: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(at) = cand.delivered_at {
        insert_event(c, cand.id, "delivered", cand.attempts, at, None).await?;
    }
    insert_event(c, cand.id, how, cand.attempts, now, error).await
}

pub(super) async fn finish(
    c: &mut Conn,
    id: MessageId,
    status: MessageStatus,
    now: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    c.execute(
        "bus: finish message",
        "UPDATE bus_messages SET status = $2, finished_at = $3, error = COALESCE($4, error)
         WHERE id = $1",
        &[&id, &status.as_str(), &now, &error],
    )
    .await?;
    Ok(())
}
