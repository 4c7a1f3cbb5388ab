//! What the scheduler tells the world: a log line and an event on the bus topic
//! `schedules.events` for every run start and end, every skipped or missed run, and every
//! pause. Events are best-effort (publish is fire-and-forget); the run history in the
//! store is the durable record.

use serde_json::json;

use super::def::MissedPolicy;
use super::records::RunKind;
use crate::store::{Millis, StoreError};

/// The topic every scheduler event is published on.
pub const TOPIC: &str = "schedules.events";
const SENDER: &str = "scheduler";
const LOG: &str = "dreamos::scheduler";

pub(super) struct Events {
    bus: Option<crate::bus::Bus>,
}

impl Events {
    pub fn new(bus: Option<crate::bus::Bus>) -> Events {
        Events { bus }
    }

    /// Publishes the event `payload` builds; built only when there is a bus (the payload
    /// costs allocations, and the benchmark's 10,000 starts a second have no bus).
    fn publish(&self, payload: impl FnOnce() -> serde_json::Value) {
        if let Some(bus) = &self.bus {
            if let Err(e) = bus.publish(SENDER, TOPIC, payload()) {
                tracing::warn!(target: LOG, "cannot publish a scheduler event: {e}");
            }
        }
    }

    pub fn started(&self, name: &str, scheduled: Millis, started: Millis, kind: RunKind) {
        tracing::debug!(target: LOG, schedule = name, late_ms = started - scheduled, "run started");
        self.publish(|| {
            json!({
                "event": "started", "schedule": name, "kind": kind.as_str(),
                "scheduled": scheduled, "started": started,
            })
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub fn finished(
        &self,
        name: &str,
        scheduled: Millis,
        started: Millis,
        ended: Millis,
        error: Option<&String>,
        failures: u32,
        paused: bool,
    ) {
        match error {
            None => tracing::debug!(target: LOG, schedule = name, ms = ended - started, "run ok"),
            Some(e) => tracing::error!(
                target: LOG, schedule = name, failures,
                "run failed ({failures} in a row): {e}"
            ),
        }
        self.publish(|| {
            json!({
                "event": if error.is_none() { "ok" } else { "failed" },
                "schedule": name, "scheduled": scheduled, "started": started, "ended": ended,
                "error": error, "failures": failures,
            })
        });
        if paused {
            tracing::error!(
                target: LOG, schedule = name,
                "paused after {failures} consecutive failures (max_failures); resume with \
                 `dreamos schedule resume {name}`"
            );
            self.publish(|| json!({"event": "paused", "schedule": name, "failures": failures}));
        }
    }

    pub fn missed(&self, name: &str, count: &str, policy: MissedPolicy) {
        let what = match policy {
            MissedPolicy::Skip => "skipped (missed = skip)",
            MissedPolicy::RunOnce => "covered by one catch-up run (missed = run_once)",
            MissedPolicy::RunAll => "skipped: older than catchup_window (missed = run_all)",
        };
        tracing::warn!(target: LOG, schedule = name, "{count} missed runs {what}");
        self.publish(|| {
            json!({
                "event": "missed", "schedule": name, "skipped": count,
                "policy": serde_json::to_value(policy).unwrap_or_default(),
            })
        });
    }

    /// Runs a process that died left unfinished; `again` of them run again by `policy`
    /// (`None` when the schedule is gone, paused, or not this node's to run).
    pub fn interrupted(
        &self,
        name: &str,
        count: usize,
        again: usize,
        policy: Option<MissedPolicy>,
    ) {
        let what = match policy {
            Some(p) => format!(
                "{again} run again as catch-up (missed = {})",
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ),
            None => "none run again (the schedule is gone or paused)".into(),
        };
        tracing::warn!(
            target: LOG, schedule = name,
            "{count} run(s) interrupted: the process running them ended; {what}"
        );
        self.publish(|| {
            json!({
                "event": "interrupted", "schedule": name, "runs": count, "again": again,
            })
        });
    }

    pub fn overlap_skipped(&self, name: &str, scheduled: Millis) {
        tracing::warn!(
            target: LOG, schedule = name,
            "run skipped: the previous run is still going (overlap = skip)"
        );
        self.publish(|| json!({"event": "skipped", "schedule": name, "scheduled": scheduled}));
    }

    /// A run that did not execute because its start was refused (`refused`: another node
    /// started this fire time, which happens while two nodes both believe they lead) or
    /// could not be recorded.
    pub fn not_run(&self, name: &str, scheduled: Millis, refused: bool) {
        if refused {
            tracing::info!(
                target: LOG, schedule = name, scheduled,
                "run not started here: another node already started this fire time"
            );
        } else {
            tracing::error!(
                target: LOG, schedule = name, scheduled,
                "run not started: its start could not be recorded in the store (see the \
                 error above), and an unrecorded run could run twice across nodes"
            );
        }
    }

    pub fn store_error(&self, name: &str, e: &StoreError) {
        tracing::error!(target: LOG, schedule = name, "store: {e}");
    }
}
