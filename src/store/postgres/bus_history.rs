//! History, dead letters, stats and retention of the bus on PostgreSQL; the same answers
//! as `store::sqlite::bus::history`.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::bus::{count, insert_event, priority_of, status_of};
use super::pool::Conn;
use crate::store::{
    transitions, BusStats, ChannelDepth, EventRow, HistoryQuery, HistoryRecord, MessageId,
    MessageStatus, Millis, StoreError,
};

/// Rows deleted per statement while pruning, so a big prune never holds locks for long.
const PRUNE_CHUNK: i64 = 2000;

const HISTORY_COLUMNS: &str = "id, sender, recipient, channel, payload, priority, status, \
    attempts, created_at, delivered_at, finished_at, error";

pub(super) async fn history(
    c: &mut Conn,
    q: &HistoryQuery,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let mut sql = format!("SELECT {HISTORY_COLUMNS} FROM bus_messages WHERE TRUE");
    let mut texts: Vec<(usize, String)> = Vec::new();
    let mut ints: Vec<(usize, i64)> = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if let Some(channel) = &q.channel {
        let i = next();
        sql.push_str(&format!(" AND channel = ${i}"));
        texts.push((i, channel.clone()));
    }
    if let Some(agent) = &q.agent {
        // `scout` and `agent:scout` name the same agent.
        let agent = agent.strip_prefix("agent:").unwrap_or(agent);
        let (a, b) = (next(), next());
        sql.push_str(&format!(
            " AND (channel = ${a} OR sender = ${a} OR sender = ${b})"
        ));
        texts.push((a, format!("agent:{agent}")));
        texts.push((b, agent.to_string()));
    }
    if let Some(since) = q.since {
        let i = next();
        sql.push_str(&format!(" AND created_at >= ${i}"));
        ints.push((i, since));
    }
    if let Some(until) = q.until {
        let i = next();
        sql.push_str(&format!(" AND created_at <= ${i}"));
        ints.push((i, until));
    }
    let newest_first = q.after_id.is_none();
    if let Some(after) = q.after_id {
        let i = next();
        sql.push_str(&format!(" AND id > ${i}"));
        ints.push((i, after));
    }
    sql.push_str(if newest_first {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id"
    });
    let i = next();
    sql.push_str(&format!(" LIMIT ${i}"));
    ints.push((i, i64::try_from(q.limit).unwrap_or(i64::MAX)));
    let mut params: Vec<(usize, &(dyn ToSql + Sync))> = Vec::new();
    params.extend(texts.iter().map(|(i, v)| (*i, v as &(dyn ToSql + Sync))));
    params.extend(ints.iter().map(|(i, v)| (*i, v as &(dyn ToSql + Sync))));
    params.sort_by_key(|(i, _)| *i);
    let params: Vec<&(dyn ToSql + Sync)> = params.into_iter().map(|(_, p)| p).collect();
    let rows = c.query("bus: history", &sql, &params).await?;
    let mut records = records_of(c, &rows).await?;
    if newest_first {
        records.reverse();
    }
    Ok(records)
}

pub(super) async fn dead_letters(
    c: &mut Conn,
    limit: usize,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let rows = c
        .query(
            "bus: dead letters",
            &format!(
                "SELECT {HISTORY_COLUMNS} FROM bus_messages
                 WHERE status IN ('failed', 'dead') ORDER BY id LIMIT $1"
            ),
            &[&i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await?;
    records_of(c, &rows).await
}

/// History records of `rows` (of [`HISTORY_COLUMNS`]), with their events read in one query.
async fn records_of(c: &mut Conn, rows: &[Row]) -> Result<Vec<HistoryRecord>, StoreError> {
    let ids: Vec<MessageId> = rows.iter().map(|r| r.get(0)).collect();
    let mut events: HashMap<MessageId, Vec<EventRow>> = HashMap::new();
    for r in c
        .query(
            "bus: read events",
            "SELECT message_id, event, attempt, at, error FROM bus_events
             WHERE message_id = ANY($1) ORDER BY id",
            &[&ids],
        )
        .await?
    {
        events.entry(r.get(0)).or_default().push(EventRow {
            event: r.get(1),
            attempt: count(r.get(2)),
            at: r.get(3),
            error: r.get(4),
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: MessageId = r.get(0);
        let payload: String = r.get(4);
        let status: String = r.get(6);
        let status = status_of(&status)?;
        let attempts = count(r.get(7));
        let created_at: Millis = r.get(8);
        let delivered_at: Option<Millis> = r.get(9);
        let finished_at: Option<Millis> = r.get(10);
        let events = events.remove(&id).unwrap_or_default();
        out.push(HistoryRecord {
            id,
            from: r.get(1),
            to: r.get(2),
            channel: r.get(3),
            payload: serde_json::from_str(&payload).map_err(|e| {
                StoreError::corrupt("bus: read payload", format!("message {id}: {e}"))
            })?,
            priority: priority_of(r.get(5))?,
            status,
            attempts,
            created_at,
            delivered_at,
            acked_at: finished_at.filter(|_| status == MessageStatus::Acked),
            error: r.get(11),
            transitions: transitions(
                status,
                attempts,
                created_at,
                delivered_at,
                finished_at,
                &events,
            ),
        });
    }
    Ok(out)
}

pub(super) async fn retry_dead(
    c: &mut Conn,
    id: Option<MessageId>,
    now: Millis,
) -> Result<Vec<(MessageId, String)>, StoreError> {
    let rows = c
        .query(
            "bus: find dead letters",
            "SELECT id, channel, attempts FROM bus_messages
             WHERE status IN ('failed', 'dead') AND ($1::bigint IS NULL OR id = $1)
             ORDER BY id FOR UPDATE",
            &[&id],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: MessageId = r.get(0);
        insert_event(c, id, "requeued", count(r.get(2)), now, None).await?;
        // A fresh start: new attempts, no ttl (an operator asked for it explicitly).
        c.execute(
            "bus: requeue dead letter",
            "UPDATE bus_messages SET status = 'queued', attempts = 0, visible_at = $2,
                 expires_at = NULL, delivered_at = NULL, finished_at = NULL, error = NULL
             WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        out.push((id, r.get(1)));
    }
    Ok(out)
}

/// Deletes, chunk by chunk (one statement each, with their events), the messages `filter`
/// selects with `$1` bound to `arg`.
async fn delete_in_chunks(c: &mut Conn, filter: &str, arg: i64) -> Result<u64, StoreError> {
    let sql = format!(
        "WITH d AS (SELECT id FROM bus_messages WHERE {filter} ORDER BY id LIMIT $2),
              e AS (DELETE FROM bus_events WHERE message_id IN (SELECT id FROM d))
         DELETE FROM bus_messages WHERE id IN (SELECT id FROM d)"
    );
    let mut deleted = 0;
    loop {
        let n = c
            .execute("bus: delete messages", &sql, &[&arg, &PRUNE_CHUNK])
            .await?;
        deleted += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(deleted);
        }
    }
}

pub(super) async fn purge_dead(c: &mut Conn) -> Result<u64, StoreError> {
    delete_in_chunks(c, "status IN ('failed', 'dead') AND $1::bigint = $1", 0).await
}

pub(super) async fn prune(
    c: &mut Conn,
    now: Millis,
    older_than: Millis,
    keep_count: u64,
) -> Result<(u64, u64), StoreError> {
    let expired = c
        .execute(
            "bus: expire messages",
            "UPDATE bus_messages SET status = 'expired', finished_at = $1
             WHERE status = 'queued' AND expires_at <= $1",
            &[&now],
        )
        .await?;
    // Only acked and expired messages are ever pruned: pending ones are work still to do,
    // dead letters wait for an operator.
    let mut deleted = delete_in_chunks(
        c,
        "status IN ('acked', 'expired') AND created_at < $1",
        older_than,
    )
    .await?;
    let keep = i64::try_from(keep_count).unwrap_or(i64::MAX);
    let cutoff: Option<MessageId> = c
        .query_opt(
            "bus: find retention cutoff",
            "SELECT id FROM bus_messages WHERE status IN ('acked', 'expired')
             ORDER BY id DESC LIMIT 1 OFFSET $1",
            &[&keep],
        )
        .await?
        .map(|r| r.get(0));
    if let Some(cutoff) = cutoff {
        deleted +=
            delete_in_chunks(c, "status IN ('acked', 'expired') AND id <= $1", cutoff).await?;
    }
    Ok((expired, deleted))
}

pub(super) async fn stats(c: &mut Conn) -> Result<BusStats, StoreError> {
    let mut out = BusStats::default();
    for r in c
        .query(
            "bus: stats",
            "SELECT channel, status, COUNT(*) FROM bus_messages
             WHERE status IN ('queued', 'delivered') GROUP BY channel, status ORDER BY channel COLLATE \"C\"",
            &[],
        )
        .await?
    {
        let channel: String = r.get(0);
        let status: String = r.get(1);
        let n = r.get::<_, i64>(2) as u64;
        if out.channels.last().is_none_or(|d| d.channel != channel) {
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
    for r in c
        .query(
            "bus: stats",
            "SELECT status, COUNT(*) FROM bus_messages GROUP BY status",
            &[],
        )
        .await?
    {
        let status: String = r.get(0);
        let n = r.get::<_, i64>(1) as u64;
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
