//! The supervisor: every agent of the process by name, each with its spec, its code
//! (a [`Factory`]), its shared status and, while alive, its runner task.
//!
//! It lives on the daemon's `LocalSet` (agents are `!Send`), is cloned freely (`Rc`), and
//! is driven by operators through [`Supervisor::start`], [`stop`](Supervisor::stop),
//! [`restart`](Supervisor::restart) and [`reload`](Supervisor::reload). Shutdown follows
//! mini-redis: every runner gets a stop command, and the process waits until every runner
//! task has finished — that is the proof that every `on_stop` ran.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::commands::CommandSender;
use tokio::task::JoinHandle;

use super::agent::Factory;
use super::inbox::{BusInbox, InboxFactory};
use super::lifecycle::{snapshot, AgentStatus, Lifecycle, Recorder, SharedStatus};
use super::policy::Supervision;
use super::runner::{Command, Runner};
use super::state::AgentState;

/// What an operator asked that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    #[error("no agent named '{0}'")]
    Unknown(String),
    #[error("agent '{0}' is already defined")]
    Duplicate(String),
    #[error("agent '{name}' is already {state}")]
    AlreadyRunning { name: String, state: AgentState },
    #[error("agent '{0}' is not running")]
    NotRunning(String),
    /// Another node holds the agent's lease (see [`super::placement`]).
    #[error("{0}")]
    Elsewhere(String),
}

/// Says whether this node may start an agent: `Err(why)` when another node runs it.
pub type Guard = Rc<dyn Fn(&str) -> Result<(), String>>;

/// One supervised agent.
struct Entry {
    spec: Supervision,
    /// The code of the next instance; `reload` replaces it.
    factory: Rc<RefCell<Factory>>,
    status: SharedStatus,
    /// Builds the inbox for each start; `None` means the agent gets no messages.
    inbox: Option<InboxFactory>,
    /// Commands to the live runner, if one is running.
    commands: Option<CommandSender>,
    /// The live runner; awaited on stop so the caller knows `on_stop` ran.
    task: Option<JoinHandle<()>>,
}

/// Cheap to clone; all clones are the same supervisor.
#[derive(Clone)]
pub struct Supervisor {
    inner: Rc<RefCell<BTreeMap<String, Entry>>>,
    recorder: Recorder,
    /// Consulted by every start (operator, Lua `agent.start`, REPL), so no path starts
    /// an agent that another node runs.
    guard: Rc<RefCell<Option<Guard>>>,
}

impl Supervisor {
    pub fn new(recorder: Recorder) -> Supervisor {
        Supervisor {
            inner: Rc::default(),
            recorder,
            guard: Rc::default(),
        }
    }

    /// Installs the check every start must pass (the placement's).
    pub fn set_guard(&self, guard: Guard) {
        *self.guard.borrow_mut() = Some(guard);
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Adds an agent (stopped). Its inbox is `agent:<name>` on the recorder's bus, if any.
    pub fn add(
        &self,
        name: &str,
        spec: Supervision,
        factory: Factory,
    ) -> Result<SharedStatus, SupervisorError> {
        let inbox = self.recorder.bus.clone().map(|bus| {
            let make: InboxFactory = Rc::new(move |name: &str| -> Box<dyn super::Inbox> {
                Box::new(BusInbox::new(bus.clone(), name))
            });
            make
        });
        self.add_with_inbox(name, spec, factory, inbox)
    }

    /// Adds an agent with its own source of messages (tests, or agents without inboxes).
    pub fn add_with_inbox(
        &self,
        name: &str,
        spec: Supervision,
        factory: Factory,
        inbox: Option<InboxFactory>,
    ) -> Result<SharedStatus, SupervisorError> {
        let mut agents = self.inner.borrow_mut();
        if agents.contains_key(name) {
            return Err(SupervisorError::Duplicate(name.into()));
        }
        let status = Arc::new(Mutex::new(AgentStatus::new(
            name,
            spec.restart.as_str(),
            self.recorder.now(),
        )));
        agents.insert(
            name.to_string(),
            Entry {
                spec,
                factory: Rc::new(RefCell::new(factory)),
                status: status.clone(),
                inbox,
                commands: None,
                task: None,
            },
        );
        Ok(status)
    }

    /// Names of every agent, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.borrow().keys().cloned().collect()
    }

    pub fn status(&self, name: &str) -> Result<AgentStatus, SupervisorError> {
        self.inner
            .borrow()
            .get(name)
            .map(|e| snapshot(&e.status))
            .ok_or_else(|| SupervisorError::Unknown(name.into()))
    }

    pub fn list(&self) -> Vec<AgentStatus> {
        self.inner
            .borrow()
            .values()
            .map(|e| snapshot(&e.status))
            .collect()
    }

    /// The state of every agent, by name order: cheaper than [`list`](Self::list) for
    /// watching thousands (no names or reasons copied).
    pub fn states(&self) -> Vec<AgentState> {
        self.inner
            .borrow()
            .values()
            .map(|e| match e.status.lock() {
                Ok(s) => s.state,
                Err(poisoned) => poisoned.into_inner().state,
            })
            .collect()
    }

    /// Starts a stopped or failed agent.
    pub fn start(&self, name: &str, reason: &str) -> Result<(), SupervisorError> {
        let guard = self.guard.borrow().clone();
        if let Some(guard) = guard {
            guard(name).map_err(SupervisorError::Elsewhere)?;
        }
        let mut agents = self.inner.borrow_mut();
        let entry = agents
            .get_mut(name)
            .ok_or_else(|| SupervisorError::Unknown(name.into()))?;
        if entry.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Err(SupervisorError::AlreadyRunning {
                name: name.into(),
                state: snapshot(&entry.status).state,
            });
        }
        let (tx, rx) = super::commands::line();
        let state = snapshot(&entry.status).state;
        let life = Lifecycle {
            name: name.to_string(),
            state,
            status: entry.status.clone(),
            recorder: self.recorder.clone(),
        };
        let runner = Runner::new(
            entry.spec.clone(),
            entry.factory.clone(),
            rx,
            life,
            entry.inbox.as_ref().map(|make| make(name)),
            self.recorder.bus.clone(),
        );
        entry.commands = Some(tx);
        entry.task = Some(tokio::task::spawn_local(runner.run(reason.to_string())));
        Ok(())
    }

    /// Stops an agent and waits until it has stopped (`on_stop` ran or timed out).
    pub async fn stop(&self, name: &str, reason: &str) -> Result<(), SupervisorError> {
        let task = {
            let mut agents = self.inner.borrow_mut();
            let entry = agents
                .get_mut(name)
                .ok_or_else(|| SupervisorError::Unknown(name.into()))?;
            let live = entry.task.as_ref().is_some_and(|t| !t.is_finished());
            if !live {
                return Err(SupervisorError::NotRunning(name.into()));
            }
            if let Some(tx) = entry.commands.take() {
                tx.send(Command::Stop {
                    reason: reason.to_string(),
                });
            }
            entry.task.take()
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }

    /// Restarts a live agent (through `on_stop`), or starts a stopped one.
    pub fn restart(&self, name: &str, reason: &str) -> Result<(), SupervisorError> {
        let sent = {
            let agents = self.inner.borrow();
            let entry = agents
                .get(name)
                .ok_or_else(|| SupervisorError::Unknown(name.into()))?;
            let live = entry.task.as_ref().is_some_and(|t| !t.is_finished());
            live && entry.commands.as_ref().is_some_and(|tx| {
                tx.send(Command::Restart {
                    reason: reason.to_string(),
                })
            })
        };
        if sent {
            Ok(())
        } else {
            self.start(name, reason)
        }
    }

    /// Replaces the code of an agent; a live agent restarts onto it. The caller checks that
    /// the new code loads *before* calling this, so a broken script never replaces a working
    /// one.
    pub fn reload(&self, name: &str, factory: Factory) -> Result<(), SupervisorError> {
        let live = {
            let agents = self.inner.borrow();
            let entry = agents
                .get(name)
                .ok_or_else(|| SupervisorError::Unknown(name.into()))?;
            *entry.factory.borrow_mut() = factory;
            entry.task.as_ref().is_some_and(|t| !t.is_finished())
        };
        if live {
            self.restart(name, "reloaded")?;
        }
        Ok(())
    }

    /// Stops every live agent concurrently and waits for all of them.
    pub async fn shutdown(&self, reason: &str) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut agents = self.inner.borrow_mut();
            agents
                .values_mut()
                .filter_map(|entry| {
                    if let Some(tx) = entry.commands.take() {
                        tx.send(Command::Stop {
                            reason: reason.to_string(),
                        });
                    }
                    entry.task.take()
                })
                .collect()
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}
