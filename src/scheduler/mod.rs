//! The scheduler: cron expressions, intervals and one-shot times that start scripts, send
//! agent messages or call a script's function, with persistence, missed-run and overlap
//! policies and run history. Plain Rust; `lua/cron.rs` and `cli/schedule.rs` bind it.
//!
//! - [`trigger`]: parsing (cron on `croner`, IANA zones on `chrono-tz`) and next fire times.
//! - [`def`]: a schedule's definition and policies, as in `[[schedules]]`.
//! - [`engine`]: the firing loop and run bookkeeping ([`Scheduler`]); `policy` holds the
//!   pure parts (missed-run plans, jitter), [`leader`] which node fires shared schedules.
//! - [`records`]: what the store keeps (`crate::store::ScheduleStore`).
//! - [`runner`]: how a run executes (scripts in their own state on another thread).
//! - [`daemon`]: starting the daemon's scheduler from the configuration and the store.
//!
//! Why not `tokio-cron-scheduler`, which the design names: checked on this machine, 0.15
//! accepts only 6- or 7-field expressions, fixes a job's UTC offset when the job is created
//! (a 09:00 Europe/Berlin job then fires at 10:00 local in summer), wakes every 500 ms to
//! poll, never catches up missed runs, and its stores have no lock for several nodes. So
//! this module uses its cron parser, `croner` (which walks DST gaps and folds itself), and
//! its own loop: one tokio timer for the earliest due schedule, no polling, catch-up
//! decided from the persisted next fire time, and leadership in the store so that each
//! run fires on one node only ([`leader`]).

pub mod bench;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod def;
mod due;
pub mod engine;
mod events;
mod fire;
mod history;
pub mod leader;
mod policy;
pub mod records;
mod recover;
pub mod runner;
mod runs;
pub mod sync;
pub mod trigger;

#[cfg(test)]
mod tests;

use chrono_tz::Tz;
use serde::Serialize;

pub use clock::Clock;
pub use config::SchedulerConfig;
pub use def::{MissedPolicy, OverlapPolicy, ScheduleDef};
pub use engine::{Runner, Scheduler};
pub use events::TOPIC;
pub use records::{RunEnd, RunKind, RunRecord, RunStart, StoredSchedule};
pub use trigger::Trigger;

use crate::store::{Millis, StoreError};

/// Process-wide scheduler settings (`[scheduler]` in dreamos.toml).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Zone of schedules that name none.
    pub default_tz: String,
    /// Runs kept per schedule in the history.
    pub history_keep: u64,
    /// Whether this scheduler competes to fire shared schedules. The daemon does; a
    /// script's own scheduler does not (it fires only its function handlers), so a script
    /// that registers durable schedules and exits never holds the lead the daemon needs.
    pub lead: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_tz: "UTC".into(),
            history_keep: 100,
            lead: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Bad definition; the message names the schedule and the fix.
    #[error("{0}")]
    Invalid(String),
    #[error("no schedule named '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<String> for SchedulerError {
    fn from(message: String) -> Self {
        SchedulerError::Invalid(message)
    }
}

/// One schedule as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    /// `0 9 * * *`, `every 15m`, `at ...`.
    pub expr: String,
    pub timezone: String,
    /// What a fire does.
    pub action: String,
    /// The next three fire times, RFC 3339 in the schedule's zone (empty when paused).
    pub next: Vec<String>,
    pub last_outcome: Option<String>,
    pub paused: bool,
    pub enabled: bool,
    pub failures: u32,
    pub running: u32,
    pub source: String,
}

impl ScheduleInfo {
    pub fn new(s: &StoredSchedule, trigger: &Trigger, next: Vec<Millis>, running: u32) -> Self {
        let tz: Tz = trigger.tz();
        ScheduleInfo {
            name: s.def.name.clone(),
            expr: trigger.describe(),
            timezone: tz.name().to_string(),
            action: s.def.action(),
            next: next
                .into_iter()
                .map(|t| trigger::format_time(t, tz))
                .collect(),
            last_outcome: s.last_outcome.clone(),
            paused: s.paused,
            enabled: s.def.enabled,
            failures: s.failures,
            running,
            source: s.source.clone(),
        }
    }
}
