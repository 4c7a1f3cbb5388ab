//! [`ScheduleStore`] on PostgreSQL: the tables of `store::sqlite::schedules`, for schedulers
//! on several nodes writing at once.
//!
//! Concurrency, where SQLite has one writer:
//! - the lead is one row taken with a conditional upsert (`ON CONFLICT ... DO UPDATE ...
//!   WHERE`), which locks the row and rechecks the condition against the committed
//!   holder, so of several nodes trying at once exactly one leads;
//! - a run's start is its claim: a unique index on (schedule, fire time) over the rows
//!   that hold their fire time makes a second start of the same fire, from any node, a
//!   no-op (`ON CONFLICT DO NOTHING`) that the caller sees as refused ([`runs`]);
//! - batches touch rows in one order (by name), so two nodes recording fire times for the
//!   same schedules wait for each other instead of deadlocking.

mod runs;

use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use super::PgStore;
use crate::scheduler::{RunEnd, RunRecord, RunStart, StoredSchedule};
use crate::store::{Millis, ScheduleStore, StoreError};

/// Columns [`schedule_of`] reads, in order.
const COLUMNS: &str = "name, def, source, paused, failures, last_fire, next_fire, last_outcome";

/// A row of [`COLUMNS`]; a definition that does not decode is an error naming the schedule.
fn schedule_of(row: &Row) -> Result<StoredSchedule, StoreError> {
    let what = "schedules: read";
    let get = |e: tokio_postgres::Error| StoreError::corrupt(what, e);
    let name: String = row.try_get(0).map_err(get)?;
    let def_text: String = row.try_get(1).map_err(get)?;
    let def = serde_json::from_str(&def_text)
        .map_err(|e| StoreError::corrupt(what, format!("{name}: {e}")))?;
    let paused: i64 = row.try_get(3).map_err(get)?;
    let failures: i64 = row.try_get(4).map_err(get)?;
    Ok(StoredSchedule {
        def,
        source: row.try_get(2).map_err(get)?,
        paused: paused != 0,
        failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
        last_fire: row.try_get(5).map_err(get)?,
        next_fire: row.try_get(6).map_err(get)?,
        last_outcome: row.try_get(7).map_err(get)?,
    })
}

impl ScheduleStore for PgStore {
    fn put_schedule(
        &self,
        s: StoredSchedule,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let def = serde_json::to_string(&s.def);
        Box::pin(async move {
            let def = def.map_err(|e| self.located(StoreError::corrupt("schedules: put", e)))?;
            self.on_connection(move |c| {
                Box::pin(async move {
                    c.execute(
                        "schedules: put",
                        "INSERT INTO schedules (name, def, source, paused, failures, last_fire,
                             next_fire, last_outcome, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (name) DO UPDATE SET def = excluded.def,
                             source = excluded.source, paused = excluded.paused,
                             failures = excluded.failures, last_fire = excluded.last_fire,
                             next_fire = excluded.next_fire,
                             last_outcome = excluded.last_outcome,
                             updated_at = excluded.updated_at",
                        &[
                            &s.def.name,
                            &def,
                            &s.source,
                            &i64::from(s.paused),
                            &i64::from(s.failures),
                            &s.last_fire,
                            &s.next_fire,
                            &s.last_outcome,
                            &now,
                        ],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
        })
    }

    fn get_schedule(
        &self,
        name: String,
    ) -> BoxFuture<'_, Result<Option<StoredSchedule>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {COLUMNS} FROM schedules WHERE name = $1");
                let row = c.query_opt("schedules: get", &sql, &[&name]).await?;
                row.as_ref().map(schedule_of).transpose()
            })
        }))
    }

    fn list_schedules(&self) -> BoxFuture<'_, Result<Vec<StoredSchedule>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {COLUMNS} FROM schedules ORDER BY name");
                let rows = c.query("schedules: list", &sql, &[]).await?;
                rows.iter().map(schedule_of).collect()
            })
        }))
    }

    fn delete_schedule(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "schedules: delete",
                        "DELETE FROM schedules WHERE name = $1",
                        &[&name],
                    )
                    .await?;
                c.execute(
                    "schedules: delete history",
                    "DELETE FROM schedule_runs WHERE schedule = $1",
                    &[&name],
                )
                .await?;
                Ok(n > 0)
            })
        }))
    }

    fn record_fires(
        &self,
        fires: Vec<(String, Millis, Option<Millis>)>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        // One row per schedule, as applying them one by one would leave it: the newest
        // fire wins (the later of equal ones). Sorted by name: the order rows are locked.
        let mut fires = fires;
        fires.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut names: Vec<String> = Vec::with_capacity(fires.len());
        let (mut at, mut next) = (Vec::with_capacity(fires.len()), Vec::new());
        for (name, fire, n) in fires {
            if names.last() == Some(&name) {
                at.pop();
                next.pop();
                names.pop();
            }
            names.push(name);
            at.push(fire);
            next.push(n);
        }
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move {
                let what = "schedules: record fire times";
                c.query(
                    what,
                    "SELECT 1 FROM schedules WHERE name = ANY($1) ORDER BY name FOR UPDATE",
                    &[&names],
                )
                .await?;
                c.execute(
                    what,
                    "UPDATE schedules s SET last_fire = f.fire, next_fire = f.next
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS f(name, fire, next)
                     WHERE s.name = f.name AND (s.last_fire IS NULL OR s.last_fire <= f.fire)",
                    &[&names, &at, &next],
                )
                .await?;
                Ok(())
            })
        }))
    }

    fn try_lead(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                // Takes the row if it is free, ours or lapsed; a row comes back only then.
                // Of nodes upserting at once, each waits for the one before and rechecks
                // the condition against the holder it committed.
                let row = c
                    .query_opt(
                        "schedules: leadership",
                        "INSERT INTO scheduler_leader (id, node, until) VALUES (1, $1, $3)
                         ON CONFLICT (id) DO UPDATE SET node = excluded.node,
                             until = excluded.until
                         WHERE scheduler_leader.node = excluded.node
                             OR scheduler_leader.until < $2
                         RETURNING node",
                        &[&node, &now, &until],
                    )
                    .await?;
                Ok(row.is_some())
            })
        }))
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<(String, Millis)>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "schedules: leadership",
                        "SELECT node, until FROM scheduler_leader WHERE id = 1",
                        &[],
                    )
                    .await?;
                Ok(row.map(|r| (r.get(0), r.get(1))))
            })
        }))
    }

    fn take_lead_from(
        &self,
        node: String,
        holder: String,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "schedules: leadership",
                        "UPDATE scheduler_leader SET node = $1, until = $3
                         WHERE id = 1 AND node = $2",
                        &[&node, &holder, &until],
                    )
                    .await?;
                Ok(n == 1)
            })
        }))
    }

    fn schedule_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "schedules: change counter",
                        "SELECT version FROM schedule_changes WHERE id = 1",
                        &[],
                    )
                    .await?;
                Ok(row.get(0))
            })
        }))
    }

    fn running_owners(&self) -> BoxFuture<'_, Result<Vec<Option<String>>, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "schedules: running runs",
                        "SELECT DISTINCT node FROM schedule_runs WHERE outcome = 'running'",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        }))
    }

    fn interrupt_runs(
        &self,
        owner: Option<String>,
        error: String,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        Box::pin(self.in_transaction(move |c| {
            Box::pin(async move { runs::interrupt(c, owner.as_deref(), &error).await })
        }))
    }

    fn set_paused(
        &self,
        name: String,
        paused: bool,
        next: Option<Millis>,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(self.on_connection(move |c| {
            Box::pin(async move {
                let what = "schedules: pause/resume";
                let n = if paused {
                    c.execute(
                        what,
                        "UPDATE schedules SET paused = 1 WHERE name = $1",
                        &[&name],
                    )
                    .await?
                } else {
                    c.execute(
                        what,
                        "UPDATE schedules SET paused = 0, failures = 0, next_fire = $2
                         WHERE name = $1",
                        &[&name, &next],
                    )
                    .await?
                };
                Ok(n > 0)
            })
        }))
    }

    fn start_runs(
        &self,
        node: String,
        starts: Vec<RunStart>,
    ) -> BoxFuture<'_, Result<Vec<Option<i64>>, StoreError>> {
        Box::pin(
            self.in_transaction(move |c| {
                Box::pin(async move { runs::start(c, &node, &starts).await })
            }),
        )
    }

    fn finish_runs(&self, ends: Vec<RunEnd>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(
            self.in_transaction(move |c| Box::pin(async move { runs::finish(c, &ends).await })),
        )
    }

    fn schedule_runs(
        &self,
        name: String,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RunRecord>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(
            self.on_connection(move |c| {
                Box::pin(async move { runs::history(c, &name, limit).await })
            }),
        )
    }
}
