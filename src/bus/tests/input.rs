//! Bad input is refused with a clear error, and nothing half-written is stored.

use std::time::Duration;

use super::*;

async fn nothing_stored(bus: &Bus) {
    assert_eq!(bus.stats().await.expect("stats").total, 0);
}

on_each_backend! {
#[tokio::test]
async fn bad_channels_are_refused_before_storing() {
    let (_dir, bus) = bus().await;
    for bad in ["", "agent:", "agent:two words", ".x", "a::b"] {
        let err = bus
            .send("test", bad, &payload(1), SendOptions::default())
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), "invalid_channel", "{bad}: {err}");
        assert!(err.is_misuse());
        assert!(
            err.to_string()
                .starts_with(&format!("invalid channel '{bad}'")),
            "{err}"
        );
    }
    let err = bus
        .recv(BROADCAST, Some(Duration::ZERO))
        .await
        .expect_err("broadcast recv");
    assert!(err.to_string().contains("send-only"), "{err}");
    assert_eq!(
        bus.publish("t", "", json!(1)).expect_err("topic").kind(),
        "invalid_channel"
    );
    assert_eq!(
        bus.subscribe("a b").expect_err("pattern").kind(),
        "invalid_pattern"
    );
    nothing_stored(&bus).await;
}

#[tokio::test]
async fn oversized_payloads_are_refused_with_both_sizes() {
    let config = BusConfig {
        max_payload: 100,
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    let big = json!({ "text": "x".repeat(200) });
    let err = bus
        .send("test", "captain", &big, SendOptions::default())
        .await
        .expect_err("too large");
    assert_eq!(err.kind(), "payload_too_large");
    assert!(
        err.to_string()
            .contains("over the limit of 100 bytes (bus.max_payload)"),
        "{err}"
    );
    let err = bus.publish("test", "t", big).expect_err("too large");
    assert_eq!(err.kind(), "payload_too_large");
    // Headers count towards the limit too.
    let opts = SendOptions {
        headers: [("h".to_string(), "y".repeat(120))].into(),
        ..SendOptions::default()
    };
    let err = bus
        .send("test", "captain", &payload(1), opts)
        .await
        .expect_err("headers");
    assert_eq!(err.kind(), "payload_too_large");
    nothing_stored(&bus).await;
}

#[tokio::test]
async fn bad_options_name_the_option() {
    let (_dir, bus) = bus().await;
    let cases = [
        (
            SendOptions {
                max_attempts: Some(0),
                ..SendOptions::default()
            },
            "max_attempts",
        ),
        (
            SendOptions {
                ttl: Some(Duration::ZERO),
                ..SendOptions::default()
            },
            "ttl",
        ),
        (
            SendOptions {
                reply_to: Some("broadcast".into()),
                ..SendOptions::default()
            },
            "reply_to",
        ),
        (
            SendOptions {
                correlation_id: Some(String::new()),
                ..SendOptions::default()
            },
            "correlation_id",
        ),
    ];
    for (opts, name) in cases {
        let err = bus
            .send("test", "captain", &payload(1), opts)
            .await
            .expect_err(name);
        assert!(
            err.to_string()
                .starts_with(&format!("invalid option '{name}'")),
            "{err}"
        );
    }
    let err = bus
        .send("", "captain", &payload(1), SendOptions::default())
        .await
        .expect_err("sender");
    assert!(err.to_string().contains("'from'"), "{err}");
    nothing_stored(&bus).await;
}

#[tokio::test]
async fn a_broadcast_with_no_known_agents_says_why() {
    let (_dir, bus) = bus().await;
    let err = bus
        .send("cli", BROADCAST, &payload(1), SendOptions::default())
        .await
        .expect_err("no recipients");
    assert_eq!(err.kind(), "no_recipients");
    nothing_stored(&bus).await;
}

}
#[test]
fn an_invalid_config_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = open_sqlite(&dir.path().join("b.db")).await.expect("open");
        let config = BusConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(1),
            ..BusConfig::default()
        };
        let err = Bus::new(store, config).expect_err("invalid");
        assert!(err.to_string().contains("bus.backoff_base"), "{err}");
    });
}
