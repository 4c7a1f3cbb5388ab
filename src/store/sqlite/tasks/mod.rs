//! [`TaskStore`] on SQLite.
//!
//! One row per task in `tasks`; its dependency edges in `task_deps`; every transition
//! appended to `task_events`, which is what `dreamos task watch` in another process tails
//! and what `task show` prints as history.
//!
//! Indexes are what the hot path needs. `tasks_by_status (status, priority, id)` is the
//! claim's index: the best ready task is the first entry after the `'ready'` prefix, a
//! seek however many tasks are ready or done, so claiming stays flat as the backlog grows;
//! the same index serves `list` by status. Claims by category use a partial index of ready
//! tasks only. Lapsed leases and passed deadlines are found through partial indexes, so
//! the sweep each claim does first costs two seeks. Those indexes key on columns that are
//! set only while they matter — `lease_until` only while the task is held, `due_at` (the
//! deadline) only until the task is final — because a partial index on `status IN (...)`
//! loses to `tasks_by_status` in SQLite's planner, which then walks every unfinished task.
//! `tasks.unmet` counts dependencies not yet done, so finishing a task releases its
//! dependents without re-reading their other dependencies.

mod deps;
mod due;
mod read;
mod write;

use futures_util::future::BoxFuture;
use rusqlite::{params, Row, Transaction};

use super::SqliteStore;
use crate::store::{Millis, Priority, Refusable, StoreError, TaskStore};
use crate::tasks::{
    AgentSummary, ClaimOutcome, ClaimQuery, Lease, ListFilter, NewTask, Status, Task, TaskEvent,
    TaskId,
};

/// Migration 3. Written in the SQL SQLite and PostgreSQL share (partial indexes,
/// `RETURNING`); PostgreSQL would spell `INTEGER PRIMARY KEY` as an identity column and
/// `REAL` as `DOUBLE PRECISION`.
pub(super) const SCHEMA: &str = "
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    plan_key     TEXT,
    title        TEXT    NOT NULL,
    description  TEXT,
    priority     INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    category     TEXT,
    tags         TEXT,
    payload      TEXT,
    assignee     TEXT,
    agent        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    unmet        INTEGER NOT NULL DEFAULT 0,
    progress     REAL    NOT NULL DEFAULT 0,
    note         TEXT,
    result       TEXT,
    error        TEXT,
    lease_ms     INTEGER,
    lease_until  INTEGER,
    deadline     INTEGER,
    due_at       INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX tasks_by_status ON tasks (status, priority, id);
CREATE INDEX tasks_ready_category ON tasks (category, priority, id)
    WHERE status = 'ready' AND category IS NOT NULL;
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX tasks_due ON tasks (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL,
    depends_on INTEGER NOT NULL,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_deps_dependents ON task_deps (depends_on);
CREATE TABLE task_events (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL,
    old_status TEXT,
    new_status TEXT    NOT NULL,
    progress   REAL    NOT NULL,
    note       TEXT,
    agent      TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);
";

/// Columns [`task_of`] reads, in order.
pub(super) const TASK_COLUMNS: &str = "id, plan_key, title, description, priority, status, \
    category, tags, payload, assignee, agent, attempts, max_attempts, progress, note, result, \
    error, lease_until, deadline, created_at, updated_at";

/// A row of [`TASK_COLUMNS`]. Corrupt JSON or names surface as conversion errors (the
/// caller maps them to [`StoreError`]) rather than panics.
pub(super) fn task_of(row: &Row<'_>) -> rusqlite::Result<Task> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let rank: i64 = row.get(4)?;
    let status: String = row.get(5)?;
    let tags: Option<String> = row.get(7)?;
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
        let text: Option<String> = row.get(i)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| bad(i, e.to_string())))
            .transpose()
    };
    Ok(Task {
        id: row.get(0)?,
        key: row.get(1)?,
        title: row.get(2)?,
        description: row.get(3)?,
        priority: Priority::from_rank(rank).ok_or_else(|| bad(4, format!("priority {rank}")))?,
        status: status.parse().map_err(|e: String| bad(5, e))?,
        category: row.get(6)?,
        tags: match tags {
            Some(t) => serde_json::from_str(&t).map_err(|e| bad(7, e.to_string()))?,
            None => Vec::new(),
        },
        payload: json(8)?,
        assignee: row.get(9)?,
        agent: row.get(10)?,
        attempts: row.get(11)?,
        max_attempts: row.get(12)?,
        progress: row.get(13)?,
        note: row.get(14)?,
        result: json(15)?,
        error: row.get(16)?,
        lease_until: row.get(17)?,
        deadline: row.get(18)?,
        created_at: row.get(19)?,
        updated_at: row.get(20)?,
        depends_on: Vec::new(),
    })
}

/// Maps a row-conversion error to a readable store error.
pub(super) fn read_err(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, cause) => StoreError::corrupt(what, cause),
        other => StoreError::sql(what)(other),
    }
}

pub(super) fn status_of(text: &str) -> Result<Status, StoreError> {
    text.parse()
        .map_err(|e| StoreError::corrupt("tasks: read status", e))
}

/// One transition to log: everything but its `seq`, which the insert assigns.
pub(super) struct Transition<'a> {
    pub id: TaskId,
    pub title: &'a str,
    pub old: Option<Status>,
    pub new: Status,
    pub progress: f64,
    pub note: Option<&'a str>,
    pub agent: Option<&'a str>,
}

/// Appends a transition to `task_events` and returns it as the event to publish.
pub(super) fn log(
    txn: &Transaction<'_>,
    t: Transition<'_>,
    now: Millis,
) -> Result<TaskEvent, StoreError> {
    txn.prepare_cached(
        "INSERT INTO task_events (task_id, old_status, new_status, progress, note, agent, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.id,
            t.old.map(Status::as_str),
            t.new.as_str(),
            t.progress,
            t.note,
            t.agent,
            now
        ])
    })
    .map_err(StoreError::sql("tasks: log transition"))?;
    Ok(TaskEvent {
        seq: txn.last_insert_rowid(),
        id: t.id,
        title: t.title.to_string(),
        old: t.old,
        new: t.new,
        progress: t.progress,
        note: t.note.map(str::to_string),
        agent: t.agent.map(str::to_string),
        at: now,
    })
}

impl TaskStore for SqliteStore {
    fn insert_tasks(
        &self,
        tasks: Vec<NewTask>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(self.write(move |txn| write::insert(txn, &tasks, now)))
    }

    fn claim_task(
        &self,
        query: ClaimQuery,
        now: Millis,
    ) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        Box::pin(self.write(move |txn| write::claim(txn, &query, now)))
    }

    fn heartbeat_task(
        &self,
        lease: Lease,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Millis>, StoreError>> {
        Box::pin(self.write(move |txn| write::heartbeat(txn, &lease, now)))
    }

    fn progress_task(
        &self,
        lease: Lease,
        pct: f64,
        note: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<TaskEvent>, StoreError>> {
        Box::pin(self.write(move |txn| write::progress(txn, &lease, pct, note.as_deref(), now)))
    }

    fn complete_task(
        &self,
        lease: Lease,
        result: Option<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(self.write(move |txn| write::complete(txn, &lease, result.as_deref(), now)))
    }

    fn fail_task(
        &self,
        lease: Lease,
        error: String,
        retry: bool,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(self.write(move |txn| write::fail(txn, &lease, &error, retry, now)))
    }

    fn cancel_task(
        &self,
        id: TaskId,
        reason: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Refusable<Vec<TaskEvent>>, StoreError>> {
        Box::pin(self.write(move |txn| write::cancel(txn, id, &reason, now)))
    }

    fn sweep_tasks(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        Box::pin(self.write(move |txn| {
            let mut events = Vec::new();
            due::sweep(txn, now, limit, &mut events)?;
            Ok(events)
        }))
    }

    fn get_task(&self, id: TaskId) -> BoxFuture<'_, Result<Option<Task>, StoreError>> {
        Box::pin(self.read(move |conn| read::get(conn, id)))
    }

    fn list_tasks(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Task>, StoreError>> {
        Box::pin(self.read(move |conn| read::list(conn, &filter)))
    }

    fn task_counts(&self) -> BoxFuture<'_, Result<Vec<(Status, u64)>, StoreError>> {
        Box::pin(self.read(read::counts))
    }

    fn agent_summary(&self) -> BoxFuture<'_, Result<Vec<AgentSummary>, StoreError>> {
        Box::pin(self.read(read::agent_summary))
    }

    fn task_edges(
        &self,
        ids: Option<Vec<TaskId>>,
    ) -> BoxFuture<'_, Result<Vec<(TaskId, TaskId)>, StoreError>> {
        Box::pin(self.read(move |conn| read::edges(conn, ids.as_deref())))
    }

    fn task_events(
        &self,
        after: i64,
        limit: usize,
        task: Option<TaskId>,
    ) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        Box::pin(self.read(move |conn| read::events(conn, after, limit, task)))
    }

    fn last_task_event(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.read(|conn| {
            conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM task_events")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(StoreError::sql("tasks: read last event"))
        }))
    }

    fn prune_task_events(&self, keep: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.write(move |txn| due::prune_events(txn, keep)))
    }

    fn task_events_at(&self, seqs: Vec<i64>) -> BoxFuture<'_, Result<Vec<TaskEvent>, StoreError>> {
        // One seek per number: asked for rarely and few at a time (nothing tails SQLite).
        Box::pin(self.read(move |conn| {
            let mut out = Vec::new();
            for seq in seqs {
                let found = read::events(conn, seq.saturating_sub(1), 1, None)?;
                out.extend(found.into_iter().filter(|e| e.seq == seq));
            }
            out.sort_by_key(|e| e.seq);
            Ok(out)
        }))
    }

    fn listen_tasks(
        &self,
    ) -> BoxFuture<'_, Result<Option<crate::store::TaskListener>, StoreError>> {
        // One daemon writes a SQLite store; its own events reach its bus directly.
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::due::{lapsed_leases, passed_deadlines};
    use super::write::{ready_query, NEXT_EXPIRY};
    use crate::store::{open_sqlite, StoreError};
    use crate::tasks::ClaimQuery;

    /// The hot queries seek an index rather than scan the table: that is what keeps claim
    /// flat as the backlog grows (the benchmark measures it; this guards it cheaply).
    #[tokio::test]
    async fn hot_queries_use_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_sqlite(&dir.path().join("t.db")).await.expect("open");
        let query = |category: Option<&str>, tags: &[&str]| {
            ready_query(&ClaimQuery {
                agent: "a".into(),
                category: category.map(String::from),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                lease_ms: 1000,
            })
        };
        let cases = vec![
            (query(None, &[]), "tasks_by_status"),
            (query(Some("render"), &[]), "tasks_ready_category"),
            (query(None, &["gpu"]), "tasks_by_status"),
            ((lapsed_leases(64), vec!["1".into()]), "tasks_leased"),
            ((passed_deadlines(64), vec!["1".into()]), "tasks_due"),
            ((NEXT_EXPIRY.to_string(), vec![]), "tasks_leased"),
        ];
        for ((sql, args), index) in cases {
            let shown = sql.clone();
            let plan = store
                .read(move |conn| {
                    let mut s = conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                        .map_err(StoreError::sql("explain"))?;
                    let rows = s
                        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                            r.get::<_, String>(3)
                        })
                        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                        .map_err(StoreError::sql("explain"))?;
                    Ok(rows.join("; "))
                })
                .await
                .expect("explain");
            assert!(plan.contains(index), "{shown}: {plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{shown}: sorts instead of walking: {plan}"
            );
        }
    }

    /// The hot statements keep their plan across bindings. SQLite re-prepares a statement
    /// whose plan depended on a bound value (`ORDER BY ... LIMIT ?` does) at every new
    /// binding; that once cost a third of the writer's time per claim.
    #[test]
    fn hot_statements_are_not_re_prepared() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(super::SCHEMA).expect("schema");
        let claim = |category: Option<&str>| {
            ready_query(&ClaimQuery {
                agent: "a".into(),
                category: category.map(String::from),
                tags: vec!["gpu".into()],
                lease_ms: 1000,
            })
        };
        for (sql, args) in [
            (lapsed_leases(64), vec!["1"]),
            (passed_deadlines(64), vec!["1"]),
            (claim(None).0, vec!["a", "\"gpu\""]),
            (claim(Some("render")).0, vec!["a", "render", "\"gpu\""]),
        ] {
            let mut stmt = conn.prepare(&sql).expect("prepare");
            for i in 0..5 {
                let bound: Vec<String> = args.iter().map(|a| format!("{a}{i}")).collect();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(bound.iter()), |r| {
                        r.get::<_, i64>(0)
                    })
                    .expect("query")
                    .count();
                assert_eq!(rows, 0);
            }
            let re = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(re, 0, "re-prepared {re} times: {sql}");
        }
    }
}
