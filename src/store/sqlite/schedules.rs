//! [`ScheduleStore`] on SQLite: one row per schedule (definition as JSON plus fire state)
//! and one row per run in `schedule_runs`.

use futures_util::future::BoxFuture;
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::scheduler::{RunEnd, RunKind, RunRecord, RunStart, ScheduleDef, StoredSchedule};
use crate::store::{Millis, ScheduleStore, StoreError};

mod schema;
pub(super) use schema::{CHANGES_SCHEMA, LEADER_SCHEMA, SCHEMA};

const COLUMNS: &str = "name, def, source, paused, failures, last_fire, next_fire, last_outcome";

const RUN_COLUMNS: &str = "id, schedule, kind, scheduled, started, ended, outcome, error";

fn read_run(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        schedule: r.get(1)?,
        kind: r.get(2)?,
        scheduled: r.get(3)?,
        started: r.get(4)?,
        ended: r.get(5)?,
        outcome: r.get(6)?,
        error: r.get(7)?,
    })
}

fn read_schedule(row: &Row<'_>) -> rusqlite::Result<(String, String, StoredSchedule)> {
    let name: String = row.get(0)?;
    let def_text: String = row.get(1)?;
    let placeholder = StoredSchedule {
        def: ScheduleDef::new(name.clone()),
        source: row.get(2)?,
        paused: row.get(3)?,
        failures: row.get(4)?,
        last_fire: row.get(5)?,
        next_fire: row.get(6)?,
        last_outcome: row.get(7)?,
    };
    Ok((name, def_text, placeholder))
}

/// Decodes the JSON definition outside rusqlite's row callback, so a bad row is a
/// [`StoreError::Corrupt`] naming the schedule.
fn decode(
    (name, def_text, mut schedule): (String, String, StoredSchedule),
) -> Result<StoredSchedule, StoreError> {
    schedule.def = serde_json::from_str(&def_text)
        .map_err(|e| StoreError::corrupt("schedules: read", format!("{name}: {e}")))?;
    Ok(schedule)
}

impl ScheduleStore for SqliteStore {
    fn put_schedule(
        &self,
        s: StoredSchedule,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        // Serialized on the caller's side, so the writer thread only writes.
        let def = serde_json::to_string(&s.def);
        Box::pin(async move {
            let def = def.map_err(|e| StoreError::corrupt("schedules: put", e))?;
            self.write(move |txn| {
                txn.prepare_cached(
                    "INSERT INTO schedules (name, def, source, paused, failures, last_fire,
                         next_fire, last_outcome, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (name) DO UPDATE SET def = excluded.def,
                         source = excluded.source, paused = excluded.paused,
                         failures = excluded.failures, last_fire = excluded.last_fire,
                         next_fire = excluded.next_fire, last_outcome = excluded.last_outcome,
                         updated_at = excluded.updated_at",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        s.def.name,
                        def,
                        s.source,
                        s.paused,
                        s.failures,
                        s.last_fire,
                        s.next_fire,
                        s.last_outcome,
                        now
                    ])
                })
                .map_err(StoreError::sql("schedules: put"))?;
                Ok(())
            })
            .await
        })
    }

    fn get_schedule(
        &self,
        name: String,
    ) -> BoxFuture<'_, Result<Option<StoredSchedule>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let raw = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE name = ?1"))
                .and_then(|mut s| s.query_row(params![name], read_schedule).optional())
                .map_err(StoreError::sql("schedules: get"))?;
            raw.map(decode).transpose()
        }))
    }

    fn list_schedules(&self) -> BoxFuture<'_, Result<Vec<StoredSchedule>, StoreError>> {
        Box::pin(self.read(move |conn| {
            let raw = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules ORDER BY name"))
                .and_then(|mut s| {
                    s.query_map([], read_schedule)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(StoreError::sql("schedules: list"))?;
            raw.into_iter().map(decode).collect()
        }))
    }

    fn delete_schedule(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached("DELETE FROM schedules WHERE name = ?1")
                .and_then(|mut s| s.execute(params![name]))
                .map_err(StoreError::sql("schedules: delete"))?;
            txn.prepare_cached("DELETE FROM schedule_runs WHERE schedule = ?1")
                .and_then(|mut s| s.execute(params![name]))
                .map_err(StoreError::sql("schedules: delete history"))?;
            Ok(n > 0)
        }))
    }

    fn record_fires(
        &self,
        fires: Vec<(String, Millis, Option<Millis>)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            let mut stmt = txn
                .prepare_cached(
                    "UPDATE schedules SET last_fire = ?2, next_fire = ?3
                     WHERE name = ?1 AND (last_fire IS NULL OR last_fire <= ?2)",
                )
                .map_err(StoreError::sql("schedules: record fire times"))?;
            for (name, fire, next) in &fires {
                stmt.execute(params![name, fire, next])
                    .map_err(StoreError::sql("schedules: record fire times"))?;
            }
            Ok(())
        }))
    }

    fn try_lead(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            // Portable upsert (SQLite and PostgreSQL): take the row if it is ours or lapsed.
            txn.prepare_cached(
                "INSERT INTO scheduler_leader (id, node, until) VALUES (1, ?1, ?3)
                 ON CONFLICT (id) DO UPDATE SET node = excluded.node, until = excluded.until
                 WHERE scheduler_leader.node = excluded.node OR scheduler_leader.until < ?2",
            )
            .and_then(|mut s| s.execute(params![node, now, until]))
            .map_err(StoreError::sql("schedules: leadership"))?;
            let leader: String = txn
                .prepare_cached("SELECT node FROM scheduler_leader WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(StoreError::sql("schedules: leadership"))?;
            Ok(leader == node)
        }))
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<(String, Millis)>, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached("SELECT node, until FROM scheduler_leader WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(StoreError::sql("schedules: leadership"))
        }))
    }

    fn take_lead_from(
        &self,
        node: String,
        holder: String,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let n = txn
                .prepare_cached(
                    "UPDATE scheduler_leader SET node = ?1, until = ?3 WHERE id = 1 AND node = ?2",
                )
                .and_then(|mut s| s.execute(params![node, holder, until]))
                .map_err(StoreError::sql("schedules: leadership"))?;
            Ok(n == 1)
        }))
    }

    fn schedule_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached("SELECT version FROM schedule_changes WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(StoreError::sql("schedules: change counter"))
        }))
    }

    fn running_owners(&self) -> BoxFuture<'_, Result<Vec<Option<String>>, StoreError>> {
        Box::pin(self.read(move |conn| {
            conn.prepare_cached("SELECT DISTINCT node FROM schedule_runs WHERE outcome = 'running'")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(StoreError::sql("schedules: running runs"))
        }))
    }

    fn interrupt_runs(
        &self,
        owner: Option<String>,
        error: String,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let runs = txn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM schedule_runs
                     WHERE outcome = 'running' AND node IS ?1 ORDER BY id"
                ))
                .and_then(|mut s| {
                    s.query_map(params![owner], read_run)?
                        .collect::<Result<Vec<RunRecord>, _>>()
                })
                .map_err(StoreError::sql("schedules: interrupted runs"))?;
            txn.prepare_cached(
                "UPDATE schedule_runs SET outcome = 'interrupted', error = ?2
                 WHERE outcome = 'running' AND node IS ?1",
            )
            .and_then(|mut s| s.execute(params![owner, error]))
            .map_err(StoreError::sql("schedules: interrupted runs"))?;
            let mut last = txn
                .prepare_cached("UPDATE schedules SET last_outcome = 'interrupted' WHERE name = ?1")
                .map_err(StoreError::sql("schedules: interrupted runs"))?;
            for run in &runs {
                last.execute(params![run.schedule])
                    .map_err(StoreError::sql("schedules: interrupted runs"))?;
            }
            drop(last);
            Ok(runs)
        }))
    }

    fn set_paused(
        &self,
        name: String,
        paused: bool,
        next: Option<Millis>,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.write(move |txn| {
            let sql = if paused {
                "UPDATE schedules SET paused = 1 WHERE name = ?1"
            } else {
                "UPDATE schedules SET paused = 0, failures = 0, next_fire = ?2 WHERE name = ?1"
            };
            let n = txn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    if paused {
                        s.execute(params![name])
                    } else {
                        s.execute(params![name, next])
                    }
                })
                .map_err(StoreError::sql("schedules: pause/resume"))?;
            Ok(n > 0)
        }))
    }

    fn start_runs(
        &self,
        node: String,
        runs: Vec<RunStart>,
    ) -> BoxFuture<'_, Result<Vec<Option<i64>>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let err = || StoreError::sql("schedules: record run");
            let mut insert = txn
                .prepare_cached(
                    "INSERT INTO schedule_runs (schedule, kind, scheduled, started, ended,
                         outcome, error, node)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err())?;
            // The claim: the single writer makes this check and the insert one step. (On
            // PostgreSQL a unique index does the same for concurrent writers.)
            let mut held = txn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM schedule_runs WHERE schedule = ?1
                         AND scheduled = ?2 AND kind <> 'manual' AND outcome <> 'interrupted')",
                )
                .map_err(err())?;
            let mut skipped = txn
                .prepare_cached("UPDATE schedules SET last_outcome = 'skipped' WHERE name = ?1")
                .map_err(err())?;
            let mut ids = Vec::with_capacity(runs.len());
            for r in &runs {
                if r.kind != RunKind::Manual {
                    let taken: bool = held
                        .query_row(params![r.schedule, r.scheduled], |row| row.get(0))
                        .map_err(err())?;
                    if taken {
                        ids.push(None);
                        continue;
                    }
                }
                // A skipped run has no start and ends when it was decided.
                let (start, end) = if r.outcome == "skipped" {
                    (None, Some(r.started))
                } else {
                    (Some(r.started), None)
                };
                insert
                    .execute(params![
                        r.schedule,
                        r.kind.as_str(),
                        r.scheduled,
                        start,
                        end,
                        r.outcome,
                        r.error,
                        node
                    ])
                    .map_err(err())?;
                ids.push(Some(txn.last_insert_rowid()));
                if r.outcome == "skipped" {
                    skipped.execute(params![r.schedule]).map_err(err())?;
                }
            }
            Ok(ids)
        }))
    }

    fn finish_runs(&self, ends: Vec<RunEnd>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.write(move |txn| {
            let err = || StoreError::sql("schedules: finish run");
            let mut run = txn
                .prepare_cached(
                    "UPDATE schedule_runs SET ended = ?2, outcome = ?3, error = ?4 WHERE id = ?1",
                )
                .map_err(err())?;
            let mut schedule = txn
                .prepare_cached(
                    "UPDATE schedules SET failures = ?2, last_outcome = ?3,
                         paused = CASE WHEN ?4 THEN 1 ELSE paused END
                     WHERE name = ?1",
                )
                .map_err(err())?;
            // Retention: pruning on every 16th run keeps the cost off the common path while
            // bounding history at keep + 16 rows per schedule.
            let mut prune = txn
                .prepare_cached(
                    "DELETE FROM schedule_runs WHERE schedule = ?1 AND id < COALESCE(
                         (SELECT id FROM schedule_runs WHERE schedule = ?1
                          ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1), 0)",
                )
                .map_err(StoreError::sql("schedules: prune history"))?;
            for end in &ends {
                run.execute(params![end.id, end.ended, end.outcome, end.error])
                    .map_err(err())?;
                schedule
                    .execute(params![end.schedule, end.failures, end.outcome, end.pause])
                    .map_err(err())?;
                if end.id % 16 == 0 {
                    let keep = i64::try_from(end.keep).unwrap_or(i64::MAX);
                    prune
                        .execute(params![end.schedule, keep.max(1)])
                        .map_err(StoreError::sql("schedules: prune history"))?;
                }
            }
            Ok(())
        }))
    }

    fn schedule_runs(
        &self,
        name: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.read(move |conn| {
            let mut rows = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE schedule = ?1
                     ORDER BY id DESC LIMIT ?2"
                ))
                .and_then(|mut s| {
                    s.query_map(params![name, limit], read_run)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(StoreError::sql("schedules: history"))?;
            rows.reverse();
            Ok(rows)
        }))
    }
}
