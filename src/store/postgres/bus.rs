//! [`BusStore`] on PostgreSQL: the hot path (enqueue, claim, ack, nack, extend). Same
//! tables and the same transitions as on SQLite (`store::sqlite::bus`); the differences
//! are how concurrency is handled, since writers here run side by side:
//! - a claim locks its candidates `FOR UPDATE SKIP LOCKED`, so concurrent claimers (on any
//!   node) each take different messages;
//! - nack and extend lock the message row before they check the delivery;
//! - enqueue `NOTIFY`s the channel, delivered to listeners when it commits.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use super::bus_claim::{claim, claim_plain, next_visible};
use super::bus_queue::{ack, enqueue, extend, nack, release};
use super::pool::Conn;
use super::PgStore;
use crate::store::{
    BusSignals, BusStats, BusStore, Claimed, DeliveryRef, HistoryQuery, HistoryRecord, MessageId,
    MessageStatus, Millis, NewMessage, Priority, SettleOutcome, StoreError, StoredMessage,
};

/// Columns [`stored_message`] reads, then `attempts`.
pub(super) const MESSAGE_COLUMNS: &str =
    "id, channel, recipient, sender, priority, payload, headers, \
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

pub(super) fn stored_message(r: &Row) -> Result<(StoredMessage, u32), StoreError> {
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

    fn release(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>> {
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { release(c, &deliveries, now).await })
            }),
        )
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

    fn ready_channels(
        &self,
        channels: Vec<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                // One index probe per channel (the pending index leads with the channel).
                let rows = c
                    .query(
                        "bus: find channels with visible messages",
                        "SELECT w.channel FROM unnest($1::text[]) AS w(channel)
                         WHERE EXISTS (
                             SELECT 1 FROM bus_messages m
                             WHERE m.channel = w.channel
                               AND m.status IN ('queued', 'delivered') AND m.visible_at <= $2)",
                        &[&channels, &now],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        }))
    }

    fn bus_signals(&self) -> Option<BoxFuture<'_, Result<BusSignals, StoreError>>> {
        Some(Box::pin(self.listen()))
    }

    fn publish_remote(&self, messages: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        let channel = self.publish_channel();
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                // One round trip for the whole batch.
                c.query(
                    "bus: publish to other nodes",
                    "SELECT pg_notify($1, p)::text FROM unnest($2::text[]) AS p",
                    &[&channel, &messages],
                )
                .await?;
                Ok(())
            })
        }))
    }
}
