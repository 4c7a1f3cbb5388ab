//! History queries, export shape, retention.

use std::time::Duration;

use super::*;

on_each_backend! {
#[tokio::test(start_paused = true)]
async fn history_filters_by_channel_agent_time_and_limit() {
    let (_dir, bus) = bus().await;
    let t0 = bus.now();
    bus.send(
        "agent:scout",
        "captain",
        &payload(1),
        SendOptions::default(),
    )
    .await
    .expect("send");
    tokio::time::advance(Duration::from_secs(10)).await;
    bus.send("cli", "agent:scout", &payload(2), SendOptions::default())
        .await
        .expect("send");
    tokio::time::advance(Duration::from_secs(10)).await;
    bus.send("cli", "agent:other", &payload(3), SendOptions::default())
        .await
        .expect("send");

    let ns = |records: Vec<HistoryRecord>| -> Vec<i64> {
        records
            .iter()
            .map(|r| r.payload["n"].as_i64().unwrap_or(-1))
            .collect()
    };
    let q = |f: fn(&mut HistoryQuery)| {
        let mut q = HistoryQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        ns(bus.history(HistoryQuery::default()).await.expect("all")),
        [1, 2, 3]
    );
    let by_channel = HistoryQuery {
        channel: Some("captain".into()),
        ..HistoryQuery::default()
    };
    assert_eq!(ns(bus.history(by_channel).await.expect("channel")), [1]);
    let by_agent = HistoryQuery {
        agent: Some("scout".into()),
        ..HistoryQuery::default()
    };
    assert_eq!(ns(bus.history(by_agent).await.expect("agent")), [1, 2]);
    let by_inbox = HistoryQuery {
        agent: Some("agent:scout".into()),
        ..HistoryQuery::default()
    };
    assert_eq!(ns(bus.history(by_inbox).await.expect("agent")), [1, 2]);
    let window = HistoryQuery {
        since: Some(t0 + 5_000),
        until: Some(t0 + 15_000),
        ..HistoryQuery::default()
    };
    assert_eq!(ns(bus.history(window).await.expect("window")), [2]);
    // The newest `limit`, oldest first.
    let newest = q(|q| q.limit = 2);
    assert_eq!(ns(bus.history(newest).await.expect("limit")), [2, 3]);
}

#[tokio::test]
async fn export_writes_one_documented_shape_atomically() {
    let (dir, bus) = bus().await;
    send(&bus, "agent:a", json!({"hello": "world"})).await;
    send(&bus, "agent:a", payload(2)).await;
    let d = recv(&bus, "agent:a").await;
    bus.ack(&d).await.expect("ack");
    let d = recv(&bus, "agent:a").await;
    bus.nack(&d, "nope", false).await.expect("nack");

    let out = dir.path().join("exports/history.json");
    std::fs::create_dir_all(dir.path().join("exports")).expect("mkdir");
    std::fs::write(&out, "old contents").expect("old file");
    let report = bus
        .export(HistoryQuery::default(), Some(&out))
        .await
        .expect("export");
    assert_eq!((report.records, report.path.as_path()), (2, out.as_path()));

    let text = std::fs::read_to_string(&out).expect("read");
    let records: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(&text).expect("json array");
    let keys: Vec<&str> = records[0].keys().map(String::as_str).collect();
    let mut expected = vec![
        "id",
        "from",
        "to",
        "channel",
        "payload",
        "priority",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "acked_at",
        "error",
        "transitions",
    ];
    expected.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, expected);
    let (first, second) = (&records[0], &records[1]);
    assert_eq!(first["status"], "acked");
    assert_eq!(first["payload"], json!({"hello": "world"}));
    assert_eq!(first["priority"], "normal");
    assert!(first["acked_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(second["status"], "failed");
    assert_eq!(second["error"], "nope");
    assert!(second["acked_at"].is_null());
    // Nothing but the export is left in the directory (the temp file was renamed).
    let names: Vec<_> = std::fs::read_dir(dir.path().join("exports"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["history.json"]);
}

#[tokio::test]
async fn export_defaults_to_the_configured_path_and_handles_many_pages() {
    let dir = tempfile::tempdir().expect("dir");
    let config = BusConfig {
        export_path: dir.path().join("data/message_history.json"),
        ..BusConfig::default()
    };
    let (_db, bus) = bus_with(config).await;
    for i in 0..2500 {
        send(&bus, "jobs.x", payload(i)).await;
    }
    let report = bus
        .export(HistoryQuery::default(), None)
        .await
        .expect("export");
    assert_eq!(report.records, 2500);
    let text = std::fs::read_to_string(dir.path().join("data/message_history.json")).expect("read");
    let records: Vec<Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(records.len(), 2500);
    assert_eq!(records[2499]["payload"]["n"], 2499);
}

#[tokio::test(start_paused = true)]
async fn retention_prunes_by_count_and_age_but_never_pending_or_dead() {
    let config = BusConfig {
        retention_count: 2,
        retention_age: Duration::from_secs(3600),
        ..BusConfig::default()
    };
    let (_dir, bus) = bus_with(config).await;
    for i in 0..4 {
        send(&bus, "agent:r", payload(i)).await;
        let d = recv(&bus, "agent:r").await;
        bus.ack(&d).await.expect("ack");
    }
    send(&bus, "agent:r", payload(10)).await;
    let d = recv(&bus, "agent:r").await;
    bus.nack(&d, "dead letter", false).await.expect("fail");
    send(&bus, "agent:r", payload(11)).await; // stays queued

    let report = bus.prune().await.expect("prune");
    assert_eq!(report.deleted, 2, "count: the two oldest acked go");
    let left: Vec<i64> = bus
        .history(HistoryQuery::default())
        .await
        .expect("history")
        .iter()
        .map(|r| r.payload["n"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(left, [2, 3, 10, 11]);

    tokio::time::advance(Duration::from_secs(7200)).await;
    let report = bus.prune().await.expect("prune");
    assert_eq!(report.deleted, 2, "age: the remaining acked go");
    let stats = bus.stats().await.expect("stats");
    assert_eq!((stats.queued, stats.dead, stats.acked), (1, 1, 0));
    assert_eq!(
        n(&recv(&bus, "agent:r").await),
        11,
        "the old queued message is still there"
    );
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_undelivered_messages() {
    let (_dir, bus) = bus().await;
    let opts = SendOptions {
        ttl: Some(Duration::from_secs(5)),
        ..SendOptions::default()
    };
    let r1 = bus
        .send("test", "agent:t", &payload(1), opts.clone())
        .await
        .expect("send");
    let r2 = bus
        .send("test", "agent:t2", &payload(2), opts)
        .await
        .expect("send");
    tokio::time::advance(Duration::from_secs(6)).await;
    // Expired at claim time...
    assert!(bus
        .recv("agent:t", Some(Duration::ZERO))
        .await
        .expect("recv")
        .is_none());
    assert_eq!(
        r1.wait(Duration::from_secs(1)).await.expect("wait"),
        Outcome::Expired
    );
    // ...or by retention when nobody claims.
    assert_eq!(bus.prune().await.expect("prune").expired, 1);
    assert_eq!(
        r2.wait(Duration::from_secs(1)).await.expect("wait"),
        Outcome::Expired
    );
}

#[tokio::test]
async fn stats_show_depth_in_flight_and_totals() {
    let (_dir, bus) = bus().await;
    for i in 0..3 {
        send(&bus, "agent:a", payload(i)).await;
    }
    send(&bus, "captain", payload(9)).await;
    let held = recv(&bus, "agent:a").await;
    let stats = bus.stats().await.expect("stats");
    assert_eq!(
        stats.channels,
        [
            ChannelDepth {
                channel: "agent:a".into(),
                queued: 2,
                in_flight: 1
            },
            ChannelDepth {
                channel: "captain".into(),
                queued: 1,
                in_flight: 0
            },
        ]
    );
    assert_eq!((stats.queued, stats.in_flight, stats.total), (3, 1, 4));
    bus.ack(&held).await.expect("ack");
}
}
