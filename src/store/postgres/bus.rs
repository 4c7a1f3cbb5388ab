//! [`BusStore`] on PostgreSQL: the hot path (enqueue, claim, ack, nack, extend). Same
//! tables and the same transitions as on SQLite (`store::sqlite::bus`); the differences
//! are how concurrency is handled, since writers here run side by side:
//! - a claim locks its candidates `FOR UPDATE SKIP LOCKED`, so concurrent claimers (on any
//!   node) each take different messages;
//! - nack and extend lock the message row before they check the delivery;
//! - enqueue `NOTIFY`s the channel, delivered to listeners when it commits.

use std::collections::{HashMap, HashSet};

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use super::pool::Conn;
use super::PgStore;
use crate::store::{
    BusStats, BusStore, Claimed, ClaimedMessage, DeliveryRef, HistoryQuery, HistoryRecord,
    MessageId, MessageStatus, Millis, NewMessage, Priority, SettleOutcome, StoreError,
    StoredMessage,
};

/// Columns [`stored_message`] reads, then `attempts`.
const MESSAGE_COLUMNS: &str = "id, channel, recipient, sender, priority, payload, headers, \
    correlation_id, reply_to, max_attempts, backoff_ms, expires_at, created_at, attempts";

pub(super) fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    text.parse()
        .map_err(|e| StoreError::corrupt("bus: read status", e))
}

pub(super) fn priority_of(rank: i64) -> Result<Priority, StoreError> {
    Priority::from_rank(rank).ok_or_else(|| StoreError::corrupt("bus: read priority", rank))
}

/// Attempt counts are `u32` in Rust and `BIGINT` in the table.
pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn stored_message(r: &Row) -> Result<(StoredMessage, u32), StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::corrupt("bus: read message", e);
    Ok((
        StoredMessage {
            id: r.try_get(0).map_err(get)?,
            channel: r.try_get(1).map_err(get)?,
            recipient: r.try_get(2).map_err(get)?,
            sender: r.try_get(3).map_err(get)?,
            priority: priority_of(r.try_get(4).map_err(get)?)?,
            payload: r.try_get(5).map_err(get)?,
            headers: r.try_get(6).map_err(get)?,
            correlation_id: r.try_get(7).map_err(get)?,
            reply_to: r.try_get(8).map_err(get)?,
            max_attempts: count(r.try_get(9).map_err(get)?),
            backoff_ms: r.try_get(10).map_err(get)?,
            expires_at: r.try_get(11).map_err(get)?,
            created_at: r.try_get(12).map_err(get)?,
        },
        count(r.try_get(13).map_err(get)?),
    ))
}

pub(super) async fn insert_event(
    c: &mut Conn,
    id: MessageId,
    event: &str,
    attempt: u32,
    at: Millis,
    error: Option<&str>,
) -> Result<(), StoreError> {
    c.execute(
        "bus: record event",
        "INSERT INTO bus_events (message_id, event, attempt, at, error) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &event, &i64::from(attempt), &at, &error],
    )
    .await?;
    Ok(())
}

async fn enqueue(
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

/// The common claim in one statement, committed on its own: lock the best visible rows
/// (`SKIP LOCKED`) and deliver those that are plain queued messages. Returns what it
/// delivered and how many rows it looked at; when that is more, some of them need the
/// full claim (a lapsed delivery to time out, an expired message), which [`claim`] then
/// runs in a transaction. One round trip instead of four for the usual case.
async fn claim_plain(
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
async fn next_visible(c: &mut Conn, channel: &str) -> Result<Option<Millis>, StoreError> {
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
struct Candidate {
    id: MessageId,
    status: MessageStatus,
    attempts: u32,
    max_attempts: u32,
    expires_at: Option<Millis>,
    delivered_at: Option<Millis>,
}

async fn claim(
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
async fn end_attempt(
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

async fn finish(
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

/// Looks up (and locks) the delivery that a nack/extend names; `Err(outcome)` when it is
/// not the current attempt of a delivered message.
async fn current_delivery(
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

async fn ack(
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

async fn nack(
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

async fn extend(
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

impl PgStore {
    /// Runs `body` on a pooled connection inside one transaction: committed when it
    /// returns Ok, rolled back otherwise.
    pub(super) async fn in_transaction<T>(
        &self,
        body: impl for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        hold_test_clock(async {
            let mut conn = self.pool().get().await?;
            conn.begin().await?;
            let result = body(&mut conn).await;
            conn.finish(result).await.map_err(|e| self.located(e))
        })
        .await
    }

    /// Runs `body` on a pooled connection, each statement committing on its own.
    pub(super) async fn on_connection<T>(
        &self,
        body: impl for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        hold_test_clock(async {
            let mut conn = self.pool().get().await?;
            body(&mut conn).await.map_err(|e| self.located(e))
        })
        .await
    }

    /// Names this database in errors built without it (decoding errors).
    pub(super) fn located(&self, e: StoreError) -> StoreError {
        e.at(&super::db_path(self.db()))
    }
}

/// In tests only: keeps tokio's paused clock from jumping while a database round trip is
/// in flight. A paused clock advances to the next timer whenever the runtime is idle, and
/// waiting on a socket is idle, so a test's "wait up to 60 s" would time out during a
/// 1 ms query. Blocking-pool tasks hold the clock (SQLite's reads already run there), so
/// one waits here until the operation is done. Production code runs the plain future.
#[cfg(test)]
async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    });
    let out = operation.await;
    drop(done);
    let _ = holder.await;
    out
}

#[cfg(not(test))]
async fn hold_test_clock<T>(operation: impl std::future::Future<Output = T>) -> T {
    operation.await
}

impl BusStore for PgStore {
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, StoreError>> {
        let notify = self.notify_channel().to_string();
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { enqueue(c, &notify, &messages).await })
            }),
        )
    }

    fn claim(
        &self,
        channel: &str,
        max: usize,
        now: Millis,
        visibility_ms: i64,
    ) -> BoxFuture<'_, Result<Claimed, StoreError>> {
        let channel = channel.to_string();
        Box::pin(async move {
            let deadline = now + visibility_ms;
            let channel2 = channel.clone();
            let (plain, looked_at) = self
                .on_connection(move |c| {
                    Box::pin(async move { claim_plain(c, &channel2, max, now, deadline).await })
                })
                .await?;
            if looked_at == 0 {
                let next_visible_at = self
                    .on_connection(move |c| {
                        Box::pin(async move { next_visible(c, &channel).await })
                    })
                    .await?;
                return Ok(Claimed {
                    next_visible_at,
                    ..Claimed::default()
                });
            }
            if looked_at == plain.len() {
                return Ok(Claimed {
                    messages: plain,
                    ..Claimed::default()
                });
            }
            // Nothing visible, or rows that need the full claim: run it for what is left.
            let left = max - plain.len();
            let mut full = self
                .in_transaction(move |c| {
                    Box::pin(async move { claim(c, &channel, left, now, visibility_ms).await })
                })
                .await?;
            if !plain.is_empty() {
                full.next_visible_at = None;
            }
            let mut messages = plain;
            messages.append(&mut full.messages);
            full.messages = messages;
            Ok(full)
        })
    }

    fn ack(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| Box::pin(async move { ack(c, &deliveries, now).await })),
        )
    }

    fn nack(
        &self,
        delivery: DeliveryRef,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move { nack(c, delivery, &error, retry_at, now).await })
        }))
    }

    fn extend(
        &self,
        delivery: DeliveryRef,
        deadline: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>> {
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { extend(c, delivery, deadline).await })
            }),
        )
    }

    fn statuses(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, MessageStatus)>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "bus: read status",
                        "SELECT id, status FROM bus_messages WHERE id = ANY($1)",
                        &[&ids],
                    )
                    .await?;
                let mut found = HashMap::with_capacity(rows.len());
                for r in rows {
                    let status: String = r.get(1);
                    found.insert(r.get::<_, MessageId>(0), status_of(&status)?);
                }
                Ok(ids
                    .iter()
                    .filter_map(|id| found.get(id).map(|s| (*id, *s)))
                    .collect())
            })
        }))
    }

    fn register_inbox(
        &self,
        channel: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                c.execute(
                    "bus: register inbox",
                    "INSERT INTO bus_inboxes (channel, registered_at) VALUES ($1, $2)
                     ON CONFLICT (channel) DO NOTHING",
                    &[&channel, &now],
                )
                .await?;
                Ok(())
            })
        }))
    }

    fn inboxes(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.on_connection(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "bus: list inboxes",
                        "SELECT channel FROM bus_inboxes ORDER BY channel COLLATE \"C\"",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        }))
    }

    fn history(
        &self,
        query: HistoryQuery,
    ) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { super::bus_history::history(c, &query).await })
        }))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { super::bus_history::dead_letters(c, limit).await })
        }))
    }

    fn retry_dead(
        &self,
        id: Option<MessageId>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, String)>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move { super::bus_history::retry_dead(c, id, now).await })
        }))
    }

    fn purge_dead(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(
            self.on_connection(|c| {
                Box::pin(async move { super::bus_history::purge_dead(c).await })
            }),
        )
    }

    fn stats(&self) -> BoxFuture<'_, Result<BusStats, StoreError>> {
        Box::pin(
            self.on_connection(|c| Box::pin(async move { super::bus_history::stats(c).await })),
        )
    }

    fn prune(
        &self,
        now: Millis,
        older_than: Millis,
        keep_count: u64,
    ) -> BoxFuture<'_, Result<(u64, u64), StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move { super::bus_history::prune(c, now, older_than, keep_count).await })
        }))
    }
}
