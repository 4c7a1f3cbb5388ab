//! History, dead letters, stats and retention.

use rusqlite::{params, Connection, Row, Transaction};

use super::{insert_event, priority_of, status_of, HISTORY_COLUMNS, PRUNE_CHUNK};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    transitions, BusStats, ChannelDepth, EventRow, HistoryQuery, HistoryRecord, MessageId,
    MessageStatus, Millis, StoreError,
};

pub(super) fn history(
    conn: &Connection,
    q: &HistoryQuery,
) -> Result<Vec<HistoryRecord>, StoreError> {
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
        // `scout` and `agent:scout` name the same agent.
        let agent = agent.strip_prefix("agent:").unwrap_or(agent);
        let inbox = format!("agent:{agent}");
        arg(&mut sql, " AND (channel = ?", inbox.clone().into());
        arg(&mut sql, " OR sender = ?", inbox.into());
        arg(&mut sql, " OR sender = ?)", agent.to_string().into());
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

pub(super) fn query_records(
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

pub(super) fn retry_dead(
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
    pub(super) async fn delete_in_chunks(
        &self,
        sql: &'static str,
        arg: i64,
    ) -> Result<u64, StoreError> {
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

pub(super) fn stats(conn: &Connection) -> Result<BusStats, StoreError> {
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
