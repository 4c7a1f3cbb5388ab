//! What is particular to PostgreSQL: migration at open under a lock, errors that name the
//! database without its password, notifications across stores, and claimers on many
//! connections at once. The behaviour shared with SQLite is tested on both backends by the
//! bus, task and kv tests (`store::testing::on_each_backend!`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::schema::MIGRATIONS;
use super::*;
use crate::store::testing::{postgres_url, Backend, TestDb};
use crate::store::{BusStore, DeliveryRef, NewMessage, Priority, TaskStore};
use crate::tasks::{ClaimQuery, NewTask};

/// A fresh PostgreSQL database, or `None` when PostgreSQL tests are skipped.
async fn pg() -> Option<(TestDb, Arc<PgStore>)> {
    postgres_url()?;
    let (db, store) = TestDb::open_on(Backend::Postgres).await;
    let pg = store.pg().expect("a PostgreSQL store");
    Some((db, pg))
}

#[test]
fn urls_are_shown_without_their_password() {
    assert_eq!(
        mask_url("postgres://app:s3cret@db.internal:5432/swarm?sslmode=disable"),
        "postgres://app:***@db.internal:5432/swarm?sslmode=disable"
    );
    assert_eq!(
        mask_url("postgresql://app@db/swarm"),
        "postgresql://app@db/swarm"
    );
    assert_eq!(
        mask_url("host=db user=app password=s3cret dbname=swarm"),
        "host=db user=app password=*** dbname=swarm"
    );
    assert_eq!(
        mask_url("postgres://app@db/swarm?password=s3cret&sslmode=disable"),
        "postgres://app@db/swarm?password=***&sslmode=disable"
    );
}

#[tokio::test]
async fn a_failed_connection_names_the_database_but_not_the_password() {
    // Port 1 on localhost: nothing listens there, so the connection is refused at once.
    let err = PgStore::open("postgres://app:s3cret@127.0.0.1:1/swarm?connect_timeout=5")
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "connect failed in PostgreSQL database postgres://app:***@127.0.0.1:1/swarm"
        ),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("refused"), "the cause is shown: {text}");
}

#[tokio::test]
async fn a_malformed_url_is_refused_with_the_url() {
    let err = PgStore::open("postgres://app@db:notaport/swarm")
        .await
        .expect_err("bad port");
    let text = err.to_string();
    assert!(text.contains("parse the connection URL"), "{text}");
    assert!(text.contains("postgres://app@db:notaport/swarm"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_together_migrate_once() {
    let Some((db, store)) = pg().await else {
        return;
    };
    let last = MIGRATIONS.last().map_or(0, |m| m.version);
    assert_eq!(store.schema_version().await.expect("version"), last);
    // Three more nodes start at once: each waits for the lock, finds nothing to apply.
    let (a, b, c) = tokio::join!(db.open_again(), db.open_again(), db.open_again());
    for other in [a, b, c] {
        let other = other.pg().expect("PostgreSQL");
        assert_eq!(other.schema_version().await.expect("version"), last);
    }
    let mut conn = store.pool().get().await.expect("connection");
    let applied = conn
        .query_one("count", "SELECT COUNT(*) FROM schema_version", &[])
        .await
        .expect("count");
    assert_eq!(applied.get::<_, i64>(0), MIGRATIONS.len() as i64);
}

/// A database migrated by a build that had 9 and 11 but not yet 7 (twins land out of
/// order) gets 7 when a build that has it opens the database.
#[tokio::test]
async fn a_migration_missing_below_the_newest_is_applied() {
    let Some((db, store)) = pg().await else {
        return;
    };
    let mut conn = store.pool().get().await.expect("connection");
    conn.batch(
        "undo migration 7",
        "DROP TABLE schedule_changes;
         DROP FUNCTION schedule_changed() CASCADE;
         DROP INDEX schedule_runs_running;
         DROP INDEX schedule_runs_once;
         ALTER TABLE schedule_runs DROP COLUMN node;
         DELETE FROM schema_version WHERE version = 7;",
    )
    .await
    .expect("undo 7");
    drop(conn);
    let again = db.open_again().await.pg().expect("PostgreSQL");
    let versions: Vec<i64> = again
        .applied_since(0)
        .await
        .expect("applied")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert!(versions.contains(&7), "{versions:?}");
    let version = crate::store::ScheduleStore::schedule_version(&*again).await;
    assert_eq!(version.expect("the change counter exists again"), 0);
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_both_versions() {
    let Some((db, store)) = pg().await else {
        return;
    };
    let mut conn = store.pool().get().await.expect("connection");
    conn.batch(
        "insert",
        "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await
    .expect("insert");
    drop(conn);
    let (url, options) = db.pg_options().expect("PostgreSQL");
    let err = PgStore::open_with(&url, options)
        .await
        .expect_err("too new");
    let text = err.to_string();
    assert!(
        text.contains("schema version 999") && text.contains("upgrade dreamos"),
        "{text}"
    );
}

fn message(channel: &str, n: usize) -> NewMessage {
    NewMessage {
        channel: channel.to_string(),
        recipient: channel.to_string(),
        sender: "test".into(),
        priority: Priority::Normal,
        payload: format!("{{\"n\":{n}}}"),
        headers: None,
        correlation_id: None,
        reply_to: None,
        max_attempts: 3,
        backoff_ms: None,
        expires_at: None,
        created_at: 1,
    }
}

#[tokio::test]
async fn a_listener_hears_what_another_node_enqueues() {
    let Some((db, store)) = pg().await else {
        return;
    };
    let mut listener = store.listen().await.expect("listen");
    let other = db.open_again().await.bus();
    other
        .enqueue(vec![message("agent:scout", 1)])
        .await
        .expect("enqueue");
    other
        .enqueue(vec![message("agent:a", 2), message("agent:b", 3)])
        .await
        .expect("enqueue batch");
    let mut heard = Vec::new();
    while heard.len() < 3 {
        let signal = tokio::time::timeout(Duration::from_secs(30), listener.next())
            .await
            .expect("a notification within 30 s")
            .expect("the listener is connected");
        match signal {
            BusSignal::Enqueued(channel) => heard.push(channel),
            other => panic!("unexpected {other:?}"),
        }
    }
    heard[1..].sort();
    assert_eq!(heard, ["agent:scout", "agent:a", "agent:b"]);
}

/// Claimers on eight connections at once, as on several nodes: every task and every
/// message is handed out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_claimers_on_many_connections_never_share_work() {
    let Some((db, _)) = pg().await else {
        return;
    };
    let (url, mut options) = db.pg_options().expect("PostgreSQL");
    options.max_connections = Some(8);
    let store = Arc::new(PgStore::open_with(&url, options).await.expect("open"));
    const TASKS: usize = 300;
    const MESSAGES: usize = 600;
    const CLAIMERS: usize = 16;
    let new_tasks = (0..TASKS)
        .map(|i| NewTask {
            key: None,
            title: format!("job {i}"),
            description: None,
            priority: Priority::Normal,
            category: None,
            tags: Vec::new(),
            payload: None,
            assignee: None,
            max_attempts: 1,
            deadline: None,
            depends_on: Vec::new(),
        })
        .collect();
    store
        .insert_tasks(new_tasks, 1)
        .await
        .expect("insert")
        .expect("accepted");
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(50) {
        let batch = chunk.iter().map(|n| message("work", *n)).collect();
        store.enqueue(batch).await.expect("enqueue");
    }
    let mut handles = Vec::new();
    for c in 0..CLAIMERS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let (mut tasks, mut messages) = (Vec::new(), Vec::new());
            loop {
                let query = ClaimQuery {
                    agent: format!("w{c}"),
                    category: None,
                    tags: Vec::new(),
                    lease_ms: 60_000,
                };
                let claimed = store.claim_task(query, 2).await.expect("claim task");
                let got = store
                    .claim("work", 3, 2, 60_000)
                    .await
                    .expect("claim messages");
                if claimed.task.is_none() && got.messages.is_empty() {
                    return (tasks, messages);
                }
                if let Some(task) = claimed.task {
                    let lease = task.lease().expect("held");
                    store
                        .complete_task(lease, None, 3)
                        .await
                        .expect("complete")
                        .expect("holder");
                    tasks.push(task.id);
                }
                let refs: Vec<DeliveryRef> = got
                    .messages
                    .iter()
                    .map(|m| DeliveryRef {
                        id: m.message.id,
                        attempt: m.attempt,
                    })
                    .collect();
                messages.extend(refs.iter().map(|r| r.id));
                store.ack(refs, 3).await.expect("ack");
            }
        }));
    }
    let (mut tasks, mut messages) = (Vec::new(), Vec::new());
    for h in handles {
        let (t, m) = h.await.expect("join");
        tasks.extend(t);
        messages.extend(m);
    }
    let unique: HashSet<_> = tasks.iter().collect();
    assert_eq!((tasks.len(), unique.len()), (TASKS, TASKS));
    let unique: HashSet<_> = messages.iter().collect();
    assert_eq!((messages.len(), unique.len()), (MESSAGES, MESSAGES));
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.acked, MESSAGES as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_together_on_a_new_schema_all_open() {
    let Some((db, _)) = pg().await else {
        return;
    };
    let (url, options) = db.pg_options().expect("PostgreSQL");
    // A schema nobody created yet, as on the first start of a new deployment's nodes.
    for round in 0..5 {
        let schema = format!("{}_new{round}", options.schema.clone().unwrap_or_default());
        let open = || {
            let options = PgOptions {
                schema: Some(schema.clone()),
                ..PgOptions::default()
            };
            PgStore::open_with(&url, options)
        };
        let opened = tokio::join!(open(), open(), open(), open());
        let drop = async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drop the schema");
        };
        let results = [opened.0, opened.1, opened.2, opened.3];
        drop.await;
        for r in results {
            r.expect("every node opens a schema created at the same moment");
        }
    }
}
