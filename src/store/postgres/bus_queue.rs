//! Enqueue and settling (ack, nack, extend) of bus messages on PostgreSQL, as
//! `store::sqlite::bus::queue`.

use std::collections::HashSet;

use super::bus::{count, status_of};
use super::bus_claim::{end_attempt, finish, Candidate};
use super::pool::Conn;
use crate::store::{
    DeliveryRef, MessageId, MessageStatus, Millis, NewMessage, SettleOutcome, StoreError,
};

pub(super) async fn enqueue(
    c: &mut Conn,
    notify: &str,
    messages: &[NewMessage],
) -> Result<Vec<MessageId>, StoreError> {
    if let [m] = messages {
        // One statement, so one round trip; PostgreSQL commits it on its own.
        let row = c
            .query_one(
                "bus: insert message",
                "WITH m AS (
                     INSERT INTO bus_messages (channel, recipient, sender, priority, payload,
                         headers, correlation_id, reply_to, status, max_attempts, backoff_ms,
                         visible_at, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $12, $11)
                     RETURNING id, channel)
                 SELECT id, pg_notify($13, channel)::text FROM m",
                &[
                    &m.channel,
                    &m.recipient,
                    &m.sender,
                    &m.priority.rank(),
                    &m.payload,
                    &m.headers,
                    &m.correlation_id,
                    &m.reply_to,
                    &i64::from(m.max_attempts),
                    &m.backoff_ms,
                    &m.created_at,
                    &m.expires_at,
                    &notify,
                ],
            )
            .await?;
        return Ok(vec![row.get(0)]);
    }
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    // Ids first, ascending, so that batch order is id order (what FIFO means); an insert
    // that fails afterwards only leaves a gap in the sequence.
    let n = messages.len() as i64;
    let mut ids: Vec<MessageId> = c
        .query(
            "bus: allocate ids",
            "SELECT nextval('bus_message_ids') FROM generate_series(1, $1::bigint)",
            &[&n],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    let col = |f: fn(&NewMessage) -> Option<String>| messages.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&NewMessage) -> Option<i64>| messages.iter().map(f).collect::<Vec<_>>();
    c.execute(
        "bus: insert messages",
        "WITH m AS (
             INSERT INTO bus_messages (id, channel, recipient, sender, priority, payload,
                 headers, correlation_id, reply_to, status, max_attempts, backoff_ms,
                 visible_at, expires_at, created_at)
             SELECT id, channel, recipient, sender, priority, payload, headers, correlation_id,
                 reply_to, 'queued', max_attempts, backoff_ms, created_at, expires_at, created_at
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],
                 $12::bigint[], $13::bigint[])
                 AS u(id, channel, recipient, sender, priority, payload, headers,
                      correlation_id, reply_to, max_attempts, backoff_ms, expires_at, created_at)
             RETURNING channel)
         SELECT pg_notify($14, c)::text FROM (SELECT DISTINCT channel AS c FROM m) AS d",
        &[
            &ids,
            &col(|m| Some(m.channel.clone())),
            &col(|m| Some(m.recipient.clone())),
            &col(|m| Some(m.sender.clone())),
            &num(|m| Some(m.priority.rank())),
            &col(|m| Some(m.payload.clone())),
            &col(|m| m.headers.clone()),
            &col(|m| m.correlation_id.clone()),
            &col(|m| m.reply_to.clone()),
            &num(|m| Some(i64::from(m.max_attempts))),
            &num(|m| m.backoff_ms),
            &num(|m| m.expires_at),
            &num(|m| Some(m.created_at)),
            &notify,
        ],
    )
    .await?;
    Ok(ids)
}

/// Looks up (and locks) the delivery that a nack/extend names; `Err(outcome)` when it is
/// not the current attempt of a delivered message.
pub(super) async fn current_delivery(
    c: &mut Conn,
    d: DeliveryRef,
    lock: bool,
) -> Result<Result<Candidate, SettleOutcome>, StoreError> {
    let sql = if lock {
        "SELECT status, attempts, max_attempts, expires_at, delivered_at
         FROM bus_messages WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT status, attempts, max_attempts, expires_at, delivered_at
         FROM bus_messages WHERE id = $1"
    };
    let Some(r) = c.query_opt("bus: look up delivery", sql, &[&d.id]).await? else {
        return Ok(Err(SettleOutcome::Missing));
    };
    let status: String = r.get(0);
    let status = status_of(&status)?;
    let attempts = count(r.get(1));
    if status != MessageStatus::Delivered || attempts != d.attempt {
        return Ok(Err(SettleOutcome::Stale { status, attempts }));
    }
    Ok(Ok(Candidate {
        id: d.id,
        status,
        attempts,
        max_attempts: count(r.get(2)),
        expires_at: r.get(3),
        delivered_at: r.get(4),
    }))
}

pub(super) async fn ack(
    c: &mut Conn,
    deliveries: &[DeliveryRef],
    now: Millis,
) -> Result<Vec<SettleOutcome>, StoreError> {
    let ids: Vec<MessageId> = deliveries.iter().map(|d| d.id).collect();
    let attempts: Vec<i64> = deliveries.iter().map(|d| i64::from(d.attempt)).collect();
    // One statement for the whole batch; only what it did not apply is looked up again.
    let applied: HashSet<MessageId> = c
        .query(
            "bus: ack",
            "UPDATE bus_messages m SET status = 'acked', finished_at = $3, error = NULL
             FROM unnest($1::bigint[], $2::bigint[]) AS d(id, attempt)
             WHERE m.id = d.id AND m.attempts = d.attempt AND m.status = 'delivered'
             RETURNING m.id",
            &[&ids, &attempts, &now],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut reported = HashSet::with_capacity(applied.len());
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        // A delivery named twice is applied once; the second sees it acked, as on SQLite.
        if applied.contains(&d.id) && reported.insert(d.id) {
            out.push(SettleOutcome::Applied(MessageStatus::Acked));
            continue;
        }
        out.push(match current_delivery(c, *d, false).await? {
            Err(outcome) => outcome,
            Ok(_) => SettleOutcome::Applied(MessageStatus::Delivered),
        });
    }
    Ok(out)
}

pub(super) async fn nack(
    c: &mut Conn,
    d: DeliveryRef,
    error: &str,
    retry_at: Option<Millis>,
    now: Millis,
) -> Result<SettleOutcome, StoreError> {
    let cand = match current_delivery(c, d, true).await? {
        Ok(cand) => cand,
        Err(outcome) => return Ok(outcome),
    };
    let status = match retry_at {
        Some(at) if cand.attempts < cand.max_attempts => {
            end_attempt(c, &cand, "retried", now, Some(error)).await?;
            c.execute(
                "bus: requeue for retry",
                "UPDATE bus_messages SET status = 'queued', visible_at = $2, error = $3
                 WHERE id = $1",
                &[&cand.id, &at, &error],
            )
            .await?;
            MessageStatus::Queued
        }
        Some(_) => {
            end_attempt(c, &cand, "dead", now, Some(error)).await?;
            finish(c, cand.id, MessageStatus::Dead, now, Some(error)).await?;
            MessageStatus::Dead
        }
        None => {
            end_attempt(c, &cand, "failed", now, Some(error)).await?;
            finish(c, cand.id, MessageStatus::Failed, now, Some(error)).await?;
            MessageStatus::Failed
        }
    };
    Ok(SettleOutcome::Applied(status))
}

pub(super) async fn extend(
    c: &mut Conn,
    d: DeliveryRef,
    deadline: Millis,
) -> Result<SettleOutcome, StoreError> {
    let n = c
        .execute(
            "bus: extend visibility",
            "UPDATE bus_messages SET visible_at = $3
             WHERE id = $1 AND attempts = $2 AND status = 'delivered'",
            &[&d.id, &i64::from(d.attempt), &deadline],
        )
        .await?;
    if n == 1 {
        return Ok(SettleOutcome::Applied(MessageStatus::Delivered));
    }
    Ok(match current_delivery(c, d, false).await? {
        Err(outcome) => outcome,
        Ok(_) => SettleOutcome::Applied(MessageStatus::Delivered),
    })
}

/// Undoes claims nobody started on (mirrors the SQLite store): queued again, visible at
/// `now`, the attempt not counted.
pub(super) async fn release(
    c: &mut Conn,
    deliveries: &[DeliveryRef],
    now: Millis,
) -> Result<Vec<SettleOutcome>, StoreError> {
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let n = c
            .execute(
                "bus: release",
                "UPDATE bus_messages SET status = 'queued', attempts = attempts - 1,
                     visible_at = $3, delivered_at = NULL
                 WHERE id = $1 AND attempts = $2 AND status = 'delivered'",
                &[&d.id, &i64::from(d.attempt), &now],
            )
            .await?;
        out.push(if n == 1 {
            SettleOutcome::Applied(MessageStatus::Queued)
        } else {
            match current_delivery(c, *d, false).await? {
                Err(outcome) => outcome,
                Ok(_) => SettleOutcome::Applied(MessageStatus::Delivered),
            }
        });
    }
    Ok(out)
}
