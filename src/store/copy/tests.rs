//! The copy engine on a hand-made SQLite database: values of every supported type, id
//! sequences continuing after ids SQLite handed out, and refusals that leave PostgreSQL
//! untouched. (`tests/store_copy.rs` copies a deployment built through the product.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::store::bus_types::{HistoryQuery, MessageStatus, NewMessage, Priority};
use crate::store::testing::{postgres_url, Backend, TestDb};
use crate::store::BusStore;

/// A fresh PostgreSQL schema (migrated), with an extra table of every supported type.
async fn target() -> Option<(TestDb, Arc<PgStore>)> {
    postgres_url()?;
    let (db, store) = TestDb::open_on(Backend::Postgres).await;
    let pg = store.pg().expect("a PostgreSQL store");
    pg.pool()
        .get()
        .await
        .expect("connection")
        .batch(
            "create extra",
            "CREATE TABLE extra (
                 id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 flag  BOOLEAN NOT NULL,
                 data  BYTEA,
                 doc   JSONB,
                 small INTEGER,
                 ratio REAL,
                 note  TEXT DEFAULT 'none'
             )",
        )
        .await
        .expect("create extra");
    Some((db, pg))
}

/// A SQLite database with the schema of migrations 1 to 6 (which PostgreSQL has too) and
/// `extra`, holding bus history, a task and extra rows; `tweak` changes it before use.
fn source(dir: &Path, tweak: &str) -> PathBuf {
    let path = dir.join("source.db");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                      applied_at INTEGER NOT NULL);",
    )
    .expect("schema_version");
    for m in crate::store::sqlite::MIGRATIONS
        .iter()
        .filter(|m| m.version <= 6)
    {
        conn.execute_batch(m.sql).expect("migration");
        conn.execute(
            "INSERT INTO schema_version VALUES (?1, ?2, 0)",
            rusqlite::params![m.version, m.name],
        )
        .expect("record");
    }
    conn.execute_batch(
        "INSERT INTO bus_messages (id, channel, recipient, sender, priority, payload, status,
                                   attempts, max_attempts, visible_at, created_at, finished_at,
                                   error)
         VALUES (3, 'agent:a', 'agent:a', 'cli', 1, '{\"n\":1}', 'acked', 1, 3, 0, 1000, 1100, NULL),
                (7, 'agent:b', 'agent:b', 'cli', 1, '{\"n\":2}', 'dead', 3, 3, 0, 2000, 2100,
                 'no handler'),
                (8, 'agent:b', 'agent:b', 'cli', 2, '{\"n\":3}', 'queued', 0, 3, 0, 3000, NULL,
                 NULL);
         -- Messages up to 49 were handed out; the rest were pruned.
         UPDATE bus_sequence SET next_id = 50;
         INSERT INTO bus_events (message_id, event, attempt, at) VALUES (3, 'acked', 1, 1100);
         INSERT INTO kv VALUES ('app', 'greeting', '\"hello\"', 5);
         INSERT INTO tasks (id, title, priority, status, max_attempts, progress, created_at,
                            updated_at)
         VALUES (4, 'write report', 1, 'done', 3, 1.0, 10, 20);
         CREATE TABLE extra (
             id    INTEGER PRIMARY KEY AUTOINCREMENT,
             flag  INTEGER NOT NULL,
             data  BLOB,
             doc   TEXT,
             small INTEGER,
             ratio REAL
         );
         INSERT INTO extra (flag, data, doc, small, ratio)
         VALUES (1, x'00ff', '{\"k\":[1,2]}', 12, 0.5),
                (0, NULL, NULL, NULL, 2),
                (1, NULL, NULL, NULL, NULL);
         -- AUTOINCREMENT remembers id 3 after its row is gone.
         DELETE FROM extra WHERE id = 3;",
    )
    .expect("rows");
    conn.execute_batch(tweak).expect("tweak");
    path
}

async fn count(pg: &PgStore, table: &str) -> i64 {
    let mut conn = pg.pool().get().await.expect("connection");
    super::count(&mut conn, table).await.expect("count")
}

fn message(channel: &str) -> NewMessage {
    NewMessage {
        channel: channel.into(),
        recipient: channel.into(),
        sender: "test".into(),
        priority: Priority::default(),
        payload: "{}".into(),
        headers: None,
        correlation_id: None,
        reply_to: None,
        max_attempts: 3,
        backoff_ms: None,
        expires_at: None,
        created_at: 9000,
    }
}

#[tokio::test]
async fn every_row_arrives_and_new_ids_continue_after_the_old() {
    let Some((db, pg)) = target().await else {
        return;
    };
    let from = source(db.path(), "");
    let report = copy_into(&pg, &from).await.expect("copy");

    let rows: std::collections::HashMap<_, _> = report.tables.iter().cloned().collect();
    assert_eq!(rows["bus_messages"], 3);
    assert_eq!(rows["extra"], 2);
    assert_eq!(rows["kv"], 1);
    assert!(report.skipped.iter().any(|(t, _)| t == "bus_sequence"));

    let history = pg
        .history(HistoryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("history");
    let statuses: Vec<_> = history.iter().map(|h| (h.id, h.status)).collect();
    assert!(
        statuses.contains(&(3, MessageStatus::Acked)),
        "{statuses:?}"
    );
    let dead = pg.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error.as_deref(), Some("no handler"));

    // Ids SQLite handed out (up to 49 on the bus, 3 in extra) are not handed out again.
    let ids = pg.enqueue(vec![message("agent:c")]).await.expect("enqueue");
    assert_eq!(ids, vec![50]);
    let mut conn = pg.pool().get().await.expect("connection");
    let row = conn
        .query_one(
            "insert",
            "INSERT INTO extra (flag) VALUES (true) RETURNING id",
            &[],
        )
        .await
        .expect("insert");
    assert_eq!(row.get::<_, i64>(0), 4);
    let row = conn
        .query_one(
            "read",
            "SELECT flag, data, doc::text, small, ratio, note FROM extra WHERE id = 1",
            &[],
        )
        .await
        .expect("read");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Vec<u8>>(1), vec![0, 255]);
    assert_eq!(row.get::<_, String>(2), r#"{"k": [1, 2]}"#);
    assert_eq!(row.get::<_, i32>(3), 12);
    assert_eq!(row.get::<_, f32>(4), 0.5);
    assert_eq!(row.get::<_, String>(5), "none");
}

#[tokio::test]
async fn a_store_that_holds_rows_is_refused_and_left_as_it_was() {
    let Some((db, pg)) = target().await else {
        return;
    };
    let from = source(db.path(), "");
    pg.enqueue(vec![message("agent:x"), message("agent:y")])
        .await
        .expect("enqueue");
    let err = copy_into(&pg, &from)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("bus_messages holds 2 rows"), "{err}");
    assert_eq!(count(&pg, "bus_messages").await, 2);
    assert_eq!(count(&pg, "kv").await, 0);
}

#[tokio::test]
async fn a_value_that_does_not_fit_names_its_row_and_nothing_is_copied() {
    let Some((db, pg)) = target().await else {
        return;
    };
    let from = source(
        db.path(),
        "INSERT INTO extra (id, flag, small) VALUES (9, 1, 'many')",
    );
    let err = format!("{:#}", copy_into(&pg, &from).await.expect_err("refused"));
    assert!(
        err.contains("table extra, row id=9, column small: text 'many': PostgreSQL wants int4"),
        "{err}"
    );
    // Tables copied before extra were rolled back with it.
    for table in ["bus_messages", "kv", "tasks", "extra"] {
        assert_eq!(count(&pg, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn a_table_or_column_postgres_lacks_is_named_before_anything_is_written() {
    let Some((db, pg)) = target().await else {
        return;
    };
    let from = source(
        db.path(),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         ALTER TABLE kv ADD COLUMN owner TEXT;",
    );
    let err = copy_into(&pg, &from)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("column kv.owner exists in SQLite but not in PostgreSQL"),
        "{err}"
    );
    assert!(
        err.contains("table notes exists in SQLite but not in PostgreSQL"),
        "{err}"
    );
    assert_eq!(count(&pg, "bus_messages").await, 0);
}
