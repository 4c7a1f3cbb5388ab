//! Backoff, visibility timeout, dead letters — all on the paused clock.

use std::time::Duration;

use super::*;

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn nacked_messages_come_back_on_an_exponential_schedule() {
    let config = BusConfig {
        max_attempts: 4,
        backoff_base: Duration::from_secs(2),
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    send(&bus, "agent:flaky", payload(1)).await;
    let mut d = recv(&bus, "agent:flaky").await;
    // Full delays 2s, 4s, 8s; with jitter each lands between half and all of it.
    for (attempt, full_ms) in [(1, 2000), (2, 4000), (3, 8000)] {
        assert_eq!(d.attempt, attempt);
        let status = bus.nack(&d, "try again", true).await.expect("nack");
        assert_eq!(status, MessageStatus::Queued);
        let nacked_at = bus.now();
        d = bus
            .recv("agent:flaky", None)
            .await
            .expect("recv")
            .expect("redelivered");
        let waited = bus.now() - nacked_at;
        assert!(
            (full_ms / 2..=full_ms).contains(&waited),
            "attempt {attempt}: redelivered after {waited}ms"
        );
    }
    assert_eq!(d.attempt, 4);
    // Out of attempts: the last nack makes it dead, with its error.
    assert_eq!(
        bus.nack(&d, "still broken", true).await.expect("nack"),
        MessageStatus::Dead
    );
    let dead = bus.dead_letters(10).await.expect("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error.as_deref(), Some("still broken"));
    assert_eq!(dead[0].attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn a_per_message_backoff_overrides_the_default() {
    let (_dir, bus) = bus().await;
    let opts = SendOptions {
        backoff: Some(Duration::from_secs(60)),
        ..SendOptions::default()
    };
    bus.send("test", "captain", &payload(1), opts)
        .await
        .expect("send");
    let d = recv(&bus, "captain").await;
    bus.nack(&d, "later", true).await.expect("nack");
    let t = bus.now();
    let again = bus
        .recv("captain", None)
        .await
        .expect("recv")
        .expect("again");
    assert!((30_000..=60_000).contains(&(bus.now() - t)));
    assert_eq!(again.attempt, 2);
    assert_eq!(again.message.backoff, Some(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_message_returns_after_the_visibility_timeout() {
    let config = BusConfig {
        visibility_timeout: Duration::from_secs(30),
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    send(&bus, "agent:crashy", payload(9)).await;
    let first = recv(&bus, "agent:crashy").await;
    let t = bus.now();
    // The first consumer "dies" holding it; the next one gets it after the deadline.
    let second = bus
        .recv("agent:crashy", None)
        .await
        .expect("recv")
        .expect("redelivered");
    assert_eq!(bus.now() - t, 30_000);
    assert_eq!((n(&second), second.attempt), (9, 2));
    // The dead consumer's late ack is refused and changes nothing.
    let err = bus.ack(&first).await.expect_err("stale");
    assert_eq!(err.kind(), "stale_delivery");
    bus.ack(&second).await.expect("ack");
    let h = bus.history(HistoryQuery::default()).await.expect("history");
    let steps: Vec<_> = h[0]
        .transitions
        .iter()
        .map(|t| (t.status, t.attempt))
        .collect();
    assert_eq!(
        steps,
        [
            ("queued", 0),
            ("delivered", 1),
            ("timeout", 1),
            ("delivered", 2),
            ("acked", 2)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn extend_keeps_a_slow_consumer_in_possession() {
    let config = BusConfig {
        visibility_timeout: Duration::from_secs(10),
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    send(&bus, "agent:slow", payload(1)).await;
    let d = recv(&bus, "agent:slow").await;
    tokio::time::advance(Duration::from_secs(8)).await;
    bus.extend(&d, Duration::from_secs(10))
        .await
        .expect("extend");
    tokio::time::advance(Duration::from_secs(8)).await;
    let other = bus
        .recv("agent:slow", Some(Duration::ZERO))
        .await
        .expect("recv");
    assert!(other.is_none(), "still held after the original deadline");
    bus.ack(&d).await.expect("ack within the extended deadline");
}

#[tokio::test(start_paused = true)]
async fn timeouts_use_up_attempts_and_end_dead() {
    let config = BusConfig {
        visibility_timeout: Duration::from_secs(5),
        max_attempts: 2,
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    let receipt = send(&bus, "agent:hang", payload(1)).await;
    recv(&bus, "agent:hang").await;
    let second = bus
        .recv("agent:hang", None)
        .await
        .expect("recv")
        .expect("attempt 2");
    assert_eq!(second.attempt, 2);
    // Attempt 2 also times out: nothing more is delivered, the message is dead.
    let none = bus
        .recv("agent:hang", Some(Duration::from_secs(20)))
        .await
        .expect("recv");
    assert!(none.is_none());
    assert_eq!(
        receipt.wait(Duration::from_secs(1)).await.expect("wait"),
        Outcome::Dead
    );
    let dead = bus.dead_letters(10).await.expect("dlq");
    assert!(dead[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("visibility timeout"));
}

#[tokio::test(start_paused = true)]
async fn a_nack_without_retry_fails_at_once_and_the_receipt_says_so() {
    let (_dir, bus) = bus().await;
    let receipt = send(&bus, "captain", payload(1)).await;
    let d = recv(&bus, "captain").await;
    assert_eq!(
        bus.nack(&d, "bad input", false).await.expect("nack"),
        MessageStatus::Failed
    );
    assert_eq!(
        receipt.wait(Duration::from_secs(1)).await.expect("wait"),
        Outcome::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_can_be_retried_one_or_all_and_purged() {
    let config = BusConfig {
        max_attempts: 1,
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(send(&bus, "agent:w", payload(i)).await);
        let d = recv(&bus, "agent:w").await;
        assert_eq!(
            bus.nack(&d, "boom", true).await.expect("nack"),
            MessageStatus::Dead
        );
    }
    assert_eq!(bus.stats().await.expect("stats").dead, 3);

    bus.retry_dead(receipts[0].id()).await.expect("retry one");
    let d = recv(&bus, "agent:w").await;
    assert_eq!((n(&d), d.attempt), (0, 1));
    bus.ack(&d).await.expect("ack");
    assert_eq!(
        receipts[0]
            .wait(Duration::from_secs(1))
            .await
            .expect("wait"),
        Outcome::Acked
    );
    let h = bus.history(HistoryQuery::default()).await.expect("history");
    let steps: Vec<_> = h[0].transitions.iter().map(|t| t.status).collect();
    assert_eq!(
        steps,
        [
            "queued",
            "delivered",
            "dead",
            "requeued",
            "delivered",
            "acked"
        ]
    );

    let err = bus
        .retry_dead(receipts[0].id())
        .await
        .expect_err("not dead");
    assert!(
        err.to_string()
            .contains("not in the dead-letter queue (it is acked)"),
        "{err}"
    );
    assert_eq!(
        bus.retry_dead(9999).await.expect_err("missing").kind(),
        "not_found"
    );

    assert_eq!(bus.retry_all_dead().await.expect("retry all"), 2);
    for _ in 0..2 {
        let d = recv(&bus, "agent:w").await;
        bus.nack(&d, "boom again", false).await.expect("fail");
    }
    assert_eq!(bus.purge_dead().await.expect("purge"), 2);
    let stats = bus.stats().await.expect("stats");
    assert_eq!((stats.dead, stats.total), (0, 1));
}
}
