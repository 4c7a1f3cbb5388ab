//! Numbers `/metrics` needs that no store keeps: how long tasks take from claim to done
//! (a histogram), and counts of task transitions, schedule runs and social outbox events
//! since the daemon started. One tokio task listens to `tasks.events`, `schedules.events`
//! and `social.events` on the bus and
//! updates a [`Telemetry`] that the metrics handler reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::bus::Bus;
use crate::store::Millis;

/// Upper bounds (seconds) of the task cycle latency buckets: from a quick script task
/// (10 ms) to an hour-long job.
pub const CYCLE_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// A Prometheus histogram: cumulative counts are computed when rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`CYCLE_BUCKETS`] (not cumulative); the last slot is +Inf.
    pub counts: [u64; CYCLE_BUCKETS.len() + 1],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        let slot = CYCLE_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(CYCLE_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// What the listener has counted.
#[derive(Debug, Default)]
pub struct Counts {
    pub task_cycle: Histogram,
    /// Task transitions by new status.
    pub task_transitions: BTreeMap<String, u64>,
    /// Schedule runs by (schedule, outcome): `ok`, `failed`, `skipped`, `missed`.
    pub schedule_runs: BTreeMap<(String, String), u64>,
    /// Social outbox events by kind (`posted`, `failed`, `dead`, ...).
    pub social_events: BTreeMap<String, u64>,
    /// When each task now held was claimed; removed when it ends.
    claimed_at: HashMap<i64, Millis>,
}

/// Shared between the listener and `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Telemetry {
    pub counts: Arc<Mutex<Counts>>,
}

impl Telemetry {
    /// Applies one `tasks.events` payload.
    pub fn task_event(&self, event: &serde_json::Value) {
        let (Some(id), Some(new), Some(at)) = (
            event.get("id").and_then(|v| v.as_i64()),
            event.get("new").and_then(|v| v.as_str()),
            event.get("at").and_then(|v| v.as_i64()),
        ) else {
            return;
        };
        let mut c = self.lock();
        *c.task_transitions.entry(new.to_string()).or_default() += 1;
        match new {
            "claimed" => {
                c.claimed_at.insert(id, at);
            }
            "running" => {}
            _ => {
                if let Some(start) = c.claimed_at.remove(&id) {
                    if new == "done" {
                        c.task_cycle.observe((at - start).max(0) as f64 / 1000.0);
                    }
                }
            }
        }
    }

    /// Applies one `schedules.events` payload.
    pub fn schedule_event(&self, event: &serde_json::Value) {
        let outcome = match event.get("event").and_then(|v| v.as_str()) {
            Some(e @ ("ok" | "failed" | "skipped" | "missed")) => e,
            _ => return,
        };
        let Some(name) = event.get("schedule").and_then(|v| v.as_str()) else {
            return;
        };
        *self
            .lock()
            .schedule_runs
            .entry((name.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    /// Applies one `social.events` payload.
    pub fn social_event(&self, event: &serde_json::Value) {
        if let Some(kind) = event.get("event").and_then(|v| v.as_str()) {
            *self
                .lock()
                .social_events
                .entry(kind.to_string())
                .or_default() += 1;
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Listens on `bus` until the bus goes away; call once per daemon.
    pub fn spawn_listener(&self, bus: &Bus) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let mut tasks = bus.subscribe(crate::tasks::TOPIC)?;
        let mut schedules = bus.subscribe(crate::scheduler::TOPIC)?;
        let mut social = bus.subscribe(crate::social::TOPIC)?;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(m) = tasks.recv() => me.task_event(&m.payload),
                    Some(m) = schedules.recv() => me.schedule_event(&m.payload),
                    Some(m) = social.recv() => me.social_event(&m.payload),
                    else => return,
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cycle_latency_is_claim_to_done() {
        let t = Telemetry::default();
        t.task_event(&json!({"id": 1, "new": "ready", "at": 0}));
        t.task_event(&json!({"id": 1, "new": "claimed", "at": 1_000}));
        t.task_event(&json!({"id": 1, "new": "running", "at": 1_100}));
        t.task_event(&json!({"id": 1, "new": "done", "at": 1_300}));
        // A failed task counts as a transition but not as a cycle.
        t.task_event(&json!({"id": 2, "new": "claimed", "at": 0}));
        t.task_event(&json!({"id": 2, "new": "failed", "at": 5}));
        let c = t.lock();
        assert_eq!(c.task_cycle.count, 1);
        assert!((c.task_cycle.sum - 0.3).abs() < 1e-9);
        // 0.3 s falls in the (0.1, 0.5] bucket.
        assert_eq!(c.task_cycle.counts[3], 1);
        assert_eq!(c.task_transitions.get("claimed"), Some(&2));
        assert!(c.claimed_at.is_empty());
    }

    #[test]
    fn schedule_runs_by_outcome() {
        let t = Telemetry::default();
        t.schedule_event(&json!({"event": "ok", "schedule": "daily"}));
        t.schedule_event(&json!({"event": "failed", "schedule": "daily"}));
        t.schedule_event(&json!({"event": "started", "schedule": "daily"}));
        let c = t.lock();
        assert_eq!(c.schedule_runs.len(), 2);
        assert_eq!(
            c.schedule_runs.get(&("daily".into(), "ok".into())),
            Some(&1)
        );
    }
}
