//! Bus behaviour through its public API, on a real SQLite store in a temp directory.
//! Time-dependent tests run on tokio's paused clock: they never sleep for real.

mod crash;
mod delivery;
mod history;
mod input;
mod pubsub;
mod retry;

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::store::open_sqlite;

/// A bus on a fresh database; keep the `TempDir` alive for the test's duration.
async fn bus_with(config: BusConfig) -> (tempfile::TempDir, Bus) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_sqlite(&dir.path().join("bus.db"))
        .await
        .expect("open store");
    let bus = Bus::new(store as Arc<dyn crate::store::BusStore>, config).expect("bus");
    (dir, bus)
}

async fn bus() -> (tempfile::TempDir, Bus) {
    bus_with(BusConfig::default()).await
}

async fn send(bus: &Bus, to: &str, payload: Value) -> Receipt {
    bus.send("test", to, &payload, SendOptions::default())
        .await
        .expect("send")
}

/// Receives with a short timeout and fails the test if nothing comes.
async fn recv(bus: &Bus, channel: &str) -> Delivery {
    bus.recv(channel, Some(std::time::Duration::from_secs(5)))
        .await
        .expect("recv")
        .expect("a message")
}

fn n(d: &Delivery) -> i64 {
    d.message.payload["n"].as_i64().unwrap_or(-1)
}

fn payload(n: i64) -> Value {
    json!({ "n": n })
}
