//! Restart policy, restart intensity and backoff: what happens after an agent exits.
//!
//! The meanings are OTP's. `permanent` is always restarted, `transient` only after an
//! abnormal exit (a crash or a stall), `temporary` never. Restarts are limited by an
//! *intensity*: more than `max_restarts` restarts within `restart_window` and the agent is
//! `failed` instead, so a broken script does not spin forever. Each restart in the window
//! waits twice as long as the one before (`backoff_base`, capped at `backoff_max`), so a
//! crash loop costs little while it lasts.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// When an exited agent is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Always: after a crash, a stall or a normal exit.
    #[default]
    Permanent,
    /// Only after an abnormal exit (crash or stall); a normal exit stays stopped.
    Transient,
    /// Never; the agent runs once.
    Temporary,
}

impl RestartPolicy {
    pub const NAMES: [&'static str; 3] = ["permanent", "transient", "temporary"];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Permanent => "permanent",
            RestartPolicy::Transient => "transient",
            RestartPolicy::Temporary => "temporary",
        }
    }

    /// Whether an exit of this kind leads to a restart (intensity permitting).
    pub fn restarts_after(self, abnormal: bool) -> bool {
        match self {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => abnormal,
            RestartPolicy::Temporary => false,
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "permanent" => Ok(RestartPolicy::Permanent),
            "transient" => Ok(RestartPolicy::Transient),
            "temporary" => Ok(RestartPolicy::Temporary),
            other => Err(format!(
                "unknown restart policy '{other}' (expected permanent, transient or temporary)"
            )),
        }
    }
}

/// Everything the supervisor needs to know about one agent's supervision. The defaults are
/// the documented ones (`dreamos.toml`, `[[agents]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Supervision {
    pub restart: RestartPolicy,
    /// More restarts than this within `restart_window` and the agent is `failed`.
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// Delay before the first restart in a window; doubles with each further one.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// No message or task for this long: the agent is `idle` and `on_idle` runs.
    pub idle_timeout: Option<Duration>,
    /// Still idle this long after the nudge: the agent is restarted (a "resume").
    pub resume_after: Option<Duration>,
    /// Resumes allowed before real activity resets the count; then it stays idle.
    pub max_resumes: u32,
    /// Least time between two resumes.
    pub resume_cooldown: Duration,
    /// A handler running longer than this is interrupted and the agent restarted.
    pub stall_timeout: Option<Duration>,
    /// `on_tick` runs this often, when set.
    pub tick: Option<Duration>,
    /// How long `on_stop` may take before the agent stops anyway.
    pub stop_timeout: Duration,
    /// Claim tasks of this category for `on_task` (`""`: any category); `None`: no tasks.
    pub task_category: Option<String>,
    /// Tasks handled at once (`tasks.concurrency`); above one needs the agent's
    /// [`task_worker`](super::Agent::task_worker).
    pub task_concurrency: usize,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            restart: RestartPolicy::Permanent,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            resume_after: Some(Duration::from_secs(10 * 60)),
            max_resumes: 3,
            resume_cooldown: Duration::from_secs(5 * 60),
            stall_timeout: Some(Duration::from_secs(5 * 60)),
            tick: None,
            stop_timeout: Duration::from_secs(10),
            task_category: None,
            task_concurrency: 1,
        }
    }
}

/// What to do after an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start again after this delay.
    Restart(Duration),
    /// The policy does not restart this kind of exit.
    Stay,
    /// Intensity exceeded: give up until an operator starts it.
    Fail,
}

/// Remembers recent restarts to enforce the intensity and compute the backoff.
#[derive(Debug, Default)]
pub struct RestartTracker {
    /// Start times of restarts still inside the window, oldest first.
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    pub fn new() -> RestartTracker {
        RestartTracker::default()
    }

    /// Decides what follows an exit at `now`, and counts the restart if there is one.
    pub fn decide(&mut self, spec: &Supervision, abnormal: bool, now: Instant) -> Decision {
        if !spec.restart.restarts_after(abnormal) {
            return Decision::Stay;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= spec.restart_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= spec.max_restarts as usize {
            return Decision::Fail;
        }
        self.recent.push_back(now);
        Decision::Restart(backoff(spec, self.recent.len() as u32))
    }

    /// Forgets the history (an operator `start` after `failed` gives a fresh budget).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

/// `base * 2^(n-1)` for the n-th restart in the window, capped at `max`. No jitter: agents
/// restart independently, and a predictable schedule is easier for an operator to read.
pub fn backoff(spec: &Supervision, nth: u32) -> Duration {
    let factor = 2u32.saturating_pow(nth.saturating_sub(1).min(31));
    spec.backoff_base
        .saturating_mul(factor)
        .min(spec.backoff_max)
}

/// Supervision settings given by a script (`agent.define{...}`) or by `[[agents]]` in the
/// configuration; `None` leaves the value below alone. The daemon applies the script's
/// first, then the configuration's, so an operator overrides what the author chose.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub restart: Option<RestartPolicy>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<Duration>,
    /// Zero disables idle detection.
    pub idle_timeout: Option<Duration>,
    /// Zero disables resumes.
    pub resume_after: Option<Duration>,
    pub max_resumes: Option<u32>,
    pub resume_cooldown: Option<Duration>,
    /// Zero disables stall detection.
    pub stall_timeout: Option<Duration>,
    /// Zero disables ticks.
    pub tick: Option<Duration>,
}

impl Overrides {
    pub fn apply(&self, spec: &mut Supervision) {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        if let Some(v) = self.restart {
            spec.restart = v;
        }
        if let Some(v) = self.max_restarts {
            spec.max_restarts = v;
        }
        if let Some(v) = self.restart_window {
            spec.restart_window = v;
        }
        if let Some(v) = self.idle_timeout {
            spec.idle_timeout = nonzero(v);
        }
        if let Some(v) = self.resume_after {
            spec.resume_after = nonzero(v);
        }
        if let Some(v) = self.max_resumes {
            spec.max_resumes = v;
        }
        if let Some(v) = self.resume_cooldown {
            spec.resume_cooldown = v;
        }
        if let Some(v) = self.stall_timeout {
            spec.stall_timeout = nonzero(v);
        }
        if let Some(v) = self.tick {
            spec.tick = nonzero(v);
        }
    }
}
