//! Reads the SQLite tables on a blocking thread, inside one read transaction (so every
//! table comes from the same moment), and hands the rows over in batches, already
//! converted to PostgreSQL values. A bounded channel keeps memory flat however big the
//! database is: the reader waits while PostgreSQL catches up.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use super::plan::{quote, TablePlan};
use super::values::{convert, PgValue};

/// Rows per batch handed to the writer.
const BATCH: usize = 1000;

pub(super) enum Chunk {
    Rows(Vec<Vec<PgValue>>),
    /// The table is done; this many rows were read from it.
    End(u64),
}

/// Schedule fire times that two or more runs hold, as problems to report. PostgreSQL
/// keeps one run per fire time (the unique index `schedule_runs_once`, what makes a run
/// fire on one node only) and would refuse the copy halfway. SQLite has kept the same rule
/// in code since migration 12, so only older history can break it.
pub(super) fn runs_held_twice(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let has_runs: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schedule_runs')",
        [],
        |r| r.get(0),
    )?;
    if !has_runs {
        return Ok(Vec::new());
    }
    conn.prepare(
        "SELECT schedule, scheduled, group_concat(id, ', ') FROM schedule_runs
         WHERE kind <> 'manual' AND outcome <> 'interrupted'
         GROUP BY schedule, scheduled HAVING COUNT(*) > 1
         ORDER BY schedule, scheduled",
    )?
    .query_map([], |r| {
        let (schedule, at, ids): (String, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let at = chrono::DateTime::from_timestamp_millis(at)
            .map_or_else(|| at.to_string(), |t| t.to_rfc3339());
        Ok(format!(
            "schedule_runs: runs {ids} of schedule '{schedule}' all hold the fire time {at}"
        ))
    })?
    .collect()
}

/// Opens `path` read-only, the way the copy reads it.
pub(super) fn open(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {} to read it: {e}", path.display()))?;
    // A running node may hold the write lock for a moment.
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(conn)
}

/// Starts reading `tables`, in order, from `conn`. Stops early when the receiver is
/// dropped (the copy failed on the PostgreSQL side).
pub(super) fn spawn(
    conn: Connection,
    tables: Vec<TablePlan>,
) -> mpsc::Receiver<Result<Chunk, String>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_all(&conn, &tables, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn read_all(
    conn: &Connection,
    tables: &[TablePlan],
    tx: &mpsc::Sender<Result<Chunk, String>>,
) -> Result<(), String> {
    // One transaction: the first SELECT fixes the snapshot every later one reads.
    conn.execute_batch("BEGIN")
        .map_err(|e| format!("begin reading: {e}"))?;
    for table in tables {
        let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
        let mut sql = format!("SELECT {} FROM {}", columns.join(", "), quote(&table.name));
        if !table.key.is_empty() {
            let key: Vec<String> = table.key.iter().map(|c| quote(c)).collect();
            sql.push_str(&format!(" ORDER BY {}", key.join(", ")));
        }
        let read_error = |e: rusqlite::Error| format!("read table {}: {e}", table.name);
        let mut stmt = conn.prepare(&sql).map_err(read_error)?;
        let mut rows = stmt.query([]).map_err(read_error)?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(read_error)? {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, ty) in table.types.iter().enumerate() {
                let value = row.get_ref(i).map_err(read_error)?;
                let value = convert(value, ty).map_err(|e| {
                    format!(
                        "table {}, row {}, column {}: {e}",
                        table.name,
                        row_name(table, row),
                        table.columns[i]
                    )
                })?;
                values.push(value);
            }
            batch.push(values);
            count += 1;
            if batch.len() == BATCH && !send(tx, Chunk::Rows(std::mem::take(&mut batch))) {
                return Ok(());
            }
        }
        if !batch.is_empty() && !send(tx, Chunk::Rows(batch)) {
            return Ok(());
        }
        if !send(tx, Chunk::End(count)) {
            return Ok(());
        }
    }
    Ok(())
}

/// False when the writer has gone (and reading on is pointless).
fn send(tx: &mpsc::Sender<Result<Chunk, String>>, chunk: Chunk) -> bool {
    tx.blocking_send(Ok(chunk)).is_ok()
}

/// A row named by its primary key (`id=12`), or its position without one.
fn row_name(table: &TablePlan, row: &rusqlite::Row<'_>) -> String {
    let mut parts = Vec::new();
    for key in &table.key {
        let Some(i) = table.columns.iter().position(|c| c == key) else {
            continue;
        };
        let value = match row.get_ref(i) {
            Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
            Ok(rusqlite::types::ValueRef::Text(t)) => {
                format!("'{}'", String::from_utf8_lossy(t))
            }
            _ => "?".into(),
        };
        parts.push(format!("{key}={value}"));
    }
    if parts.is_empty() {
        "(no primary key)".into()
    } else {
        parts.join(" ")
    }
}
