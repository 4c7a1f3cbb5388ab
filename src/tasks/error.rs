//! What can go wrong with a task operation. Every variant but [`TaskError::Store`] is the
//! caller's mistake (a misuse: `dreamos.tasks` raises it); `Store` is the world failing
//! (`nil, err` in Lua). Messages name the task and say what to do instead.

use std::sync::Arc;

use super::types::{Lease, Millis, Refusal, Status, TaskId};
use crate::store::{format_millis, StoreError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// A bad argument: `field` is the option name; `reason` names it too and says what is
    /// accepted.
    #[error("{reason}")]
    Invalid { field: &'static str, reason: String },
    /// The new tasks' dependencies loop: `a -> b -> a`.
    #[error("dependency cycle: {0}")]
    Cycle(String),
    #[error("{task} depends on task {missing}, which does not exist")]
    MissingDependency { task: String, missing: TaskId },
    #[error("no task {0}")]
    NotFound(TaskId),
    #[error("{0}")]
    NotHeld(String),
    #[error(
        "the lease of task {} (attempt {}) expired at {}: it goes back to ready; claim it again",
        lease.id, lease.attempt, format_millis(*at)
    )]
    LeaseExpired { lease: Lease, at: Millis },
    #[error("task {id} is already {status}")]
    Final { id: TaskId, status: Status },
    /// A plan file that does not parse or does not make sense; the message has the line.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl TaskError {
    /// The world failed (the database), rather than the caller.
    pub fn is_world(&self) -> bool {
        matches!(self, TaskError::Store(_))
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> TaskError {
        TaskError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        TaskError::Store(Arc::new(e))
    }
}

impl From<Refusal> for TaskError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(id) => TaskError::NotFound(id),
            Refusal::MissingDependency { task, missing } => {
                TaskError::MissingDependency { task, missing }
            }
            Refusal::LeaseExpired { lease, at } => TaskError::LeaseExpired { lease, at },
            Refusal::Final { id, status } => TaskError::Final { id, status },
            Refusal::NotHeld {
                lease,
                status,
                holder,
                attempts,
            } => TaskError::NotHeld(not_held(&lease, status, holder.as_deref(), attempts)),
        }
    }
}

/// Explains who holds the task instead, so the agent knows whether it lost a lease or
/// never had one.
fn not_held(lease: &Lease, status: Status, holder: Option<&str>, attempts: u32) -> String {
    let id = lease.id;
    let who = &lease.agent;
    match holder {
        _ if status.is_final() => format!("task {id} is already {status}"),
        Some(h) if status.is_held() && h == who => format!(
            "agent '{who}' holds task {id} as attempt {attempts}, not attempt {} \
             (that lease expired and the task was claimed again)",
            lease.attempt
        ),
        Some(h) if status.is_held() => format!(
            "task {id} is held by agent '{h}', not '{who}' (claim a task before completing it)"
        ),
        _ => format!(
            "agent '{who}' does not hold task {id}: it is {status} (claim it first; \
             a lease that lapsed puts the task back to ready)"
        ),
    }
}
