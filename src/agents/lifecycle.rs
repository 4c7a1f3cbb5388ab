//! Records and announces every lifecycle step: the store keeps the log (`dreamos agent
//! status` shows it), `agents.events` carries it to live watchers (the CLI, the dashboard,
//! the Captain), and the shared [`AgentStatus`] is what `dreamos agent list` reads.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;

use super::state::AgentState;
use crate::bus::clock::Clock;
use crate::bus::Bus;
use crate::store::{AgentStore, AgentTransition, Millis};

/// The topic every transition and resume is published on.
pub const EVENTS_TOPIC: &str = "agents.events";
/// The sender name of supervisor events.
pub const SUPERVISOR: &str = "supervisor";

/// A snapshot of one agent, kept current by its runner. Behind a `std` mutex so the
/// control API (on other tasks, `Send`) can read it without asking the runner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub state: AgentState,
    /// Why it entered `state`.
    pub reason: String,
    /// When it entered `state` (ms since the epoch).
    pub since: Millis,
    /// When the current instance became `running`; `None` while not running.
    pub started_at: Option<Millis>,
    /// Restarts since the daemon started (crash, stall, operator, resume).
    pub restarts: u32,
    /// Resumes since the last real activity.
    pub resumes: u32,
    /// Last message, task or touched tick.
    pub last_activity: Option<Millis>,
    /// Messages and tasks handled without error.
    pub handled: u64,
    /// Handler errors and stalls.
    pub errors: u64,
    pub restart_policy: String,
}

impl AgentStatus {
    pub fn new(name: &str, restart_policy: &str, now: Millis) -> AgentStatus {
        AgentStatus {
            name: name.to_string(),
            state: AgentState::Stopped,
            reason: "not started".into(),
            since: now,
            started_at: None,
            restarts: 0,
            resumes: 0,
            last_activity: None,
            handled: 0,
            errors: 0,
            restart_policy: restart_policy.to_string(),
        }
    }
}

/// Shared, `Send` view of one agent's status.
pub type SharedStatus = Arc<Mutex<AgentStatus>>;

/// Applies `f` to a shared status; a poisoned lock (a panic elsewhere) still updates it,
/// since the snapshot is plain data that cannot be left half-valid by our updates.
pub fn update(status: &SharedStatus, f: impl FnOnce(&mut AgentStatus)) {
    let mut guard = match status.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard);
}

/// Reads a shared status.
pub fn snapshot(status: &SharedStatus) -> AgentStatus {
    match status.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Where transitions go. Cheap to clone; one per supervisor.
#[derive(Clone, Default)]
pub struct Recorder {
    /// Durable log; `None` in tests that only look at the status.
    pub store: Option<Arc<dyn AgentStore>>,
    /// Live announcements; `None` without a bus.
    pub bus: Option<Bus>,
    /// The task service, for agents that declare a task category.
    pub tasks: Option<crate::tasks::Tasks>,
    /// Wall-clock timestamps on tokio's clock, so paused tests see consistent times.
    pub clock: Arc<Clock>,
}

impl Recorder {
    pub fn new(store: Option<Arc<dyn AgentStore>>, bus: Option<Bus>) -> Recorder {
        Recorder {
            store,
            bus,
            tasks: None,
            clock: Arc::new(Clock::new()),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Publishes a non-transition event (a resume) on `agents.events`.
    pub fn announce(&self, event: serde_json::Value) {
        if let Some(bus) = &self.bus {
            // Best effort by design: publish reaches whoever listens now; the log is durable.
            let _ = bus.publish(SUPERVISOR, EVENTS_TOPIC, event);
        }
    }
}

/// One agent's current state and where its steps are recorded.
pub struct Lifecycle {
    pub name: String,
    pub state: AgentState,
    pub status: SharedStatus,
    pub recorder: Recorder,
}

impl Lifecycle {
    /// Moves to `to` for `reason`: status first (what readers see), then the durable log,
    /// then the live event. A store failure is logged, never fatal: an agent keeps working
    /// when its bookkeeping cannot be written.
    pub async fn go(&mut self, to: AgentState, reason: impl Into<String>) {
        let reason = reason.into();
        let from = self.state;
        if !from.can_go(to) {
            tracing::warn!(agent = %self.name, %from, %to, "unexpected agent transition");
        }
        self.state = to;
        let at = self.recorder.now();
        update(&self.status, |s| {
            s.state = to;
            s.reason = reason.clone();
            s.since = at;
            match to {
                AgentState::Running if s.started_at.is_none() => s.started_at = Some(at),
                AgentState::Running | AgentState::Idle => {}
                _ => s.started_at = None,
            }
        });
        tracing::info!(agent = %self.name, %from, %to, %reason, "agent transition");
        let transition = AgentTransition {
            agent: self.name.clone(),
            from: from.as_str().into(),
            to: to.as_str().into(),
            reason,
            at,
        };
        self.recorder.announce(json!({
            "event": "transition",
            "agent": transition.agent,
            "from": transition.from,
            "to": transition.to,
            "reason": transition.reason,
            "at": at,
        }));
        if let Some(store) = &self.recorder.store {
            if let Err(e) = store.record_agent_transition(transition).await {
                tracing::warn!(agent = %self.name, error = %e, "cannot record agent transition");
            }
        }
    }
}
