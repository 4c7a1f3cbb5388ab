//! What the store keeps about schedules and their runs ([`crate::store::ScheduleStore`]).

use serde::Serialize;

use super::def::ScheduleDef;
use crate::store::Millis;

/// One schedule as persisted: its definition plus the state that must survive a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    pub def: ScheduleDef,
    /// Who made it: `config`, `cli`, or `lua:<script>` (function handlers, which end with
    /// their script and are dropped at the next start).
    pub source: String,
    /// Paused by an operator or by `max_failures`.
    pub paused: bool,
    /// Consecutive failed runs; reset by a success or a resume.
    pub failures: u32,
    /// Scheduled time of the newest fire some node claimed (the per-run lock).
    pub last_fire: Option<Millis>,
    /// When it fires next; `None` for a one-shot that has fired.
    pub next_fire: Option<Millis>,
    /// `ok`, `failed`, `skipped`, `interrupted`, or `None` before the first run.
    pub last_outcome: Option<String>,
}

impl StoredSchedule {
    pub fn new(def: ScheduleDef, source: impl Into<String>) -> StoredSchedule {
        StoredSchedule {
            def,
            source: source.into(),
            paused: false,
            failures: 0,
            last_fire: None,
            next_fire: None,
            last_outcome: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }
}

/// How a run came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// At its time (or within a second of it).
    Scheduled,
    /// A missed run caught up by `run_once` or `run_all`.
    Catchup,
    /// `dreamos schedule run NAME` or `cron.run`.
    Manual,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Catchup => "catchup",
            RunKind::Manual => "manual",
        }
    }
}

/// One line of run history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub schedule: String,
    pub kind: String,
    /// The fire time the run was for.
    pub scheduled: Millis,
    /// When it actually started (`None` for a skipped run).
    pub started: Option<Millis>,
    /// When it ended; `None` while running (or if the process died during it).
    pub ended: Option<Millis>,
    /// `running`, `ok`, `failed`, `skipped`, `interrupted` (its process died during it).
    pub outcome: String,
    pub error: Option<String>,
}

/// The start of a run as recorded (or a run that did not happen: `outcome = "skipped"`).
#[derive(Debug, Clone)]
pub struct RunStart {
    pub schedule: String,
    pub kind: RunKind,
    pub scheduled: Millis,
    /// When it started (for a skipped run: when that was decided).
    pub started: Millis,
    /// `running` or `skipped`.
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// The end of a run, with the schedule state it leaves behind (one atomic write).
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub id: i64,
    pub schedule: String,
    pub ended: Millis,
    pub outcome: &'static str,
    pub error: Option<String>,
    /// Consecutive failures after this run.
    pub failures: u32,
    /// Whether this run paused the schedule (`max_failures` reached).
    pub pause: bool,
    /// Runs kept per schedule; older ones are deleted.
    pub keep: u64,
}
