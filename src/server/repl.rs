//! `repl --attach`: REPL sessions inside the daemon. Each session is a
//! [`LocalEvaluator`] — the same state the plain REPL uses — living on the daemon's
//! `LocalSet` with the daemon's store and the agent supervisor at hand (`agent.list()`),
//! and `print` captured so the output goes back to the client instead of the daemon's
//! terminal.
//!
//! A session runs in its own local task, so a long evaluation never blocks the control
//! loop. A client that gives up (Ctrl-C drops its request) closes the answer channel, and
//! the session drops the running chunk: that cancels async waits, as Ctrl-C does locally.
//! A loop that never yields is stopped by the instruction budget, as in any script.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::agents::Supervisor;
use crate::cli::repl::eval::{Chunk, Evaluator, LocalEvaluator, Mode, Outcome};
use crate::config::Config;
use crate::lua::agent::AgentControl;
use crate::store::SharedStore;

/// One chunk to evaluate, as the client sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRequest {
    pub source: String,
    pub name: String,
    /// `prompt`, `final` or `script`.
    pub mode: String,
}

/// What evaluating came to, with everything `print` wrote meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReply {
    /// `values`, `incomplete`, `failed` or `exit`.
    pub outcome: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub line: String,
    pub pos: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteReply {
    pub start: usize,
    pub candidates: Vec<String>,
}

/// Requests to one session.
pub enum SessionRequest {
    Eval(EvalRequest, oneshot::Sender<EvalReply>),
    Complete(CompleteRequest, oneshot::Sender<CompleteReply>),
}

/// The daemon's live sessions.
pub struct Sessions {
    config: Arc<Config>,
    supervisor: Supervisor,
    store: SharedStore,
    /// The daemon's bus, so `bus.send` in the session wakes agents at once.
    bus: crate::bus::Bus,
    next: u64,
    live: HashMap<u64, mpsc::UnboundedSender<SessionRequest>>,
}

impl Sessions {
    pub fn new(
        config: Arc<Config>,
        supervisor: Supervisor,
        store: SharedStore,
        bus: crate::bus::Bus,
    ) -> Sessions {
        Sessions {
            config,
            supervisor,
            store,
            bus,
            next: 1,
            live: HashMap::new(),
        }
    }

    /// Opens a session; returns its id and the preloaded globals (for `.help`).
    pub fn open(&mut self) -> Result<(u64, Vec<String>), String> {
        let ev = LocalEvaluator::new(
            self.config.clone(),
            Vec::new(),
            Arc::new(AtomicBool::new(false)),
        )
        .map_err(|e| e.to_string())?;
        let lua = ev.lua();
        lua.set_app_data(AgentControl {
            supervisor: self.supervisor.clone(),
        });
        if let Ok(h) = crate::runtime::host(lua) {
            let _ = h.store.set(self.store.clone());
            let _ = h.bus.set(self.bus.clone());
        }
        let output = Rc::new(RefCell::new(String::new()));
        capture_print(lua, output.clone()).map_err(|e| e.to_string())?;
        let preloaded = ev.preloaded();
        let id = self.next;
        self.next += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::task::spawn_local(run_session(ev, output, rx));
        self.live.insert(id, tx);
        Ok((id, preloaded))
    }

    pub fn send(&mut self, id: u64, request: SessionRequest) -> Result<(), String> {
        let tx = self
            .live
            .get(&id)
            .ok_or_else(|| format!("no REPL session {id} (it ended, or the daemon restarted)"))?;
        tx.send(request).map_err(|_| {
            self.live.remove(&id);
            format!("REPL session {id} has ended")
        })
    }

    pub fn close(&mut self, id: u64) {
        // Dropping the sender ends the session task and frees its Lua state.
        self.live.remove(&id);
    }
}

/// `print` writes into `output` (tab-separated, like Lua's), which each reply carries.
fn capture_print(lua: &mlua::Lua, output: Rc<RefCell<String>>) -> mlua::Result<()> {
    let print = lua.create_function(move |lua, args: mlua::MultiValue| {
        let mut line = String::new();
        for (i, v) in args.into_iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            let text = match lua.coerce_string(v.clone())? {
                Some(s) => s.to_string_lossy(),
                None => match &v {
                    mlua::Value::Nil => "nil".into(),
                    mlua::Value::Boolean(b) => b.to_string(),
                    other => format!("{}: {:p}", other.type_name(), other.to_pointer()),
                },
            };
            line.push_str(&text);
        }
        line.push('\n');
        output.borrow_mut().push_str(&line);
        Ok(())
    })?;
    lua.globals().set("print", print)
}

async fn run_session(
    mut ev: LocalEvaluator,
    output: Rc<RefCell<String>>,
    mut requests: mpsc::UnboundedReceiver<SessionRequest>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            SessionRequest::Eval(req, mut reply) => {
                let mode = match req.mode.as_str() {
                    "final" => Mode::Final,
                    "script" => Mode::Script,
                    _ => Mode::Prompt,
                };
                let chunk = Chunk {
                    source: req.source.as_bytes(),
                    name: &req.name,
                    mode,
                };
                let outcome = tokio::select! {
                    outcome = ev.eval(chunk) => Some(outcome),
                    _ = reply.closed() => None,
                };
                let printed = std::mem::take(&mut *output.borrow_mut());
                let Some(outcome) = outcome else { continue };
                let _ = reply.send(to_reply(outcome, printed));
            }
            SessionRequest::Complete(req, reply) => {
                let c = ev.complete(&req.line, req.pos).await;
                let _ = reply.send(CompleteReply {
                    start: c.start,
                    candidates: c.candidates,
                });
            }
        }
    }
}

fn to_reply(outcome: Outcome, output: String) -> EvalReply {
    let mut reply = EvalReply {
        outcome: String::new(),
        values: Vec::new(),
        error: String::new(),
        code: 0,
        output,
    };
    match outcome {
        Outcome::Incomplete => reply.outcome = "incomplete".into(),
        Outcome::Values(values) => {
            reply.outcome = "values".into();
            reply.values = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
        }
        Outcome::Failed(e) => {
            reply.outcome = "failed".into();
            reply.error = e;
        }
        // `os.exit` ends the client's session, never the daemon.
        Outcome::Exit(code) => {
            reply.outcome = "exit".into();
            reply.code = code;
        }
    }
    reply
}

/// Back to an [`Outcome`] on the client side; prints the captured output first.
pub fn outcome_of(reply: EvalReply) -> Outcome {
    match reply.outcome.as_str() {
        "incomplete" => Outcome::Incomplete,
        "values" => Outcome::Values(reply.values.into_iter().map(String::into_bytes).collect()),
        "exit" => Outcome::Exit(reply.code),
        _ => Outcome::Failed(reply.error),
    }
}
