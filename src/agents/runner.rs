//! One agent's life: start an instance, feed it messages, ticks and idle nudges, interrupt
//! stalled handlers, and decide after every exit whether and when it starts again.
//!
//! The runner is a single local task per agent. Everything that happens to the agent goes
//! through its `select!` loop, so there is no locking between timers and handlers: an idle
//! timer cannot fire while a message is being handled, and a stop command waits for the
//! handler in flight (bounded by `stall_timeout`) instead of tearing it down midway.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::agent::{Agent, Context, Factory, TaskWorker};
use super::commands::CommandReceiver;
use super::handler::{call, far_future, next_message, next_task, next_tick};
use super::inbox::Inbox;
use super::lifecycle::{update, Lifecycle};
use super::policy::{Decision, RestartTracker, Supervision};
use super::state::AgentState;
use super::work::{settle_task, Claimed, Finished, InFlight, TaskFeed};
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
    Task(Option<Claimed>),
    TaskDone(Finished),
    Message(Result<Box<Delivery>, String>),
    Tick,
    Idle,
    Resume,
}

pub struct Runner {
    pub spec: Supervision,
    /// Shared with the supervisor so `reload` swaps the next instance's code.
    pub factory: Rc<RefCell<Factory>>,
    pub commands: CommandReceiver,
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
        commands: CommandReceiver,
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
        if let Err(why) = call(
            self.spec.stall_timeout,
            "on_start",
            agent.on_start(&mut ctx),
        )
        .await
        {
            return Exit::Crash(why);
        }
        self.life.go(AgentState::Running, "started").await;
        let mut work = self.start_work(agent.as_mut());
        let exit = match ctx.stop_requested.take() {
            Some(why) => Exit::Normal(why),
            None => self.event_loop(agent.as_mut(), &mut ctx, &mut work).await,
        };
        // No more messages or tasks for this instance: what it fetched ahead goes back to
        // the queue now, and tasks in flight finish (or, after a crash, go back too).
        if let Some(inbox) = self.inbox.as_mut() {
            inbox.release().await;
        }
        let tasks = work.feed.as_ref().map(|f| f.tasks.clone());
        if let Some(feed) = work.feed.take() {
            feed.close().await;
        }
        let crashed = matches!(exit, Exit::Crash(_));
        work.running.finish(tasks.as_ref(), crashed).await;
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

    /// Starts claiming tasks for an agent that declared a category. Several at once only
    /// when the agent offers a worker to run them side by side.
    fn start_work(&self, agent: &mut dyn Agent) -> Work {
        let (Some(tasks), Some(category)) = (&self.life.recorder.tasks, &self.spec.task_category)
        else {
            return Work::default();
        };
        let worker = match self.spec.task_concurrency {
            0 | 1 => None,
            _ => agent.task_worker(),
        };
        let concurrency = match worker {
            Some(_) => self.spec.task_concurrency,
            None => 1,
        };
        Work {
            feed: Some(TaskFeed::start(
                tasks.clone(),
                &self.life.name,
                category,
                concurrency,
            )),
            worker,
            running: InFlight::default(),
        }
    }

    /// Handles events until something ends this instance.
    async fn event_loop(
        &mut self,
        agent: &mut dyn Agent,
        ctx: &mut Context,
        work: &mut Work,
    ) -> Exit {
        let stall = self.spec.stall_timeout;
        let mut last_activity = Instant::now();
        let mut idle_since: Option<Instant> = None;
        let mut ticker = self.spec.tick.map(|every| {
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        loop {
            // Tasks running side by side are activity: no idle nudge while any runs.
            let idle_at = match (idle_since, self.spec.idle_timeout, work.running.is_empty()) {
                (None, Some(timeout), true) => Some(last_activity + timeout),
                _ => None,
            };
            let resume_at = idle_since.and_then(|since| self.resume_at(since));
            let busy = !work.running.is_empty();
            let event = tokio::select! {
                biased;
                cmd = self.commands.recv() => Event::Command(cmd),
                done = work.running.next(), if busy => Event::TaskDone(done),
                d = next_message(&mut self.inbox) => Event::Message(d.map(Box::new)),
                w = next_task(&mut work.feed) => Event::Task(w),
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
                            Err(why) => inbox.nack(&delivery, why).await,
                        }
                    }
                    if let Err(why) = result {
                        return Exit::Crash(why);
                    }
                    update(&self.life.status, |s| s.handled += 1);
                    active = true;
                }
                Event::Task(None) => work.feed = None,
                Event::Task(Some(claimed)) => {
                    let Some(feed) = &work.feed else { continue };
                    if let Some(worker) = &work.worker {
                        let tasks = feed.tasks.clone();
                        work.running.spawn(worker, claimed, tasks, stall);
                        active = true;
                    } else {
                        let Claimed { work: task, permit } = claimed;
                        let lease = task.lease.clone();
                        let result = call(stall, "on_task", agent.on_task(ctx, task)).await;
                        settle_task(&feed.tasks, &lease, &result).await;
                        drop(permit);
                        if let Err(why) = result {
                            return Exit::Crash(why);
                        }
                        update(&self.life.status, |s| s.handled += 1);
                        active = true;
                    }
                }
                Event::TaskDone(done) => {
                    if let Some(why) = done.failure {
                        return Exit::Crash(why);
                    }
                    update(&self.life.status, |s| s.handled += 1);
                    active = true;
                    if let Some(why) = done.stop {
                        ctx.stop(why);
                    }
                }
                Event::Tick => {
                    if let Err(why) = call(stall, "on_tick", agent.on_tick(ctx)).await {
                        return Exit::Crash(why);
                    }
                }
                Event::Idle => {
                    idle_since = Some(Instant::now());
                    let quiet = self.spec.idle_timeout.unwrap_or_default();
                    let reason = format!("no activity for {}", format_duration(quiet));
                    self.life.go(AgentState::Idle, reason).await;
                    if let Err(why) = call(stall, "on_idle", agent.on_idle(ctx)).await {
                        return Exit::Crash(why);
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

/// What one instance does with tasks, when it declared a category.
#[derive(Default)]
struct Work {
    feed: Option<TaskFeed>,
    /// Set when tasks run side by side (`tasks.concurrency` > 1 and the agent offers one).
    worker: Option<TaskWorker>,
    running: InFlight,
}
