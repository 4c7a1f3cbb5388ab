//! Bus behaviour through its public API, on a real store: each test in
//! `on_each_backend!` runs on SQLite (a file in a temp directory) and on PostgreSQL (a
//! fresh schema); see `store::testing`. Time-dependent tests run on tokio's paused clock:
//! they never sleep for real.

mod crash;
mod delivery;
mod history;
mod input;
mod nodes;
mod pubsub;
mod retry;

use serde_json::{json, Value};

use super::*;
use crate::store::open_sqlite;
use crate::store::testing::{on_each_backend, TestDb};

/// A bus on a fresh database of the running test's backend; keep the `TestDb` alive for
/// the test's duration.
async fn bus_with(config: BusConfig) -> (TestDb, Bus) {
    let (db, store) = TestDb::open().await;
    let bus = Bus::new(store.bus(), config).expect("bus");
    (db, bus)
}

async fn bus() -> (TestDb, Bus) {
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
