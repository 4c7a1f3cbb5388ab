//! Supervisor behaviour on tokio's paused clock: policies, intensity, backoff, idle
//! nudges, resumes, stalls and orderly stops. No test sleeps for real; transitions carry
//! the paused clock's timestamps, so delays are asserted exactly.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, LocalBoxFuture};
use tokio::sync::mpsc;

use super::*;
use crate::bus::{Delivery, Message};
use crate::store::{AgentStore, AgentTransition, Millis, Priority, StoreError};

/// The durable log, in memory.
#[derive(Default)]
struct MemStore(Mutex<Vec<AgentTransition>>);

impl AgentStore for MemStore {
    fn record_agent_transition(&self, t: AgentTransition) -> BoxFuture<'_, Result<(), StoreError>> {
        if let Ok(mut log) = self.0.lock() {
            log.push(t);
        }
        Box::pin(async { Ok(()) })
    }
    fn agent_transitions(
        &self,
        agent: String,
        _limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AgentTransition>, StoreError>> {
        let rows = self.rows(&agent);
        Box::pin(async move { Ok(rows) })
    }
    fn load_agent_state(
        &self,
        _agent: String,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
    fn save_agent_state(
        &self,
        _agent: String,
        _state: serde_json::Value,
        _now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

impl MemStore {
    fn rows(&self, agent: &str) -> Vec<AgentTransition> {
        self.0
            .lock()
            .map(|log| log.iter().filter(|t| t.agent == agent).cloned().collect())
            .unwrap_or_default()
    }

    /// `from>to` steps of one agent, for compact assertions.
    fn steps(&self, agent: &str) -> Vec<String> {
        self.rows(agent)
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect()
    }

    /// Time of the n-th (0-based) transition into `to`.
    fn at(&self, agent: &str, to: &str, n: usize) -> Millis {
        self.rows(agent)
            .iter()
            .filter(|t| t.to == to)
            .nth(n)
            .map(|t| t.at)
            .unwrap_or_else(|| panic!("no {n}th transition to {to}: {:?}", self.steps(agent)))
    }
}

/// What the test agent does.
#[derive(Clone, Default)]
struct Behaviour {
    /// The first N starts fail in `on_start`.
    fail_starts: u32,
    /// Every message handler fails.
    fail_messages: bool,
    /// A message with payload "hang" never finishes.
    hang_on: bool,
    /// A message with payload "quit" asks to stop normally.
    quit_on: bool,
}

#[derive(Clone, Default)]
struct Probe {
    log: Rc<RefCell<Vec<String>>>,
    starts: Rc<Cell<u32>>,
}

impl Probe {
    fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
    fn push(&self, s: impl Into<String>) {
        self.log.borrow_mut().push(s.into());
    }
}

struct TestAgent {
    behaviour: Behaviour,
    probe: Probe,
}

impl Agent for TestAgent {
    fn on_start<'a>(&'a mut self, _ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(async move {
            let n = self.probe.starts.get() + 1;
            self.probe.starts.set(n);
            self.probe.push("start");
            if n <= self.behaviour.fail_starts {
                return Err(AgentError::new(format!("boom {n}")));
            }
            Ok(())
        })
    }

    fn on_message<'a>(&'a mut self, ctx: &'a mut Context, message: Message) -> Handled<'a> {
        Box::pin(async move {
            let text = message.payload.as_str().unwrap_or("").to_string();
            self.probe.push(format!("message:{text}"));
            if self.behaviour.hang_on && text == "hang" {
                std::future::pending::<()>().await;
            }
            if self.behaviour.quit_on && text == "quit" {
                ctx.stop("done");
            }
            if self.behaviour.fail_messages {
                return Err(AgentError::new("bad message"));
            }
            Ok(())
        })
    }

    fn on_tick<'a>(&'a mut self, _ctx: &'a mut Context) -> Handled<'a> {
        self.probe.push("tick");
        Box::pin(async { Ok(()) })
    }

    fn on_idle<'a>(&'a mut self, _ctx: &'a mut Context) -> Handled<'a> {
        self.probe.push("idle");
        Box::pin(async { Ok(()) })
    }

    fn on_stop<'a>(&'a mut self, _ctx: &'a mut Context, reason: &'a str) -> Handled<'a> {
        self.probe.push(format!("stop:{reason}"));
        Box::pin(async { Ok(()) })
    }
}

fn factory(behaviour: Behaviour, probe: Probe) -> Factory {
    Rc::new(move || {
        let agent = TestAgent {
            behaviour: behaviour.clone(),
            probe: probe.clone(),
        };
        Box::pin(async move { Ok(Box::new(agent) as Box<dyn Agent>) })
    })
}

/// An in-memory inbox: the test pushes deliveries, settlements are logged.
struct TestInbox {
    rx: Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>>,
    settled: Rc<RefCell<Vec<String>>>,
}

impl Inbox for TestInbox {
    fn next(&mut self) -> LocalBoxFuture<'_, Result<Delivery, String>> {
        Box::pin(async move {
            match self.rx.lock().await.recv().await {
                Some(d) => Ok(d),
                None => std::future::pending().await,
            }
        })
    }
    fn ack<'a>(&'a mut self, d: &'a Delivery) -> LocalBoxFuture<'a, ()> {
        self.settled
            .borrow_mut()
            .push(format!("ack:{}", d.message.id));
        Box::pin(async {})
    }
    fn nack<'a>(&'a mut self, d: &'a Delivery, error: &'a str) -> LocalBoxFuture<'a, ()> {
        self.settled
            .borrow_mut()
            .push(format!("nack:{}:{error}", d.message.id));
        Box::pin(async {})
    }
    fn release(&mut self) -> LocalBoxFuture<'_, ()> {
        self.settled.borrow_mut().push("release".into());
        Box::pin(async {})
    }
}

struct Harness {
    sup: Supervisor,
    store: Arc<MemStore>,
    tx: mpsc::UnboundedSender<Delivery>,
    settled: Rc<RefCell<Vec<String>>>,
    probe: Probe,
    next_id: Cell<i64>,
}

impl Harness {
    fn new(spec: Supervision, behaviour: Behaviour) -> Harness {
        let store = Arc::new(MemStore::default());
        let sup = Supervisor::new(Recorder::new(
            Some(store.clone() as Arc<dyn AgentStore>),
            None,
        ));
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Rc::new(tokio::sync::Mutex::new(rx));
        let settled = Rc::new(RefCell::new(Vec::new()));
        let probe = Probe::default();
        let inbox: InboxFactory = {
            let (rx, settled) = (rx.clone(), settled.clone());
            Rc::new(move |_name: &str| {
                Box::new(TestInbox {
                    rx: rx.clone(),
                    settled: settled.clone(),
                }) as Box<dyn Inbox>
            })
        };
        sup.add_with_inbox("a", spec, factory(behaviour, probe.clone()), Some(inbox))
            .expect("add");
        Harness {
            sup,
            store,
            tx,
            settled,
            probe,
            next_id: Cell::new(1),
        }
    }

    fn send(&self, text: &str) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let message = Message {
            id,
            from: "test".into(),
            to: "agent:a".into(),
            channel: "agent:a".into(),
            payload: serde_json::json!(text),
            priority: Priority::Normal,
            headers: BTreeMap::new(),
            correlation_id: None,
            reply_to: None,
            created_at: 0,
            expires_at: None,
            max_attempts: 5,
            backoff: None,
        };
        let _ = self.tx.send(Delivery {
            message,
            attempt: 1,
            deadline: 0,
        });
    }

    fn state(&self) -> AgentState {
        self.sup.status("a").expect("status").state
    }

    fn steps(&self) -> Vec<String> {
        self.store.steps("a")
    }
}

/// Lets every ready task run without moving the clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Advances the paused clock in small steps, letting tasks run between them.
async fn advance(d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        let s = step.min(left);
        tokio::time::advance(s).await;
        settle().await;
        left -= s;
    }
}

fn quiet() -> Supervision {
    Supervision {
        idle_timeout: None,
        resume_after: None,
        stall_timeout: None,
        ..Supervision::default()
    }
}

async fn local<F: std::future::Future<Output = ()>>(f: F) {
    tokio::task::LocalSet::new().run_until(f).await;
}

#[test]
fn policies_follow_otp() {
    assert!(RestartPolicy::Permanent.restarts_after(false));
    assert!(RestartPolicy::Permanent.restarts_after(true));
    assert!(!RestartPolicy::Transient.restarts_after(false));
    assert!(RestartPolicy::Transient.restarts_after(true));
    assert!(!RestartPolicy::Temporary.restarts_after(true));
    assert_eq!("transient".parse(), Ok(RestartPolicy::Transient));
    assert!("forever"
        .parse::<RestartPolicy>()
        .unwrap_err()
        .contains("permanent, transient or temporary"));
}

#[test]
fn every_state_round_trips_and_the_documented_path_is_legal() {
    for s in AgentState::ALL {
        assert_eq!(s.as_str().parse(), Ok(s));
    }
    use AgentState::*;
    for (a, b) in [
        (Stopped, Starting),
        (Starting, Running),
        (Running, Idle),
        (Idle, Running),
        (Running, Stopping),
        (Stopping, Stopped),
        (Running, Crashed),
        (Crashed, Backoff),
        (Backoff, Starting),
        (Crashed, Failed),
        (Failed, Starting),
    ] {
        assert!(a.can_go(b), "{a} -> {b}");
    }
    assert!(!Stopped.can_go(Running));
    assert!(!Failed.can_go(Running));
}

#[tokio::test(start_paused = true)]
async fn intensity_fails_after_max_restarts_in_the_window_and_backoff_doubles() {
    let spec = Supervision {
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(3),
        ..quiet()
    };
    let mut tracker = RestartTracker::new();
    let t0 = tokio::time::Instant::now();
    let s = |n| Decision::Restart(Duration::from_secs(n));
    assert_eq!(tracker.decide(&spec, true, t0), s(1));
    assert_eq!(tracker.decide(&spec, true, t0), s(2));
    assert_eq!(
        tracker.decide(&spec, true, t0),
        s(3),
        "capped at backoff_max"
    );
    assert_eq!(tracker.decide(&spec, true, t0), Decision::Fail);
    // Once the window has passed, the budget is back.
    let later = t0 + Duration::from_secs(61);
    assert_eq!(tracker.decide(&spec, true, later), s(1));
    let temporary = Supervision {
        restart: RestartPolicy::Temporary,
        ..spec
    };
    assert_eq!(tracker.decide(&temporary, true, later), Decision::Stay);
}

#[tokio::test(start_paused = true)]
async fn a_crashing_agent_backs_off_exponentially_then_fails() {
    local(async {
        let spec = Supervision {
            max_restarts: 3,
            backoff_base: Duration::from_secs(1),
            ..quiet()
        };
        let behaviour = Behaviour {
            fail_starts: 100,
            ..Behaviour::default()
        };
        let h = Harness::new(spec, behaviour);
        h.sup.start("a", "test").expect("start");
        advance(Duration::from_secs(10)).await;
        assert_eq!(h.state(), AgentState::Failed);
        assert_eq!(h.probe.starts.get(), 4, "first start + 3 restarts");
        // Backoff 1s, 2s, 4s between a crash and the next start.
        for (n, secs) in [(0, 1000), (1, 2000), (2, 4000)] {
            let waited = h.store.at("a", "starting", n + 1) - h.store.at("a", "crashed", n);
            assert!(
                (secs..secs + 150).contains(&waited),
                "restart {n}: {waited}ms"
            );
        }
        let last = h.store.rows("a").pop().expect("a transition");
        assert!(
            last.reason.contains("more than 3 restarts within 1m"),
            "{}",
            last.reason
        );
        assert!(
            last.reason.contains("on_start failed: boom 4"),
            "{}",
            last.reason
        );
        // An operator start gives it another go.
        h.sup.start("a", "operator").expect("start again");
        settle().await;
        assert!(h.steps().contains(&"failed>starting".to_string()));
        assert_eq!(h.probe.starts.get(), 5);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn transient_stays_down_after_a_normal_exit_but_restarts_after_a_crash() {
    local(async {
        let spec = Supervision {
            restart: RestartPolicy::Transient,
            ..quiet()
        };
        let behaviour = Behaviour {
            fail_starts: 1,
            quit_on: true,
            ..Behaviour::default()
        };
        let h = Harness::new(spec, behaviour);
        h.sup.start("a", "test").expect("start");
        advance(Duration::from_secs(2)).await;
        assert_eq!(h.state(), AgentState::Running, "{:?}", h.steps());
        h.send("quit");
        settle().await;
        assert_eq!(h.state(), AgentState::Stopped);
        assert_eq!(
            h.steps(),
            [
                "stopped>starting",
                "starting>crashed",
                "crashed>backoff",
                "backoff>starting",
                "starting>running",
                "running>stopping",
                "stopping>stopped",
            ]
        );
        assert!(h.probe.log().contains(&"stop:done".to_string()));
        assert_eq!(h.settled.borrow().as_slice(), ["ack:1", "release"]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn temporary_is_not_restarted_and_a_failed_message_goes_back_to_the_queue() {
    local(async {
        let spec = Supervision {
            restart: RestartPolicy::Temporary,
            ..quiet()
        };
        let behaviour = Behaviour {
            fail_messages: true,
            ..Behaviour::default()
        };
        let h = Harness::new(spec, behaviour);
        h.sup.start("a", "test").expect("start");
        settle().await;
        h.send("x");
        settle().await;
        assert_eq!(h.state(), AgentState::Stopped);
        assert_eq!(
            h.settled.borrow().as_slice(),
            ["nack:1:on_message failed: bad message", "release"]
        );
        let status = h.sup.status("a").expect("status");
        assert!(
            status.reason.starts_with("temporary agent not restarted"),
            "{}",
            status.reason
        );
        assert_eq!(status.errors, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn idle_nudges_then_resumes_at_most_max_resumes_with_cooldown() {
    local(async {
        let spec = Supervision {
            idle_timeout: Some(Duration::from_secs(10)),
            resume_after: Some(Duration::from_secs(5)),
            max_resumes: 2,
            resume_cooldown: Duration::from_secs(30),
            ..quiet()
        };
        let h = Harness::new(spec, Behaviour::default());
        h.sup.start("a", "test").expect("start");
        settle().await;
        advance(Duration::from_secs(9)).await;
        assert_eq!(h.state(), AgentState::Running);
        advance(Duration::from_secs(1)).await;
        assert_eq!(h.state(), AgentState::Idle);
        assert_eq!(h.probe.log(), ["start", "idle"]);
        // A message wakes it.
        h.send("hello");
        settle().await;
        assert_eq!(h.state(), AgentState::Running);
        // Quiet again: idle at +10s, first resume 5s later.
        advance(Duration::from_secs(15)).await;
        assert_eq!(h.sup.status("a").expect("status").resumes, 1);
        assert_eq!(h.probe.starts.get(), 2);
        // The second resume waits for the 30s cooldown, not just idle+resume_after.
        advance(Duration::from_secs(200)).await;
        assert_eq!(h.probe.starts.get(), 3, "only max_resumes resumes");
        assert_eq!(h.state(), AgentState::Idle);
        let first = h.store.at("a", "starting", 1);
        let second = h.store.at("a", "starting", 2);
        assert!(second - first >= 30_000, "cooldown: {}ms", second - first);
        let reasons: Vec<String> = h.store.rows("a").into_iter().map(|t| t.reason).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("resume 1/2: idle for 5s")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("resume 2/2")),
            "{reasons:?}"
        );
        assert!(h
            .probe
            .log()
            .iter()
            .any(|l| l.starts_with("stop:resume 1/2")));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handler_is_interrupted_and_the_agent_restarted() {
    local(async {
        let spec = Supervision {
            stall_timeout: Some(Duration::from_secs(30)),
            backoff_base: Duration::from_secs(10),
            ..quiet()
        };
        let behaviour = Behaviour {
            hang_on: true,
            ..Behaviour::default()
        };
        let h = Harness::new(spec, behaviour);
        h.sup.start("a", "test").expect("start");
        settle().await;
        h.send("hang");
        advance(Duration::from_secs(29)).await;
        assert_eq!(h.state(), AgentState::Running);
        advance(Duration::from_secs(2)).await;
        assert_eq!(h.state(), AgentState::Backoff);
        assert_eq!(
            h.settled.borrow().as_slice(),
            [
                "nack:1:stalled: on_message ran past stall_timeout (30s)",
                "release"
            ]
        );
        advance(Duration::from_secs(10)).await;
        assert_eq!(h.state(), AgentState::Running);
        assert_eq!(h.sup.status("a").expect("status").restarts, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ticks_run_on_schedule_and_stop_runs_on_stop() {
    local(async {
        let spec = Supervision {
            tick: Some(Duration::from_secs(30)),
            ..quiet()
        };
        let h = Harness::new(spec, Behaviour::default());
        h.sup.start("a", "test").expect("start");
        settle().await;
        advance(Duration::from_secs(95)).await;
        let ticks = h.probe.log().iter().filter(|l| *l == "tick").count();
        assert_eq!(ticks, 3);
        assert!(matches!(
            h.sup.start("a", "again"),
            Err(SupervisorError::AlreadyRunning { .. })
        ));
        h.sup.stop("a", "operator stop").await.expect("stop");
        assert_eq!(h.state(), AgentState::Stopped);
        assert_eq!(
            h.probe.log().last().map(String::as_str),
            Some("stop:operator stop")
        );
        assert_eq!(
            h.sup.stop("a", "again").await,
            Err(SupervisorError::NotRunning("a".into()))
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stop_during_backoff_and_restart_by_operator() {
    local(async {
        let spec = Supervision {
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(60),
            ..quiet()
        };
        let behaviour = Behaviour {
            fail_starts: 1,
            ..Behaviour::default()
        };
        let h = Harness::new(spec, behaviour);
        h.sup.start("a", "test").expect("start");
        settle().await;
        assert_eq!(h.state(), AgentState::Backoff);
        // An operator restart skips the backoff.
        h.sup.restart("a", "operator").expect("restart");
        settle().await;
        assert_eq!(h.state(), AgentState::Running);
        h.sup.restart("a", "operator again").expect("restart");
        settle().await;
        assert_eq!(h.state(), AgentState::Running);
        assert!(h.steps().ends_with(&[
            "running>stopping".to_string(),
            "stopping>starting".to_string(),
            "starting>running".to_string(),
        ]));
        h.sup.shutdown("daemon stopping").await;
        assert_eq!(h.state(), AgentState::Stopped);
        for step in h.store.rows("a") {
            let (from, to): (AgentState, AgentState) = (
                step.from.parse().expect("from"),
                step.to.parse().expect("to"),
            );
            assert!(from.can_go(to), "illegal step {from} -> {to}");
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stopping_agent_releases_what_it_fetched_ahead_before_on_stop() {
    local(async {
        let h = Harness::new(quiet(), Behaviour::default());
        h.sup.start("a", "test").expect("start");
        settle().await;
        h.send("x");
        settle().await;
        assert_eq!(h.settled.borrow().as_slice(), ["ack:1"]);
        h.sup.stop("a", "operator stop").await.expect("stop");
        assert_eq!(h.settled.borrow().as_slice(), ["ack:1", "release"]);
        assert_eq!(
            h.probe.log().last().map(String::as_str),
            Some("stop:operator stop")
        );
        // Every instance releases when it ends, a restart included.
        h.sup.start("a", "again").expect("start");
        settle().await;
        h.sup.restart("a", "operator restart").expect("restart");
        settle().await;
        h.sup.shutdown("daemon stopping").await;
        assert_eq!(
            h.settled.borrow().as_slice(),
            ["ack:1", "release", "release", "release"]
        );
    })
    .await;
}
