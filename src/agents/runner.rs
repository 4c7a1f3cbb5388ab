//! One agent's life: start an instance, feed it messages, ticks and idle nudges, interrupt
//! stalled handlers, and decide after every exit whether and when it starts again.
//!
//! The runner is a single local task per agent. Everything that happens to the agent goes
//! through its `select!` loop, so there is no locking between timers and handlers: an idle
//! timer cannot fire while a message is being handled, and a stop command waits for the
//! handler in flight (bounded by `stall_timeout`) instead of tearing it down midway.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};

use super::agent::{Agent, AgentError, Context, Factory, TaskWork};
use super::inbox::Inbox;
use super::lifecycle::{update, Lifecycle};
use super::policy::{Decision, RestartTracker, Supervision};
use super::state::AgentState;
use super::work::TaskFeed;
use crate::bus::{Bus, Delivery};
use crate::units::format_duration;

/// What an operator (through the supervisor) asks of a running agent.
#[derive(Debug)]
pub enum Command {
    /// Stop for good (until started again), running `on_stop` first.
    Stop { reason: String },
    /// Stop and start again at once, outside the restart intensity.
    Restart { reason: String },
}

/// How one instance ended.
#[derive(Debug)]
enum Exit {
    /// Told to stop.
    Shutdown(String),
    /// Told to restart.
    Restart(String),
    /// Idle past `resume_after`: start fresh.
    Resume(String),
    /// The agent asked to stop (`ctx.stop`).
    Normal(String),
    /// A handler failed or stalled.
    Crash(String),
}

/// What woke the event loop.
enum Event {
    Command(Option<Command>),
    Task(Option<TaskWork>),
    Message(Result<Box<Delivery>, String>),
    Tick,
    Idle,
    Resume,
}

pub struct Runner {
    pub spec: Supervision,
    /// Shared with the supervisor so `reload` swaps the next instance's code.
    pub factory: Rc<RefCell<Factory>>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub life: Lifecycle,
    pub inbox: Option<Box<dyn Inbox>>,
    pub bus: Option<Bus>,
    /// Survives across instances: intensity counts restarts, not lives.
    pub tracker: RestartTracker,
    /// Resumes since the last real activity, and when the last one happened.
    resumes: u32,
    last_resume: Option<Instant>,
}

impl Runner {
    pub fn new(
        spec: Supervision,
        factory: Rc<RefCell<Factory>>,
        commands: mpsc::UnboundedReceiver<Command>,
        life: Lifecycle,
        inbox: Option<Box<dyn Inbox>>,
        bus: Option<Bus>,
    ) -> Runner {
        Runner {
            spec,
            factory,
            commands,
            life,
            inbox,
            bus,
            tracker: RestartTracker::new(),
            resumes: 0,
            last_resume: None,
        }
    }

    /// Runs the agent until it is stopped, fails, or its policy leaves it down.
    pub async fn run(mut self, reason: String) {
        let mut reason = reason;
        loop {
            self.life.go(AgentState::Starting, reason).await;
            let exit = self.run_instance().await;
            reason = match exit {
                Exit::Shutdown(why) => {
                    self.life.go(AgentState::Stopped, why).await;
                    return;
                }
                Exit::Restart(why) => {
                    update(&self.life.status, |s| s.restarts += 1);
                    why
                }
                Exit::Resume(why) => {
                    update(&self.life.status, |s| s.restarts += 1);
                    why
                }
                Exit::Normal(why) => match self.after_exit(false, why).await {
                    Some(next) => next,
                    None => return,
                },
                Exit::Crash(why) => {
                    update(&self.life.status, |s| s.errors += 1);
                    self.life.go(AgentState::Crashed, why.clone()).await;
                    match self.after_exit(true, why).await {
                        Some(next) => next,
                        None => return,
                    }
                }
            };
        }
    }

    /// Applies the policy after an exit the agent did not ask the operator for. Returns the
    /// reason for the next start, or `None` when the agent stays down.
    async fn after_exit(&mut self, abnormal: bool, why: String) -> Option<String> {
        match self.tracker.decide(&self.spec, abnormal, Instant::now()) {
            Decision::Stay => {
                let reason = if abnormal {
                    format!("{} agent not restarted after: {why}", self.spec.restart)
                } else {
                    why
                };
                self.life.go(AgentState::Stopped, reason).await;
                None
            }
            Decision::Fail => {
                let reason = format!(
                    "more than {} restarts within {}; last exit: {why}",
                    self.spec.max_restarts,
                    format_duration(self.spec.restart_window)
                );
                self.life.go(AgentState::Failed, reason).await;
                None
            }
            Decision::Restart(delay) => {
                update(&self.life.status, |s| s.restarts += 1);
                let reason = format!("restarting in {} after: {why}", format_duration(delay));
                self.life.go(AgentState::Backoff, reason).await;
                match self.wait_backoff(delay).await {
                    Some(stop) => {
                        self.life.go(AgentState::Stopped, stop).await;
                        None
                    }
                    None => Some(format!("restart after {}", format_duration(delay))),
                }
            }
        }
    }

    /// Sleeps through the backoff; a stop command ends it (returned), a restart skips it.
    async fn wait_backoff(&mut self, delay: Duration) -> Option<String> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            cmd = self.commands.recv() => match cmd {
                None => Some("supervisor shut down".into()),
                Some(Command::Stop { reason }) => Some(reason),
                Some(Command::Restart { .. }) => None,
            },
        }
    }

    /// One life of the agent, from building it to `on_stop`.
    async fn run_instance(&mut self) -> Exit {
        let factory = self.factory.borrow().clone();
        let mut agent = match factory().await {
            Ok(agent) => agent,
            Err(e) => return Exit::Crash(format!("cannot start: {e}")),
        };
        let mut ctx = Context::new(self.life.name.clone(), self.bus.clone());
        if let Err(exit) = call(
            self.spec.stall_timeout,
            "on_start",
            agent.on_start(&mut ctx),
        )
        .await
        {
            return exit;
        }
        self.life.go(AgentState::Running, "started").await;
        let exit = match ctx.stop_requested.take() {
            Some(why) => Exit::Normal(why),
            None => self.event_loop(agent.as_mut(), &mut ctx).await,
        };
        let why = match &exit {
            Exit::Crash(_) => return exit,
            Exit::Shutdown(w) | Exit::Restart(w) | Exit::Resume(w) | Exit::Normal(w) => w.clone(),
        };
        self.life.go(AgentState::Stopping, why.clone()).await;
        match tokio::time::timeout(self.spec.stop_timeout, agent.on_stop(&mut ctx, &why)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(agent = %self.life.name, error = %e, "on_stop failed"),
            Err(_) => tracing::warn!(agent = %self.life.name, "on_stop ran past stop_timeout"),
        }
        exit
    }

    /// Handles events until something ends this instance.
    async fn event_loop(&mut self, agent: &mut dyn Agent, ctx: &mut Context) -> Exit {
        let stall = self.spec.stall_timeout;
        let mut last_activity = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut feed = match (&self.life.recorder.tasks, &self.spec.task_category) {
            (Some(tasks), Some(category)) => {
                Some(TaskFeed::start(tasks.clone(), &self.life.name, category))
            }
            _ => None,
        };
        let mut ticker = self.spec.tick.map(|every| {
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        loop {
            let idle_at = match (idle_since, self.spec.idle_timeout) {
                (None, Some(timeout)) => Some(last_activity + timeout),
                _ => None,
            };
            let resume_at = idle_since.and_then(|since| self.resume_at(since));
            let event = tokio::select! {
                biased;
                cmd = self.commands.recv() => Event::Command(cmd),
                d = next_message(&mut self.inbox) => Event::Message(d.map(Box::new)),
                w = next_task(&mut feed) => Event::Task(w),
                _ = next_tick(&mut ticker) => Event::Tick,
                _ = sleep_until(idle_at.unwrap_or_else(far_future)), if idle_at.is_some() => Event::Idle,
                _ = sleep_until(resume_at.unwrap_or_else(far_future)), if resume_at.is_some() => Event::Resume,
            };
            let mut active = false;
            match event {
                Event::Command(None) => return Exit::Shutdown("supervisor shut down".into()),
                Event::Command(Some(Command::Stop { reason })) => return Exit::Shutdown(reason),
                Event::Command(Some(Command::Restart { reason })) => return Exit::Restart(reason),
                Event::Message(Err(e)) => {
                    tracing::warn!(agent = %self.life.name, error = %e, "inbox error");
                }
                Event::Message(Ok(delivery)) => {
                    let message = delivery.message.clone();
                    let result = call(stall, "on_message", agent.on_message(ctx, message)).await;
                    if let Some(inbox) = self.inbox.as_mut() {
                        match &result {
                            Ok(()) => inbox.ack(&delivery).await,
                            Err(Exit::Crash(why)) => inbox.nack(&delivery, why).await,
                            Err(_) => inbox.nack(&delivery, "agent stopped").await,
                        }
                    }
                    if let Err(exit) = result {
                        return exit;
                    }
                    update(&self.life.status, |s| s.handled += 1);
                    active = true;
                }
                Event::Task(None) => feed = None,
                Event::Task(Some(work)) => {
                    let lease = work.lease.clone();
                    let result = call(stall, "on_task", agent.on_task(ctx, work)).await;
                    if let Some(feed) = &feed {
                        settle_task(&feed.tasks, &lease, &result).await;
                    }
                    if let Err(exit) = result {
                        return exit;
                    }
                    update(&self.life.status, |s| s.handled += 1);
                    active = true;
                }
                Event::Tick => {
                    if let Err(exit) = call(stall, "on_tick", agent.on_tick(ctx)).await {
                        return exit;
                    }
                }
                Event::Idle => {
                    idle_since = Some(Instant::now());
                    let quiet = self.spec.idle_timeout.unwrap_or_default();
                    let reason = format!("no activity for {}", format_duration(quiet));
                    self.life.go(AgentState::Idle, reason).await;
                    if let Err(exit) = call(stall, "on_idle", agent.on_idle(ctx)).await {
                        return exit;
                    }
                }
                Event::Resume => return self.resume(idle_since),
            }
            if std::mem::take(&mut ctx.touched) {
                active = true;
            }
            if active {
                last_activity = Instant::now();
                self.resumes = 0;
                let now = self.life.recorder.now();
                update(&self.life.status, |s| {
                    s.last_activity = Some(now);
                    s.resumes = 0;
                });
                if idle_since.take().is_some() {
                    self.life.go(AgentState::Running, "activity").await;
                }
            }
            if let Some(why) = ctx.stop_requested.take() {
                return Exit::Normal(why);
            }
        }
    }

    /// When an agent idle since `since` is due for a resume, if it may have one.
    fn resume_at(&self, since: Instant) -> Option<Instant> {
        let after = self.spec.resume_after?;
        if self.resumes >= self.spec.max_resumes {
            return None;
        }
        let due = since + after;
        Some(match self.last_resume {
            Some(last) => due.max(last + self.spec.resume_cooldown),
            None => due,
        })
    }

    /// Counts and announces a resume; the instance then restarts.
    fn resume(&mut self, idle_since: Option<Instant>) -> Exit {
        self.resumes += 1;
        self.last_resume = Some(Instant::now());
        let idle_for = idle_since.map_or(Duration::ZERO, |t| t.elapsed());
        let (n, max) = (self.resumes, self.spec.max_resumes);
        update(&self.life.status, |s| s.resumes = n);
        self.life.recorder.announce(json!({
            "event": "resume",
            "agent": self.life.name,
            "attempt": n,
            "max": max,
            "idle_for_ms": idle_for.as_millis() as u64,
            "at": self.life.recorder.now(),
        }));
        Exit::Resume(format!(
            "resume {n}/{max}: idle for {}",
            format_duration(idle_for)
        ))
    }
}

/// Runs one handler under the stall timeout. A stall drops the handler's future, which
/// interrupts it at its next suspension; a Lua agent also arms its instruction hook with
/// the same deadline so a loop that never suspends is stopped too.
async fn call<T>(
    stall: Option<Duration>,
    what: &str,
    handler: impl Future<Output = Result<T, AgentError>>,
) -> Result<T, Exit> {
    let result = match stall {
        Some(limit) => match tokio::time::timeout(limit, handler).await {
            Ok(result) => result,
            Err(_) => {
                return Err(Exit::Crash(format!(
                    "stalled: {what} ran past stall_timeout ({})",
                    format_duration(limit)
                )))
            }
        },
        None => handler.await,
    };
    result.map_err(|e| match e.0.starts_with("stalled:") {
        // The agent noticed the stall itself (a Lua loop stopped by its hook).
        true => Exit::Crash(e.0),
        false => Exit::Crash(format!("{what} failed: {e}")),
    })
}

async fn next_message(inbox: &mut Option<Box<dyn Inbox>>) -> Result<Delivery, String> {
    match inbox {
        Some(inbox) => inbox.next().await,
        None => std::future::pending().await,
    }
}

async fn next_task(feed: &mut Option<TaskFeed>) -> Option<TaskWork> {
    match feed {
        Some(feed) => feed.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes or fails a task from its handler's outcome. A refusal (the lease lapsed
/// while the handler ran) is logged: the task service already moved the task on.
async fn settle_task(
    tasks: &crate::tasks::Tasks,
    lease: &crate::tasks::Lease,
    result: &Result<serde_json::Value, Exit>,
) {
    let outcome = match result {
        Ok(value) => {
            let value = (!value.is_null()).then(|| value.clone());
            tasks.complete(lease, value).await
        }
        Err(Exit::Crash(why)) => tasks.fail(lease, why, true).await.map(|_| ()),
        Err(_) => tasks.fail(lease, "agent stopped", true).await.map(|_| ()),
    };
    if let Err(e) = outcome {
        tracing::warn!(task = lease.id, error = %e, "cannot settle task");
    }
}

async fn next_tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A deadline that never comes (for `select!` branches that are disabled anyway).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}
