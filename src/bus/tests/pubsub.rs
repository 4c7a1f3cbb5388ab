//! Publish/subscribe fan-out and request/reply.

use std::time::Duration;

use super::*;

on_each_backend! {
#[tokio::test]
async fn publish_fans_out_to_every_matching_pattern() {
    let (_dir, bus) = bus().await;
    let mut tasks = bus.subscribe("tasks.*").expect("sub");
    let mut agents = bus.subscribe("agent:*").expect("sub");
    let mut all = bus.subscribe("*").expect("sub");
    let mut exact = bus.subscribe("tasks.events").expect("sub");

    assert_eq!(
        bus.publish("t", "tasks.events", json!({"id": 1}))
            .expect("publish"),
        3
    );
    assert_eq!(
        bus.publish("t", "agent:scout", json!("started"))
            .expect("publish"),
        2
    );
    assert_eq!(
        bus.publish("t", "nobody.listens", json!(null))
            .expect("publish"),
        1
    );

    let got = tasks.recv().await.expect("message");
    assert_eq!(
        (got.topic.as_str(), &got.payload),
        ("tasks.events", &json!({"id": 1}))
    );
    assert_eq!(exact.recv().await.expect("message").topic, "tasks.events");
    assert_eq!(
        agents.recv().await.expect("message").payload,
        json!("started")
    );
    let topics: Vec<String> = (0..3)
        .filter_map(|_| all.try_recv())
        .map(|m| m.topic.clone())
        .collect();
    assert_eq!(topics, ["tasks.events", "agent:scout", "nobody.listens"]);
    assert!(tasks.try_recv().is_none());
}

#[tokio::test]
async fn cancel_and_drop_unsubscribe() {
    let (_dir, bus) = bus().await;
    let mut a = bus.subscribe("x.*").expect("sub");
    let b = bus.subscribe("x.*").expect("sub");
    assert_eq!(bus.subscriber_count(), 2);
    a.cancel();
    drop(b);
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish("t", "x.y", json!(1)).expect("publish"), 0);
    assert!(a.recv().await.is_none(), "a cancelled subscription ends");
}

#[tokio::test]
async fn a_slow_subscriber_loses_the_overflow_not_the_publisher_its_speed() {
    let config = BusConfig {
        subscriber_buffer: 2,
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    let mut slow = bus.subscribe("t").expect("sub");
    for i in 0..5 {
        bus.publish("p", "t", json!(i)).expect("publish");
    }
    assert_eq!(slow.lagged(), 3);
    assert_eq!(slow.recv().await.expect("first").payload, json!(0));
    assert_eq!(slow.recv().await.expect("second").payload, json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_gets_the_reply_with_the_same_correlation_id() {
    let (_dir, bus) = bus().await;
    let responder = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let d = recv(&bus, "agent:echo").await;
            let doubled = d.message.payload["n"].as_i64().unwrap_or(0) * 2;
            bus.reply("agent:echo", &d.message, &json!({ "n": doubled }))
                .await
                .expect("reply");
            bus.ack(&d).await.expect("ack");
            d.message.correlation_id.clone()
        })
    };
    let reply = bus
        .request(
            "cli",
            "agent:echo",
            &payload(21),
            Duration::from_secs(5),
            SendOptions::default(),
        )
        .await
        .expect("request");
    assert_eq!(reply.payload, payload(42));
    assert_eq!(reply.from, "agent:echo");
    let asked_with = responder.await.expect("join");
    assert!(asked_with.is_some());
    assert_eq!(reply.correlation_id, asked_with);
}

#[tokio::test]
async fn a_request_nobody_answers_times_out_and_replying_to_a_plain_message_is_refused() {
    let (_dir, bus) = bus().await;
    let err = bus
        .request(
            "cli",
            "agent:nobody",
            &payload(1),
            Duration::from_millis(100),
            SendOptions::default(),
        )
        .await
        .expect_err("timeout");
    assert_eq!(err.kind(), "timeout");
    assert!(err.to_string().contains("a reply"), "{err}");

    send(&bus, "captain", payload(1)).await;
    let d = recv(&bus, "captain").await;
    let err = bus
        .reply("captain", &d.message, &payload(2))
        .await
        .expect_err("not a request");
    assert_eq!(err.kind(), "not_a_request");
}
}
