//! The bridge between the HTTP side (tokio tasks, `Send`) and the supervisor (on the
//! `LocalSet`, `!Send`): handlers send a [`Request`] with a oneshot for the answer, and one
//! local task — the control loop — carries them out in order. Operator actions therefore
//! never race each other, and no lock is shared between the two worlds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::agents::{AgentStatus, Supervisor};
use crate::bus::Bus;
use crate::lua::agent::ScriptAgent;
use crate::store::{AgentStore, AgentTransition};

/// What the control API asks of the daemon.
pub enum Request {
    List(oneshot::Sender<Vec<AgentRow>>),
    Status(String, oneshot::Sender<Result<AgentDetail, Refused>>),
    Act {
        name: String,
        action: Action,
        reply: oneshot::Sender<Result<String, Refused>>,
    },
    Logs(String, oneshot::Sender<Result<Vec<String>, Refused>>),
    Metrics(oneshot::Sender<String>),
    /// Every schedule with its next runs (the scheduler lives on this thread).
    Schedules(oneshot::Sender<Vec<crate::scheduler::ScheduleInfo>>),
    /// Starts a run of a schedule now.
    RunSchedule(String, oneshot::Sender<Result<String, Refused>>),
    /// Opens a REPL session: its id and preloaded globals.
    ReplOpen(oneshot::Sender<Result<(u64, Vec<String>), Refused>>),
    /// Hands a request to a session; the answer comes on the request's own channel.
    Repl {
        session: u64,
        request: super::repl::SessionRequest,
        ack: oneshot::Sender<Result<(), Refused>>,
    },
    ReplClose(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Reload,
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "restart" => Ok(Action::Restart),
            "reload" => Ok(Action::Reload),
            other => Err(format!(
                "unknown action '{other}' (expected start, stop, restart or reload)"
            )),
        }
    }
}

/// Why a request was refused; `not_found` maps to 404, the rest to 409 or 422.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub kind: &'static str,
    pub error: String,
}

impl Refused {
    fn new(kind: &'static str, error: impl Into<String>) -> Refused {
        Refused {
            kind,
            error: error.into(),
        }
    }
}

/// One line of `dreamos agent list`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRow {
    #[serde(flatten)]
    pub status: AgentStatus,
    /// Messages waiting in `agent:<name>` plus those being handled.
    pub inbox: u64,
    /// The node whose lease places the agent (`None`: no node holds it yet).
    pub node: Option<String>,
    /// That node's lease lapsed: it stopped renewing, and another node takes over soon.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub node_lapsed: bool,
}

/// `dreamos agent status NAME`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub row: AgentRow,
    pub script: String,
    /// The newest transitions, oldest first.
    pub transitions: Vec<AgentTransition>,
}

/// Everything the control loop needs.
pub struct Daemon {
    pub supervisor: Supervisor,
    pub bus: Bus,
    pub store: Arc<dyn AgentStore>,
    /// The configured Lua agents, by name: reload builds the next version from these.
    pub scripts: BTreeMap<String, ScriptAgent>,
    /// For `dreamos_tasks{status}` in `/metrics`.
    pub tasks: Option<crate::tasks::Tasks>,
    /// `repl --attach` sessions.
    pub sessions: super::repl::Sessions,
    /// The daemon's scheduler: the Schedules page and `dreamos_schedule_*` metrics.
    pub scheduler: Option<crate::scheduler::Scheduler>,
    /// The social outbox, for `dreamos_social_posts`.
    pub social: Option<Arc<dyn crate::store::SocialStore>>,
    /// Counts kept from bus events, for `/metrics`.
    pub telemetry: super::telemetry::Telemetry,
    /// Which node runs each agent; `None` runs every agent here without leases.
    pub placement: Option<crate::agents::Placement>,
}

/// Transitions shown by `status`.
const STATUS_TRANSITIONS: usize = 20;

impl Daemon {
    /// Serves requests until every sender is gone.
    pub async fn serve(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = requests.recv().await {
            match request {
                Request::List(reply) => {
                    let _ = reply.send(self.rows().await);
                }
                Request::Status(name, reply) => {
                    let _ = reply.send(self.detail(&name).await);
                }
                Request::Act {
                    name,
                    action,
                    reply,
                } => {
                    let _ = reply.send(self.act(&name, action).await);
                }
                Request::Logs(name, reply) => {
                    let result = match self.scripts.get(&name) {
                        Some(agent) => Ok(agent.logs.lines()),
                        None => Err(Refused::new(
                            "not_found",
                            format!("no agent named '{name}'"),
                        )),
                    };
                    let _ = reply.send(result);
                }
                Request::ReplOpen(reply) => {
                    let opened = self.sessions.open().map_err(|e| Refused::new("invalid", e));
                    let _ = reply.send(opened);
                }
                Request::Repl {
                    session,
                    request,
                    ack,
                } => {
                    let sent = self
                        .sessions
                        .send(session, request)
                        .map_err(|e| Refused::new("not_found", e));
                    let _ = ack.send(sent);
                }
                Request::ReplClose(session) => self.sessions.close(session),
                Request::Metrics(reply) => {
                    let _ = reply.send(self.metrics().await);
                }
                Request::Schedules(reply) => {
                    let list = self
                        .scheduler
                        .as_ref()
                        .map(|s| s.list())
                        .unwrap_or_default();
                    let _ = reply.send(list);
                }
                Request::RunSchedule(name, reply) => {
                    let result = match &self.scheduler {
                        None => Err(Refused::new("not_found", "this daemon runs no scheduler")),
                        Some(s) => s
                            .run_now(&name)
                            .map(|()| format!("{name}: run started"))
                            .map_err(|e| match e {
                                crate::scheduler::SchedulerError::NotFound(_) => {
                                    Refused::new("not_found", e.to_string())
                                }
                                other => Refused::new("conflict", other.to_string()),
                            }),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    async fn metrics(&self) -> String {
        let stats = self.bus.stats().await.ok();
        let counts = match &self.tasks {
            Some(tasks) => tasks.counts().await.ok(),
            None => None,
        };
        let schedules = self.scheduler.as_ref().map(|s| s.list());
        let social = match &self.social {
            Some(store) => super::social::counts(store.as_ref()).await.ok(),
            None => None,
        };
        let agents = self.supervisor.list();
        let telemetry = self.telemetry.lock();
        super::metrics::render(&super::metrics::Snapshot {
            agents: &agents,
            bus: stats.as_ref(),
            bus_counts: self.bus.counts(),
            tasks: counts.as_deref(),
            schedules: schedules.as_deref(),
            telemetry: Some(&telemetry),
            process: super::process::read(),
            social_posts: social.as_deref(),
        })
    }

    async fn rows(&self) -> Vec<AgentRow> {
        let depths: BTreeMap<String, u64> = match self.bus.stats().await {
            Ok(stats) => stats
                .channels
                .into_iter()
                .map(|c| (c.channel, c.queued + c.in_flight))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read inbox depths");
                BTreeMap::new()
            }
        };
        let rows = self
            .supervisor
            .list()
            .into_iter()
            .map(|status| AgentRow {
                inbox: depths
                    .get(&format!("agent:{}", status.name))
                    .copied()
                    .unwrap_or(0),
                status,
                node: None,
                node_lapsed: false,
            })
            .collect();
        match &self.placement {
            Some(placement) => super::placed::locate(placement, self.store.as_ref(), rows).await,
            None => rows,
        }
    }

    async fn detail(&self, name: &str) -> Result<AgentDetail, Refused> {
        let row = self
            .rows()
            .await
            .into_iter()
            .find(|r| r.status.name == name)
            .ok_or_else(|| Refused::new("not_found", format!("no agent named '{name}'")))?;
        let transitions = self
            .store
            .agent_transitions(name.to_string(), STATUS_TRANSITIONS)
            .await
            .unwrap_or_default();
        let script = self
            .scripts
            .get(name)
            .map(|s| s.script.display().to_string())
            .unwrap_or_default();
        Ok(AgentDetail {
            row,
            script,
            transitions,
        })
    }

    async fn act(&self, name: &str, action: Action) -> Result<String, Refused> {
        let refused = |e: crate::agents::SupervisorError| match e {
            crate::agents::SupervisorError::Unknown(_) => Refused::new("not_found", e.to_string()),
            other => Refused::new("conflict", other.to_string()),
        };
        if let (Some(placement), Action::Start | Action::Stop | Action::Restart) =
            (&self.placement, action)
        {
            placement
                .claim_agent(name)
                .await
                .map_err(|e| Refused::new("conflict", e))?;
        }
        match action {
            Action::Start => self
                .supervisor
                .start(name, "started by an operator")
                .map(|()| format!("{name}: starting"))
                .map_err(refused),
            Action::Stop => self
                .supervisor
                .stop(name, "stopped by an operator")
                .await
                .map(|()| format!("{name}: stopped"))
                .map_err(refused),
            Action::Restart => self
                .supervisor
                .restart(name, "restarted by an operator")
                .map(|()| format!("{name}: restarting"))
                .map_err(refused),
            Action::Reload => self.reload(name).await,
        }
    }

    /// Reads the script again and checks that it loads and defines an agent; only then
    /// does the new version replace the old, so a broken edit leaves the agent running
    /// the last good version (as wezterm does with its configuration).
    async fn reload(&self, name: &str) -> Result<String, Refused> {
        let current = self
            .scripts
            .get(name)
            .ok_or_else(|| Refused::new("not_found", format!("no agent named '{name}'")))?;
        let next = current
            .reread()
            .map_err(|e| Refused::new("invalid", e.to_string()))?;
        next.probe().await.map_err(|e| {
            Refused::new(
                "invalid",
                format!("{name}: the new version does not load, still running the old one: {e}"),
            )
        })?;
        self.supervisor
            .reload(name, next.factory())
            .map_err(|e| Refused::new("conflict", e.to_string()))?;
        Ok(format!("{name}: reloaded"))
    }
}
