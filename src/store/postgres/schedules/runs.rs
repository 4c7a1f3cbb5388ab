//! Run history on PostgreSQL: starts (the claim of a fire time), ends with the schedule
//! state they leave, interrupted runs and reading the history. Each function runs in its
//! caller's transaction and writes a whole batch in one statement per table, so 10,000
//! runs due at once cost a few round trips, not 10,000.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tokio_postgres::Row;

use crate::scheduler::{RunEnd, RunRecord, RunStart};
use crate::store::postgres::pool::Conn;
use crate::store::StoreError;

const RUN_COLUMNS: &str = "id, schedule, kind, scheduled, started, ended, outcome, error";

fn run_of(row: &Row) -> Result<RunRecord, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::corrupt("schedules: read a run", e);
    Ok(RunRecord {
        id: row.try_get(0).map_err(get)?,
        schedule: row.try_get(1).map_err(get)?,
        kind: row.try_get(2).map_err(get)?,
        scheduled: row.try_get(3).map_err(get)?,
        started: row.try_get(4).map_err(get)?,
        ended: row.try_get(5).map_err(get)?,
        outcome: row.try_get(6).map_err(get)?,
        error: row.try_get(7).map_err(get)?,
    })
}

/// Inserts every start that does not collide with a row holding its fire time (the
/// unique index `schedule_runs_once`; a collision is skipped, not an error, and waits for
/// a concurrent inserter of the same fire to commit or roll back first). Rows go in
/// sorted by (schedule, fire time), so two nodes inserting overlapping batches take the
/// index entries in one order and never deadlock.
pub(super) async fn start(
    c: &mut Conn,
    node: &str,
    starts: &[RunStart],
) -> Result<Vec<Option<i64>>, StoreError> {
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let n = starts.len();
    let (mut schedule, mut kind, mut scheduled) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut started, mut ended, mut outcome, mut error) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in starts {
        // A skipped run has no start and ends when it was decided.
        let skipped = r.outcome == "skipped";
        schedule.push(r.schedule.as_str());
        kind.push(r.kind.as_str());
        scheduled.push(r.scheduled);
        started.push((!skipped).then_some(r.started));
        ended.push(skipped.then_some(r.started));
        outcome.push(r.outcome);
        error.push(r.error.as_deref());
    }
    let what = "schedules: record run";
    let rows = c
        .query(
            what,
            "INSERT INTO schedule_runs (schedule, kind, scheduled, started, ended, outcome,
                 error, node)
             SELECT r.schedule, r.kind, r.scheduled, r.started, r.ended, r.outcome, r.error, $8
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                         $6::text[], $7::text[])
                  WITH ORDINALITY AS r(schedule, kind, scheduled, started, ended, outcome,
                                       error, ord)
             ORDER BY r.schedule, r.scheduled, r.ord
             ON CONFLICT DO NOTHING
             RETURNING id, schedule, scheduled, kind",
            &[
                &schedule, &kind, &scheduled, &started, &ended, &outcome, &error, &node,
            ],
        )
        .await?;
    // Which input each inserted row is: the first input of each (schedule, fire time,
    // kind) in input order took the lowest id of that key.
    let mut inserted: HashMap<(String, i64, String), VecDeque<i64>> = HashMap::new();
    let mut returned: Vec<(i64, String, i64, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    returned.sort_unstable_by_key(|r| r.0);
    for (id, s, at, k) in returned {
        inserted.entry((s, at, k)).or_default().push_back(id);
    }
    let mut ids = Vec::with_capacity(n);
    let mut skipped_names: Vec<&str> = Vec::new();
    for r in starts {
        let key = (r.schedule.clone(), r.scheduled, r.kind.as_str().to_string());
        let id = inserted.get_mut(&key).and_then(VecDeque::pop_front);
        if id.is_some() && r.outcome == "skipped" {
            skipped_names.push(&r.schedule);
        }
        ids.push(id);
    }
    if !skipped_names.is_empty() {
        skipped_names.sort_unstable();
        skipped_names.dedup();
        c.execute(
            what,
            "UPDATE schedules SET last_outcome = 'skipped' WHERE name = ANY($1)",
            &[&skipped_names],
        )
        .await?;
    }
    Ok(ids)
}

/// Records ends and the schedule state each leaves (the last end of a schedule in the
/// batch sets its failures and outcome; any end that paused it pauses it), then prunes
/// the history of schedules whose run id is a multiple of 16, as on SQLite: bounded at
/// keep + 16 rows per schedule without a delete per run.
pub(super) async fn finish(c: &mut Conn, ends: &[RunEnd]) -> Result<(), StoreError> {
    if ends.is_empty() {
        return Ok(());
    }
    let what = "schedules: finish run";
    let id: Vec<i64> = ends.iter().map(|e| e.id).collect();
    let ended: Vec<i64> = ends.iter().map(|e| e.ended).collect();
    let outcome: Vec<&str> = ends.iter().map(|e| e.outcome).collect();
    let error: Vec<Option<&str>> = ends.iter().map(|e| e.error.as_deref()).collect();
    c.execute(
        what,
        "UPDATE schedule_runs r SET ended = e.ended, outcome = e.outcome, error = e.error
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
              AS e(id, ended, outcome, error)
         WHERE r.id = e.id",
        &[&id, &ended, &outcome, &error],
    )
    .await?;
    // Sorted by name (a BTreeMap): the order schedule rows are locked in.
    let mut state: BTreeMap<&str, (i64, &str, bool)> = BTreeMap::new();
    let mut prune: BTreeMap<&str, i64> = BTreeMap::new();
    for e in ends {
        let paused = state.get(e.schedule.as_str()).is_some_and(|s| s.2);
        state.insert(
            &e.schedule,
            (i64::from(e.failures), e.outcome, paused || e.pause),
        );
        if e.id % 16 == 0 {
            let keep = i64::try_from(e.keep).unwrap_or(i64::MAX).max(1);
            prune.insert(&e.schedule, keep);
        }
    }
    let names: Vec<&str> = state.keys().copied().collect();
    let failures: Vec<i64> = state.values().map(|s| s.0).collect();
    let outcomes: Vec<&str> = state.values().map(|s| s.1).collect();
    let pause: Vec<bool> = state.values().map(|s| s.2).collect();
    c.execute(
        what,
        "UPDATE schedules s SET failures = u.failures, last_outcome = u.outcome,
             paused = CASE WHEN u.pause THEN 1 ELSE s.paused END
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bool[])
              AS u(name, failures, outcome, pause)
         WHERE s.name = u.name",
        &[&names, &failures, &outcomes, &pause],
    )
    .await?;
    if !prune.is_empty() {
        let names: Vec<&str> = prune.keys().copied().collect();
        let keep: Vec<i64> = prune.values().copied().collect();
        c.execute(
            "schedules: prune history",
            "DELETE FROM schedule_runs r
             USING unnest($1::text[], $2::bigint[]) AS p(schedule, keep)
             WHERE r.schedule = p.schedule AND r.id < COALESCE(
                 (SELECT id FROM schedule_runs WHERE schedule = p.schedule
                  ORDER BY id DESC LIMIT 1 OFFSET p.keep - 1), 0)",
            &[&names, &keep],
        )
        .await?;
    }
    Ok(())
}

/// Marks `owner`'s runs still `running` as interrupted and returns them as they were. The
/// rows are locked first: a leader on another node doing the same at the same moment
/// waits, then finds them no longer running, so each interrupted run is reported (and run
/// again by policy) once.
pub(super) async fn interrupt(
    c: &mut Conn,
    owner: Option<&str>,
    error: &str,
) -> Result<Vec<RunRecord>, StoreError> {
    let what = "schedules: interrupted runs";
    let rows = match owner {
        Some(owner) => {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM schedule_runs
                 WHERE outcome = 'running' AND node = $1 ORDER BY id FOR UPDATE"
            );
            c.query(what, &sql, &[&owner]).await?
        }
        None => {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM schedule_runs
                 WHERE outcome = 'running' AND node IS NULL ORDER BY id FOR UPDATE"
            );
            c.query(what, &sql, &[]).await?
        }
    };
    let runs = rows.iter().map(run_of).collect::<Result<Vec<_>, _>>()?;
    if runs.is_empty() {
        return Ok(runs);
    }
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    c.execute(
        what,
        "UPDATE schedule_runs SET outcome = 'interrupted', error = $2 WHERE id = ANY($1)",
        &[&ids, &error],
    )
    .await?;
    let mut names: Vec<&str> = runs.iter().map(|r| r.schedule.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    c.execute(
        what,
        "UPDATE schedules SET last_outcome = 'interrupted' WHERE name = ANY($1)",
        &[&names],
    )
    .await?;
    Ok(runs)
}

/// The newest `limit` runs of a schedule, oldest first.
pub(super) async fn history(
    c: &mut Conn,
    name: &str,
    limit: i64,
) -> Result<Vec<RunRecord>, StoreError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE schedule = $1 ORDER BY id DESC LIMIT $2"
    );
    let rows = c
        .query("schedules: history", &sql, &[&name, &limit])
        .await?;
    let mut runs = rows.iter().map(run_of).collect::<Result<Vec<_>, _>>()?;
    runs.reverse();
    Ok(runs)
}
