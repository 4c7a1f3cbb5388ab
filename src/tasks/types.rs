//! Data that crosses the [`TaskStore`](crate::store::TaskStore) boundary: what the task
//! service hands a backend and what it gets back. Plain data, shared by every backend.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use crate::store::{Millis, Priority};

/// A task's id: increases with insertion order, so it is also the FIFO order within a
/// priority. Tasks are never deleted, so an id never names two tasks.
pub type TaskId = i64;

/// Where a task is in its life (see [`machine`](super::machine) for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting for its dependencies to be `done`.
    Pending,
    /// Can be claimed.
    Ready,
    /// Handed to an agent under a lease; no progress reported yet.
    Claimed,
    /// Its agent reported progress at least once.
    Running,
    /// Completed, with an optional result.
    Done,
    /// Out of attempts, or failed without retry.
    Failed,
    /// Cancelled by someone, with a reason.
    Cancelled,
    /// A dependency failed, was cancelled, blocked or timed out: it can never run.
    Blocked,
    /// Its deadline passed before it was done.
    Timeout,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Ready,
        Status::Claimed,
        Status::Running,
        Status::Done,
        Status::Failed,
        Status::Cancelled,
        Status::Blocked,
        Status::Timeout,
    ];

    pub const NAMES: &'static str =
        "pending, ready, claimed, running, done, failed, cancelled, blocked, timeout";

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Claimed => "claimed",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Blocked => "blocked",
            Status::Timeout => "timeout",
        }
    }

    /// Nothing happens to a task in a final status any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Done | Status::Failed | Status::Cancelled | Status::Blocked | Status::Timeout
        )
    }

    /// An agent holds the task under a lease.
    pub fn is_held(self) -> bool {
        matches!(self, Status::Claimed | Status::Running)
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status '{s}' (use one of {})", Status::NAMES))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: TaskId,
    /// The symbolic id it had in an imported plan, if any (shown in graphs).
    pub key: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub status: Status,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Any JSON the adder attached for the worker.
    pub payload: Option<serde_json::Value>,
    /// The agent the task is reserved for: only it may claim the task.
    pub assignee: Option<String>,
    /// The agent holding the task (claimed, running) or that last finished it.
    pub agent: Option<String>,
    /// Claims so far; the current claim is attempt number `attempts`.
    pub attempts: u32,
    pub max_attempts: u32,
    /// 0 to 100, from the last `progress` of the current attempt.
    pub progress: f64,
    pub note: Option<String>,
    pub result: Option<serde_json::Value>,
    /// Why it failed, was cancelled, blocked or timed out.
    pub error: Option<String>,
    /// The lease of the current claim ends here unless renewed.
    pub lease_until: Option<Millis>,
    pub deadline: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Filled by `get` only (list and claim leave it empty).
    pub depends_on: Vec<TaskId>,
}

impl Task {
    /// The lease of the current claim, as the holder would present it.
    pub fn lease(&self) -> Option<Lease> {
        let agent = self.agent.clone()?;
        self.status.is_held().then_some(Lease {
            id: self.id,
            agent,
            attempt: self.attempts,
        })
    }

    /// `#12 fetch` for plan tasks, `#12` otherwise.
    pub fn label(&self) -> String {
        match &self.key {
            Some(key) => format!("#{} {key}", self.id),
            None => format!("#{}", self.id),
        }
    }
}

/// What an agent presents to act on a task it claimed: which task, who, which attempt.
/// A lease from an earlier attempt (expired, then claimed again) no longer works.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: TaskId,
    pub agent: String,
    pub attempt: u32,
}

/// A dependency of a task being inserted: an existing task, or an earlier task of the
/// same batch (by its index in the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepRef {
    Existing(TaskId),
    Batch(usize),
}

/// A validated task ready for insertion. Batches are in dependency order: a
/// [`DepRef::Batch`] always points at an earlier index.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub key: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Serialized JSON (serialized on the caller's side, so the writer only writes).
    pub payload: Option<String>,
    pub assignee: Option<String>,
    pub max_attempts: u32,
    pub deadline: Option<Millis>,
    pub depends_on: Vec<DepRef>,
}

/// One transition, as recorded in the events table and published on `tasks.events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskEvent {
    /// The event's own id: increases with every transition, a cursor for tailing.
    pub seq: i64,
    pub id: TaskId,
    pub title: String,
    /// `None` when the task was just created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Status>,
    pub new: Status,
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub at: Millis,
}

/// What `claim` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimQuery {
    pub agent: String,
    /// Only tasks of this category.
    pub category: Option<String>,
    /// Only tasks carrying every one of these tags.
    pub tags: Vec<String>,
    pub lease_ms: i64,
}

/// What a claim attempt found.
#[derive(Debug, Clone, Default)]
pub struct ClaimOutcome {
    pub task: Option<Task>,
    /// Transitions the claim applied on its way (expired leases, passed deadlines) and
    /// the claim itself.
    pub events: Vec<TaskEvent>,
    /// When nothing was claimable: the earliest lease expiry, when a task may come back.
    pub next_expiry: Option<Millis>,
}

/// Filters of `list`; every one present must match. Sorted by priority, then age.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<Status>,
    /// Reserved for or held by this agent.
    pub assignee: Option<String>,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    pub limit: usize,
}

/// Tasks per status for one agent (`task list --by agent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentSummary {
    pub agent: String,
    /// (status, count), only statuses with a count, in [`Status::ALL`] order.
    pub counts: Vec<(Status, u64)>,
}

/// Why the store refused an operation. Nothing was changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound(TaskId),
    /// Task `task` (a title or plan key) depends on `missing`, which does not exist.
    MissingDependency {
        task: String,
        missing: TaskId,
    },
    /// The caller does not hold the task (someone else does, or nobody does).
    NotHeld {
        lease: Lease,
        status: Status,
        holder: Option<String>,
        attempts: u32,
    },
    /// The caller held it, but the lease ended at `at` (not yet handed to anyone else).
    LeaseExpired {
        lease: Lease,
        at: Millis,
    },
    /// The task is already final.
    Final {
        id: TaskId,
        status: Status,
    },
}
