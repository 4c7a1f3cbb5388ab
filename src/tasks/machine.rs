//! The task state machine, as one pure function every backend calls: what status a task
//! moves to when something happens to it, or why that cannot happen. Keeping it here
//! (rather than spread over SQL) is what lets the rules be tested without a database and
//! keeps SQLite and PostgreSQL agreeing.
//!
//! ```text
//!  pending ──deps done──▶ ready ──claim──▶ claimed ──progress──▶ running
//!     │                    ▲  ▲              │  │                 │  │
//!     │                    │  └─lease lapsed─┘  └──────┬──────────┘  │
//!     │                    └──fail(retry), attempts left─────────────┤
//!     │                                          complete ─▶ done    │
//!     │                                fail, no attempts left ─▶ failed
//!  any non-final ──cancel──▶ cancelled;  ──deadline──▶ timeout
//!  pending ──a dependency failed/cancelled/blocked/timed out──▶ blocked
//! ```
//!
//! `failed`, `cancelled`, `blocked` and `timeout` block the task's dependents, transitively.

use super::types::Status;

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Its last unmet dependency is now done.
    DependenciesDone,
    /// A dependency ended without being done.
    DependencyLost,
    Claim,
    Progress,
    Complete,
    /// The holder failed it; `retry` asks for another attempt, `attempts_left` says
    /// whether one remains.
    Fail {
        retry: bool,
        attempts_left: bool,
    },
    /// The lease lapsed without a heartbeat.
    LeaseLapsed {
        attempts_left: bool,
    },
    Cancel,
    DeadlinePassed,
}

/// The status after `event`, or why `event` does not apply to a task in `from`.
pub fn next(from: Status, event: Event) -> Result<Status, String> {
    use Status::*;
    let refuse = |what: &str| Err(format!("cannot {what} a task that is {from}"));
    match event {
        Event::DependenciesDone => match from {
            Pending => Ok(Ready),
            _ => refuse("release"),
        },
        Event::DependencyLost => match from {
            Pending => Ok(Blocked),
            _ => refuse("block"),
        },
        Event::Claim => match from {
            Ready => Ok(Claimed),
            _ => refuse("claim"),
        },
        Event::Progress => match from {
            Claimed | Running => Ok(Running),
            _ => refuse("report progress on"),
        },
        Event::Complete => match from {
            Claimed | Running => Ok(Done),
            _ => refuse("complete"),
        },
        Event::Fail {
            retry,
            attempts_left,
        } => match from {
            Claimed | Running if retry && attempts_left => Ok(Ready),
            Claimed | Running => Ok(Failed),
            _ => refuse("fail"),
        },
        Event::LeaseLapsed { attempts_left } => match from {
            Claimed | Running if attempts_left => Ok(Ready),
            Claimed | Running => Ok(Failed),
            _ => refuse("expire the lease of"),
        },
        Event::Cancel => match from {
            s if s.is_final() => refuse("cancel"),
            _ => Ok(Cancelled),
        },
        Event::DeadlinePassed => match from {
            s if s.is_final() => refuse("time out"),
            _ => Ok(Timeout),
        },
    }
}

/// Whether a task that ended in `status` blocks its dependents.
pub fn blocks_dependents(status: Status) -> bool {
    matches!(
        status,
        Status::Failed | Status::Cancelled | Status::Blocked | Status::Timeout
    )
}

/// The status a new task starts in, from its dependencies' statuses.
pub fn initial(dependencies: &[Status]) -> Status {
    if dependencies.iter().any(|s| blocks_dependents(*s)) {
        Status::Blocked
    } else if dependencies.iter().all(|s| *s == Status::Done) {
        Status::Ready
    } else {
        Status::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_happy_path() {
        assert_eq!(initial(&[]), Ready);
        assert_eq!(initial(&[Done, Pending]), Pending);
        assert_eq!(next(Pending, Event::DependenciesDone), Ok(Ready));
        assert_eq!(next(Ready, Event::Claim), Ok(Claimed));
        assert_eq!(next(Claimed, Event::Progress), Ok(Running));
        assert_eq!(next(Running, Event::Progress), Ok(Running));
        assert_eq!(next(Running, Event::Complete), Ok(Done));
        assert_eq!(next(Claimed, Event::Complete), Ok(Done));
    }

    #[test]
    fn retries_until_attempts_run_out() {
        let fail = |retry, attempts_left| Event::Fail {
            retry,
            attempts_left,
        };
        assert_eq!(next(Running, fail(true, true)), Ok(Ready));
        assert_eq!(next(Running, fail(true, false)), Ok(Failed));
        assert_eq!(next(Claimed, fail(false, true)), Ok(Failed));
        let lapse = |attempts_left| Event::LeaseLapsed { attempts_left };
        assert_eq!(next(Claimed, lapse(true)), Ok(Ready));
        assert_eq!(next(Running, lapse(false)), Ok(Failed));
        assert!(blocks_dependents(Failed));
    }

    #[test]
    fn final_statuses_stay_final() {
        for from in Status::ALL.into_iter().filter(|s| s.is_final()) {
            for event in [
                Event::Claim,
                Event::Progress,
                Event::Complete,
                Event::Cancel,
                Event::DeadlinePassed,
                Event::DependenciesDone,
            ] {
                assert!(next(from, event).is_err(), "{from} accepted {event:?}");
            }
        }
        assert_eq!(
            next(Done, Event::Cancel),
            Err("cannot cancel a task that is done".into())
        );
    }

    #[test]
    fn only_held_tasks_take_holder_events() {
        for from in [Pending, Ready] {
            assert!(next(from, Event::Progress).is_err());
            assert!(next(from, Event::Complete).is_err());
            assert!(next(
                from,
                Event::LeaseLapsed {
                    attempts_left: true
                }
            )
            .is_err());
        }
        assert!(next(Pending, Event::Claim).is_err());
        assert!(next(Claimed, Event::Claim).is_err());
    }

    #[test]
    fn losing_a_dependency_blocks_and_new_tasks_inherit_it() {
        assert_eq!(next(Pending, Event::DependencyLost), Ok(Blocked));
        assert_eq!(initial(&[Done, Cancelled]), Blocked);
        assert_eq!(initial(&[Pending, Timeout]), Blocked);
        assert_eq!(next(Ready, Event::Cancel), Ok(Cancelled));
        assert_eq!(next(Running, Event::DeadlinePassed), Ok(Timeout));
        assert_eq!(next(Pending, Event::DeadlinePassed), Ok(Timeout));
    }
}
