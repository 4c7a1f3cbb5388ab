//! Several processes on one store, as several nodes (or a node and CLI commands): two
//! buses on two opens of one database. A message sent through one reaches a consumer
//! waiting on the other, and (on PostgreSQL, whose `NOTIFY` connects them) published
//! messages reach the other's subscribers.

use std::time::Duration;

use super::*;
use crate::store::testing::{Backend, TestDb};

/// Generous: these tests wait on real PostgreSQL notifications.
const PATIENCE: Duration = Duration::from_secs(60);

async fn two_nodes(backend: Backend) -> (TestDb, Bus, Bus) {
    let (db, store) = TestDb::open_on(backend).await;
    let a = Bus::new(store.bus(), BusConfig::default()).expect("bus a");
    let b = Bus::new(db.open_again().await.bus(), BusConfig::default()).expect("bus b");
    (db, a, b)
}

/// Polls `done` until it holds (a real connection is involved, so no paused clock).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

on_each_backend! {
    /// The consumer waits on one store, the sender uses another (as a CLI `send` or another
    /// node would): the consumer is woken by its bus's shared check (SQLite) or by a
    /// notification (PostgreSQL), not by polling of its own.
    #[tokio::test]
    async fn a_message_sent_through_another_store_reaches_a_waiting_consumer() {
        let (_db, a, b) = two_nodes(crate::store::testing::backend()).await;
        let consumer = tokio::spawn({
            let b = b.clone();
            async move { b.recv("agent:remote", Some(PATIENCE)).await }
        });
        send(&a, "agent:remote", payload(7)).await;
        let d = consumer
            .await
            .expect("consumer task")
            .expect("recv")
            .expect("delivered on the other bus");
        assert_eq!(n(&d), 7);
        b.ack(&d).await.expect("ack");
    }
}

/// On PostgreSQL the wake-up comes from `LISTEN/NOTIFY`: with the fallback check an hour
/// away, the consumer on node B still gets what node A sent, and B made no check after
/// the one that follows connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_notification_wakes_the_consumer_on_the_other_node() {
    if crate::store::testing::postgres_url().is_none() {
        return;
    }
    let (_db, a, b) = two_nodes(Backend::Postgres).await;
    b.set_fallback(Duration::from_secs(3600));
    let consumer = tokio::spawn({
        let b = b.clone();
        async move { b.recv("agent:far", Some(PATIENCE)).await }
    });
    // Listening, and past the check made on connecting, before anything is sent.
    until("node B listens", || b.watch_counts() == (1, 1)).await;
    send(&a, "agent:far", payload(1)).await;
    let d = consumer
        .await
        .expect("consumer task")
        .expect("recv")
        .expect("delivered on node B");
    assert_eq!(n(&d), 1);
    assert_eq!(b.watch_counts(), (1, 1), "woken by the notification alone");
}

/// The listening connection dropped (a restarted server, a network blip): node B listens
/// again, and what was sent meanwhile is delivered by the check after reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_dropped_listen_connection_is_reopened() {
    if crate::store::testing::postgres_url().is_none() {
        return;
    }
    let (db, a, b) = two_nodes(Backend::Postgres).await;
    b.set_fallback(Duration::from_secs(3600));
    let consumer = tokio::spawn({
        let b = b.clone();
        async move { b.recv("agent:blip", Some(PATIENCE)).await }
    });
    until("node B listens", || b.watch_counts().1 == 1).await;
    let (url, options) = db.pg_options().expect("PostgreSQL");
    let schema = options.schema.clone().expect("a test schema");
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query LIKE $1",
            &[&format!("LISTEN \"dreamos_bus_{schema}\"%")],
        )
        .await
        .expect("terminate the listener");
    assert_eq!(killed.len(), 1, "one listening connection for node B");
    send(&a, "agent:blip", payload(2)).await;
    let d = consumer
        .await
        .expect("consumer task")
        .expect("recv")
        .expect("delivered after reconnecting");
    assert_eq!(n(&d), 2);
    assert!(b.watch_counts().1 >= 2, "listened again");
}

/// Two nodes on PostgreSQL, both subscribed to `pattern` and listening: nodes A and B,
/// B's subscription (far) and A's (near). `None` without PostgreSQL.
async fn subscribed_on_two_nodes(
    pattern: &str,
) -> Option<(TestDb, Bus, Bus, Subscription, Subscription)> {
    crate::store::testing::postgres_url()?;
    let (db, a, b) = two_nodes(Backend::Postgres).await;
    let far = b.subscribe(pattern).expect("subscribe on B");
    let near = a.subscribe(pattern).expect("subscribe on A");
    until("node B listens", || b.watch_counts().1 == 1).await;
    until("node A listens", || a.watch_counts().1 == 1).await;
    Some((db, a, b, far, near))
}

/// Published messages cross nodes on PostgreSQL: task and agent events published on one
/// node reach subscribers on every node; the publisher's own node gets each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_published_messages_reach_subscribers_on_other_nodes() {
    let Some((_db, a, _b, mut far, mut near)) = subscribed_on_two_nodes("tasks.*").await else {
        return;
    };
    a.publish("tasks", "tasks.events", json!({"event": "done", "id": 3}))
        .expect("publish");
    let got = tokio::time::timeout(PATIENCE, far.recv())
        .await
        .expect("within the patience")
        .expect("a message");
    assert_eq!(
        (got.topic.as_str(), got.from.as_str(), &got.payload),
        ("tasks.events", "tasks", &json!({"event": "done", "id": 3}))
    );
    let own = near.try_recv().expect("delivered locally at once");
    assert_eq!(own.payload, got.payload);
    // A's own notification comes back to A and is skipped: one copy only. (Both echoes
    // are usually back by the time B has the second message.)
    a.publish("tasks", "tasks.events", json!({"event": "second"}))
        .expect("publish");
    tokio::time::timeout(PATIENCE, far.recv())
        .await
        .expect("within the patience")
        .expect("the second");
    let second = near.try_recv().expect("the second, locally");
    assert_eq!(second.payload, json!({"event": "second"}));
    assert!(
        near.try_recv().is_none(),
        "no copy came back from the database"
    );
}

/// A published message larger than one notification crosses nodes in pieces and arrives
/// whole; between its pieces other messages still arrive, and the publisher's node gets
/// its own message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_large_published_message_reaches_the_other_node_whole() {
    let Some((_db, a, _b, mut far, mut near)) = subscribed_on_two_nodes("big.*").await else {
        return;
    };
    // 100,000 two-byte characters: about 25 notifications' worth.
    let text = "é".repeat(100_000);
    a.publish("big", "big.report", json!({"text": text}))
        .expect("publish");
    a.publish("big", "big.small", json!({"n": 1}))
        .expect("publish");
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(PATIENCE, far.recv())
            .await
            .expect("within the patience")
            .expect("a message");
        got.push((m.topic.clone(), m.payload.clone()));
    }
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got[0], ("big.report".to_string(), json!({"text": text})));
    assert_eq!(got[1], ("big.small".to_string(), json!({"n": 1})));
    // Own copies: each once, at publish time; what comes back from the database is
    // skipped (wait for a third message to be sure the echoes were read).
    assert_eq!(
        near.try_recv().map(|m| m.topic.clone()),
        Some("big.report".into())
    );
    assert_eq!(
        near.try_recv().map(|m| m.topic.clone()),
        Some("big.small".into())
    );
    a.publish("big", "big.last", json!({})).expect("publish");
    let last = tokio::time::timeout(PATIENCE, far.recv())
        .await
        .expect("within the patience")
        .expect("the last");
    assert_eq!(last.topic, "big.last");
    assert_eq!(
        near.try_recv().map(|m| m.topic.clone()),
        Some("big.last".into())
    );
    assert!(
        near.try_recv().is_none(),
        "no copy came back from the database"
    );
}
