use std::collections::HashSet;
use std::time::Duration;

use super::*;

on_each_backend! {
#[tokio::test]
async fn fifo_within_a_channel() {
    let (_dir, bus) = bus().await;
    for i in 0..50 {
        send(&bus, "agent:scout", payload(i)).await;
    }
    for i in 0..50 {
        let d = recv(&bus, "agent:scout").await;
        assert_eq!(n(&d), i);
        assert_eq!(d.attempt, 1);
        bus.ack(&d).await.expect("ack");
    }
    let none = bus
        .recv("agent:scout", Some(Duration::ZERO))
        .await
        .expect("recv");
    assert!(none.is_none());
}

#[tokio::test]
async fn higher_priority_first_then_fifo() {
    let (_dir, bus) = bus().await;
    for (i, p) in [
        Priority::Low,
        Priority::Normal,
        Priority::Critical,
        Priority::High,
        Priority::Normal,
    ]
    .into_iter()
    .enumerate()
    {
        let opts = SendOptions {
            priority: p,
            ..SendOptions::default()
        };
        bus.send("test", "captain", &payload(i as i64), opts)
            .await
            .expect("send");
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        let d = recv(&bus, "captain").await;
        order.push((n(&d), d.message.priority));
        bus.ack(&d).await.expect("ack");
    }
    assert_eq!(
        order,
        [
            (2, Priority::Critical),
            (3, Priority::High),
            (1, Priority::Normal),
            (4, Priority::Normal),
            (0, Priority::Low)
        ]
    );
}

#[tokio::test]
async fn messages_carry_what_the_sender_gave() {
    let (_dir, bus) = bus().await;
    let opts = SendOptions {
        headers: [("trace".to_string(), "abc".to_string())].into(),
        correlation_id: Some("conv-1".into()),
        ..SendOptions::default()
    };
    let receipt = bus
        .send(
            "agent:a",
            "agent:b",
            &json!({"text": "hi", "list": [1, 2]}),
            opts,
        )
        .await
        .expect("send");
    let d = recv(&bus, "agent:b").await;
    let m = &d.message;
    assert_eq!(m.id, receipt.id());
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.channel.as_str()),
        ("agent:a", "agent:b", "agent:b")
    );
    assert_eq!(m.payload, json!({"text": "hi", "list": [1, 2]}));
    assert_eq!(m.headers.get("trace").map(String::as_str), Some("abc"));
    assert_eq!(m.correlation_id.as_deref(), Some("conv-1"));
    assert_eq!(m.max_attempts, 5);
}

#[tokio::test]
async fn a_waiting_consumer_is_woken_by_a_send() {
    let (_dir, bus) = bus().await;
    let consumer = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.recv("agent:late", Some(Duration::from_secs(30))).await })
    };
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    send(&bus, "agent:late", payload(7)).await;
    let got = consumer
        .await
        .expect("join")
        .expect("recv")
        .expect("message");
    assert_eq!(n(&got), 7);
    // Woken by the notification, not by the one-second re-check.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn receipt_reports_acked_once_the_consumer_acks() {
    let (_dir, bus) = bus().await;
    let receipt = send(&bus, "agent:scout", payload(1)).await;
    let consumer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let d = recv(&bus, "agent:scout").await;
            bus.ack(&d).await.expect("ack");
        })
    };
    let outcome = receipt.wait(Duration::from_secs(5)).await.expect("wait");
    assert_eq!(outcome, Outcome::Acked);
    consumer.await.expect("join");
    assert_eq!(
        receipt.status().await.expect("status"),
        [(receipt.id(), MessageStatus::Acked)]
    );
}

#[tokio::test(start_paused = true)]
async fn receipt_wait_times_out_while_nobody_consumes() {
    let (_dir, bus) = bus().await;
    let receipt = send(&bus, "agent:away", payload(1)).await;
    let err = receipt
        .wait(Duration::from_secs(3))
        .await
        .expect_err("timeout");
    assert_eq!(err.kind(), "timeout");
    assert!(err.to_string().contains("3s"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_never_share_a_message() {
    let (_dir, bus) = bus().await;
    let total = 400;
    let mut consumers = Vec::new();
    for _ in 0..4 {
        let bus = bus.clone();
        consumers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(d) = bus
                .recv("jobs.work", Some(Duration::from_millis(500)))
                .await
                .expect("recv")
            {
                seen.push(n(&d));
                bus.ack(&d).await.expect("ack");
            }
            seen
        }));
    }
    for i in 0..total {
        send(&bus, "jobs.work", payload(i)).await;
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.expect("join"));
    }
    assert_eq!(all.len(), total as usize, "every message once");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), total as usize, "no duplicates");
    let stats = bus.stats().await.expect("stats");
    assert_eq!(
        (stats.acked, stats.queued, stats.in_flight),
        (total as u64, 0, 0)
    );
}

#[tokio::test]
async fn broadcast_reaches_every_known_inbox_but_the_senders() {
    let (_dir, bus) = bus().await;
    for name in ["a", "b", "c"] {
        bus.register_agent(name).await.expect("register");
    }
    let receipt = bus
        .send("agent:a", BROADCAST, &payload(1), SendOptions::default())
        .await
        .expect("broadcast");
    assert_eq!(receipt.ids().len(), 2);
    for inbox in ["agent:b", "agent:c"] {
        let d = recv(&bus, inbox).await;
        assert_eq!(
            (d.message.to.as_str(), d.message.channel.as_str()),
            (BROADCAST, inbox)
        );
        bus.ack(&d).await.expect("ack");
    }
    assert!(bus
        .recv("agent:a", Some(Duration::ZERO))
        .await
        .expect("recv")
        .is_none());
    assert_eq!(
        receipt.wait(Duration::from_secs(5)).await.expect("wait"),
        Outcome::Acked
    );
}

#[tokio::test]
async fn an_inbox_fills_while_its_agent_is_away_and_a_reopened_bus_sees_it() {
    let (db, store) = TestDb::open().await;
    {
        let bus = Bus::new(store.bus(), BusConfig::default()).expect("bus");
        send(&bus, "agent:sleeper", payload(1)).await;
        send(&bus, "agent:sleeper", payload(2)).await;
    }
    drop(store);
    let store = db.open_again().await;
    let bus = Bus::new(store.bus(), BusConfig::default()).expect("bus");
    assert_eq!(n(&recv(&bus, "agent:sleeper").await), 1);
    assert_eq!(n(&recv(&bus, "agent:sleeper").await), 2);
}

#[tokio::test]
async fn counts_what_was_sent_acked_and_failed_for_metrics() {
    let (_dir, bus) = bus().await;
    assert_eq!(bus.counts(), BusCounts::default());
    for n in 0..3 {
        send(&bus, "jobs", json!(n)).await;
    }
    let first = recv(&bus, "jobs").await;
    bus.ack(&first).await.expect("ack");
    let second = recv(&bus, "jobs").await;
    bus.nack(&second, "never works", false).await.expect("nack");
    let counts = bus.counts();
    assert_eq!(
        (counts.sent, counts.acked, counts.failed, counts.dead),
        (3, 1, 1, 0)
    );
}

/// A consumer that keeps up gets messages fetched ahead; when it stops, releasing them
/// makes them visible at once, with no attempt counted, instead of after the visibility
/// timeout (an hour here).
#[tokio::test(start_paused = true)]
async fn released_prefetch_is_visible_at_once_without_an_attempt() {
    let (_dir, bus) = bus_with(BusConfig {
        visibility_timeout: Duration::from_secs(3600),
        ..BusConfig::default()
    })
    .await;
    for i in 0..8 {
        send(&bus, "agent:fast", payload(i)).await;
    }
    // Claims in quick succession (the paused clock does not move) double the prefetch:
    // 1, 1, 2 — so after the third receive one message waits in memory.
    for i in 0..3 {
        let d = recv(&bus, "agent:fast").await;
        assert_eq!(n(&d), i);
        bus.ack(&d).await.expect("ack");
    }
    let released = bus.release_prefetched("agent:fast").await.expect("release");
    assert!(released >= 1, "something was prefetched");
    // Another consumer (here: the store directly, as another process would) sees every
    // remaining message now, each on its first attempt.
    let claimed = bus
        .store()
        .claim("agent:fast", 100, bus.now(), 1000)
        .await
        .expect("claim");
    let got: Vec<(i64, u32)> = claimed
        .messages
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.message.payload).expect("json");
            (v["n"].as_i64().unwrap_or(-1), c.attempt)
        })
        .collect();
    assert_eq!(got, (3..8).map(|i| (i, 1)).collect::<Vec<_>>());
    assert_eq!(
        bus.release_prefetched("agent:fast").await.expect("again"),
        0,
        "nothing left to release"
    );
}
}
