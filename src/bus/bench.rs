//! The bus benchmark behind `dreamos bench bus`: durable send → handler → ack end to end,
//! and the publish path.
//!
//! Senders keep `window` sends in flight (as a pipelining client would); each message
//! carries its index, and its latency is measured from the moment its `send` started to
//! the moment its ack was committed. With `rate`, sends are paced to that many per second
//! (for latency at a given load) instead of as fast as possible.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

type AckFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BusError>> + Send>>;

use super::{Bus, BusConfig, BusError, SendOptions};
use crate::store::BusStore;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Messages to send.
    pub messages: usize,
    /// Sends per second; `None` = as fast as the bus takes them.
    pub rate: Option<u64>,
    /// Sends in flight at once.
    pub window: usize,
    /// Consumer tasks receiving from the channel.
    pub consumers: usize,
    /// Size of the string in each payload.
    pub payload_bytes: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            messages: 100_000,
            rate: None,
            window: 256,
            consumers: 4,
            payload_bytes: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub messages: u64,
    pub elapsed: Duration,
    pub msgs_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Runs the durable benchmark on a private channel of `store` and returns the numbers.
/// The messages it sends stay in that store's history; point it at a scratch database.
pub async fn run(store: Arc<dyn BusStore>, opts: BenchOptions) -> Result<BenchReport, BusError> {
    let bus = Bus::new(store, BusConfig::default())?;
    let n = opts.messages;
    let channel = format!("bench.{}", bus.inner.jitter.token());
    let started = Instant::now();
    // Nanoseconds since `started` at which each message's send began.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let filler = "x".repeat(opts.payload_bytes);

    // Each consumer handles a message, queues its ack and moves on (as the agent runtime
    // does); a collector per consumer records each latency when its ack is committed.
    let mut consumers = Vec::new();
    for _ in 0..opts.consumers.max(1) {
        let (bus, channel, done) = (bus.clone(), channel.clone(), done.clone());
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let sent_at = sent_at.clone();
        let collector = tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n / opts.consumers.max(1) + 16);
            while let Some((i, ack)) = acked_rx.recv().await {
                let ack: AckFuture = ack;
                ack.await?;
                let now = started.elapsed().as_nanos() as u64;
                let begun = sent_at
                    .get(i)
                    .map_or(now, |t: &AtomicU64| t.load(Ordering::Relaxed));
                latencies.push(now.saturating_sub(begun));
            }
            Ok::<_, BusError>(latencies)
        });
        consumers.push(collector);
        tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let Ok(Some(d)) = bus.recv(&channel, Some(Duration::from_millis(200))).await else {
                    continue;
                };
                // The "handler": read the index out of the payload.
                let i = d.message.payload["i"].as_u64().unwrap_or(0) as usize;
                let ack: AckFuture = Box::pin(bus.ack_queued(&d));
                if acked_tx.send((i, ack)).is_err() {
                    break;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    let window = opts.window.clamp(1, n.max(1));
    let mut senders = Vec::new();
    for lane in 0..window {
        let (bus, channel, sent_at, filler) = (
            bus.clone(),
            channel.clone(),
            sent_at.clone(),
            filler.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in (lane..n).step_by(window) {
                if let Some(rate) = opts.rate.filter(|r| *r > 0) {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due).await;
                }
                sent_at[i].store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let payload = serde_json::json!({ "i": i, "pad": filler });
                bus.send("bench", &channel, &payload, SendOptions::default())
                    .await?;
            }
            Ok::<_, BusError>(())
        }));
    }
    for s in senders {
        s.await.map_err(join_error)??;
    }
    let mut latencies = Vec::with_capacity(n);
    for c in consumers {
        latencies.extend(c.await.map_err(join_error)??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        let idx = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        Duration::from_nanos(latencies.get(idx).copied().unwrap_or(0))
    };
    Ok(BenchReport {
        messages: latencies.len() as u64,
        elapsed,
        msgs_per_sec: latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: pick(0.50),
        p99: pick(0.99),
        max: pick(1.0),
    })
}

/// Result of the publish benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishReport {
    pub messages: u64,
    /// From the first publish until every subscriber had everything it was given.
    pub elapsed: Duration,
    /// Copies delivered to subscribers per second.
    pub msgs_per_sec: f64,
    /// Copies the subscribers received.
    pub received: u64,
    /// Copies dropped because a subscriber was behind.
    pub lagged: u64,
}

/// Publishes `messages` on one topic to `subscribers` pattern subscribers and measures
/// delivered copies per second. Publishing stores nothing; `store` is only what a bus is
/// built on. Subscribers get a buffer big enough for the whole run, so the number is what
/// fan-out sustains end to end, not how fast a publisher can outrun its readers.
pub async fn run_publish(
    store: Arc<dyn BusStore>,
    messages: usize,
    subscribers: usize,
) -> Result<PublishReport, BusError> {
    let config = BusConfig {
        subscriber_buffer: messages.max(1),
        ..BusConfig::default()
    };
    let bus = Bus::new(store, config)?;
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let mut sub = bus.subscribe("bench.*")?;
        tasks.push(tokio::spawn(async move {
            let mut received = 0u64;
            while sub.recv().await.is_some() {
                received += 1;
            }
            (received, sub.lagged())
        }));
    }
    let started = Instant::now();
    for i in 0..messages {
        bus.publish("bench", "bench.events", serde_json::json!({ "i": i }))?;
        if i % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
    }
    // Dropping the bus ends the subscriptions once they have drained.
    drop(bus);
    let (mut received, mut lagged) = (0, 0);
    for t in tasks {
        let (r, l) = t.await.map_err(join_error)?;
        received += r;
        lagged += l;
    }
    let elapsed = started.elapsed();
    Ok(PublishReport {
        messages: messages as u64,
        elapsed,
        msgs_per_sec: received as f64 / elapsed.as_secs_f64().max(1e-9),
        received,
        lagged,
    })
}

fn join_error(e: tokio::task::JoinError) -> BusError {
    BusError::Payload(format!("benchmark task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn scratch() -> (tempfile::TempDir, Arc<dyn BusStore>) {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::open_sqlite(&dir.path().join("bench.db"))
            .await
            .expect("open");
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_reports_every_message() {
        let (_dir, store) = scratch().await;
        let opts = BenchOptions {
            messages: 500,
            window: 16,
            consumers: 2,
            ..BenchOptions::default()
        };
        let report = run(store.clone(), opts).await.expect("bench");
        assert_eq!(report.messages, 500);
        assert!(report.p50 <= report.p99 && report.p99 <= report.max);
        let publish = run_publish(store, 10_000, 2).await.expect("publish bench");
        assert_eq!(publish.received + publish.lagged, 20_000);
    }
}
