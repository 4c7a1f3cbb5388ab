//! The lifecycle state machine: which states exist and which steps between them are legal.
//!
//! ```text
//! stopped → starting → running ⇄ idle → stopping → stopped
//!              ↓          ↓        ↓        ↓
//!           crashed → backoff → starting      (restart policy and intensity allow it)
//!              ↓
//!           failed  (too many restarts in the window; an operator `start` revives it)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Not running; the initial and the orderly final state.
    Stopped,
    /// Its script is loading and `on_start` runs.
    Starting,
    /// Handling messages, tasks and ticks.
    Running,
    /// No activity for `idle_timeout`; `on_idle` got its nudge. Any activity makes it running.
    Idle,
    /// `on_stop` runs before the agent stops or restarts.
    Stopping,
    /// A handler raised an error or stalled; the restart policy decides what follows.
    Crashed,
    /// Waiting out the exponential backoff before the next start.
    Backoff,
    /// Restarted too often within the intensity window; stays down until an operator acts.
    Failed,
}

impl AgentState {
    pub const ALL: [AgentState; 8] = [
        AgentState::Stopped,
        AgentState::Starting,
        AgentState::Running,
        AgentState::Idle,
        AgentState::Stopping,
        AgentState::Crashed,
        AgentState::Backoff,
        AgentState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Stopped => "stopped",
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Idle => "idle",
            AgentState::Stopping => "stopping",
            AgentState::Crashed => "crashed",
            AgentState::Backoff => "backoff",
            AgentState::Failed => "failed",
        }
    }

    /// Whether the supervisor may step from `self` to `to`. The runner is the only writer
    /// of states; this table documents it and lets tests check every recorded step.
    pub fn can_go(self, to: AgentState) -> bool {
        use AgentState::*;
        matches!(
            (self, to),
            (Stopped | Failed | Backoff | Stopping, Starting)
                | (Starting, Running | Crashed | Stopping)
                | (Running, Idle | Stopping | Crashed)
                | (Idle, Running | Stopping | Crashed)
                | (Stopping, Stopped | Crashed | Backoff | Failed)
                | (Crashed, Backoff | Failed | Stopped)
                | (Backoff, Stopped)
        )
    }

    /// Alive from the operator's point of view: it has (or is about to have) a Lua state.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AgentState::Starting | AgentState::Running | AgentState::Idle | AgentState::Stopping
        )
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AgentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown agent state '{s}'"))
    }
}
