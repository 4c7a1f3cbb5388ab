//! One live Lua agent: its state, definition and `self`, and how its handlers run — each
//! in a coroutine of its own, metered, under the stall limit, with the messages it took
//! from the bus settled when it ends and `self.state` saved after it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Function, IntoLuaMulti, Lua, LuaSerdeExt, Table, Value};

use super::methods::{self, AgentSelf};
use crate::agents::{Agent, AgentError, Context, Handled, TaskOutcome, TaskWork, TaskWorker};
use crate::bus::Message;
use crate::runtime::driver::{error_message, Metered};
use crate::runtime::host;
use crate::store::SharedStore;

/// One live instance: its own Lua state, the definition table and `self`. Shared (`Rc`)
/// so tasks running side by side (`tasks.concurrency`) each hold it.
pub struct LuaAgent(pub(super) Rc<Instance>);

pub(super) struct Instance {
    pub(super) lua: Lua,
    pub(super) def: Table,
    pub(super) this: Table,
    pub(super) name: String,
    pub(super) store: Option<SharedStore>,
    /// `self.state` as last saved (JSON text), to skip writes when nothing changed.
    pub(super) saved: RefCell<Option<String>>,
    pub(super) stall: Option<Duration>,
}

/// The agent's life is over: end what its state still runs in the background (spawned
/// tasks, bus subscriptions), so a stopped agent neither acts nor stays in memory.
impl Drop for LuaAgent {
    fn drop(&mut self) {
        if let Ok(h) = crate::runtime::host(&self.0.lua) {
            h.spawned.abort_all();
        }
    }
}

impl Instance {
    /// Runs handler `name` (if the script defined it) with `self` and `args` in a coroutine
    /// of its own, then saves `self.state` if it changed. Also returns a `self:stop()`
    /// request, if the handler made one.
    async fn handle(
        &self,
        name: &str,
        args: impl IntoLuaMulti,
    ) -> (Result<Value, AgentError>, Option<String>) {
        let handler = match self.def.get::<Value>(name) {
            Ok(Value::Function(f)) => f,
            _ => return (Ok(Value::Nil), None),
        };
        let args = match (self.this.clone(), args).into_lua_multi(&self.lua) {
            Ok(args) => args,
            Err(e) => return (Err(AgentError::new(format!("{name}: {e}"))), None),
        };
        let out = run(&self.lua, handler, args, self.stall, name).await;
        self.save_state().await;
        let stop = self
            .lua
            .app_data_ref::<AgentSelf>()
            .and_then(|me| me.stop.borrow_mut().take());
        (out, stop)
    }

    /// A handler whose result does not matter, with its stop request forwarded to `ctx`.
    async fn handle_in(
        &self,
        ctx: &mut Context,
        name: &str,
        args: impl IntoLuaMulti,
    ) -> Result<(), AgentError> {
        let (out, stop) = self.handle(name, args).await;
        if let Some(reason) = stop {
            ctx.stop(reason);
        }
        out.map(|_| ())
    }

    /// `on_task`: the task as a table in, its result as JSON out.
    async fn task(&self, task: TaskWork) -> TaskOutcome {
        let value = match methods::task_table(&self.lua, &task) {
            Ok(v) => v,
            Err(e) => {
                return TaskOutcome {
                    result: Err(AgentError::new(format!("on_task: {e}"))),
                    stop: None,
                }
            }
        };
        let (out, stop) = self.handle("on_task", value).await;
        let result = out.and_then(|v| {
            self.lua
                .from_value(v)
                .map_err(|e| AgentError::new(format!("on_task: result is not JSON: {e}")))
        });
        TaskOutcome { result, stop }
    }

    async fn save_state(&self) {
        let Some(store) = &self.store else { return };
        let state: serde_json::Value = match self.this.get::<Value>("state") {
            Ok(v @ Value::Table(_)) => match self.lua.from_value(v) {
                Ok(json) => json,
                Err(e) => {
                    tracing::warn!(agent = %self.name, error = %e, "self.state cannot be saved as JSON");
                    return;
                }
            },
            _ => return,
        };
        let text = state.to_string();
        if self.saved.borrow().as_deref() == Some(text.as_str()) {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        match store.save_agent_state(self.name.clone(), state, now).await {
            Ok(()) => *self.saved.borrow_mut() = Some(text),
            Err(e) => tracing::warn!(agent = %self.name, error = %e, "cannot save self.state"),
        }
    }
}

/// Runs `func` as a metered coroutine. With a stall limit, the instruction hook's deadline
/// is armed too (for this coroutine's resumes only: others of the state may run between
/// them), so a loop that never suspends is interrupted as well. When the coroutine ends,
/// the last message it took with `bus.recv` and left unsettled is settled before this
/// returns: a handler's work is acknowledged when the handler completes.
pub(super) async fn run(
    lua: &Lua,
    func: Function,
    args: impl IntoLuaMulti,
    stall: Option<Duration>,
    what: &str,
) -> Result<Value, AgentError> {
    let meter = host(lua)
        .map_err(|e| AgentError::new(e.to_string()))?
        .meter
        .clone();
    let deadline = stall.map(|s| std::time::Instant::now() + s);
    let thread = lua
        .create_thread(func)
        .map_err(|e| AgentError::new(error_message(lua, &e)))?;
    let result = match thread.clone().into_async::<Value>(args) {
        Ok(fut) => {
            WithDeadline {
                meter: meter.clone(),
                deadline,
                inner: Metered::new(meter, fut),
            }
            .await
        }
        Err(e) => Err(e),
    };
    let failure = result.as_ref().err().map(|e| error_message(lua, e));
    crate::lua::bus::settle_thread(lua, &thread, failure.as_deref()).await;
    result.map_err(|e| {
        let stalled = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        match (stalled, stall) {
            (true, Some(limit)) => AgentError::new(format!(
                "stalled: {what} ran past stall_timeout ({})",
                crate::units::format_duration(limit)
            )),
            _ => {
                let message = error_message(lua, &e);
                // The traceback goes to the log; the reason stays one readable line.
                match message.split_once("\nstack traceback:") {
                    Some((head, trace)) => {
                        tracing::debug!(traceback = %trace, "agent handler error");
                        AgentError::new(head)
                    }
                    None => AgentError::new(message),
                }
            }
        }
    })
}

/// Arms the state's hook deadline around each resume of one coroutine, so coroutines of
/// one state running side by side each keep their own stall limit.
struct WithDeadline<F> {
    meter: Rc<crate::runtime::Meter>,
    deadline: Option<std::time::Instant>,
    inner: F,
}

impl<F: std::future::Future + Unpin> std::future::Future for WithDeadline<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.meter.deadline.set(self.deadline);
        let out = std::pin::Pin::new(&mut self.inner).poll(cx);
        self.meter.deadline.set(None);
        out
    }
}

impl Agent for LuaAgent {
    fn on_start<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(self.0.handle_in(ctx, "on_start", ()))
    }

    fn on_message<'a>(&'a mut self, ctx: &'a mut Context, message: Message) -> Handled<'a> {
        Box::pin(async move {
            let msg = methods::to_table(&self.0.lua, &message)
                .map_err(|e| AgentError::new(format!("on_message: {e}")))?;
            self.0.handle_in(ctx, "on_message", msg).await
        })
    }

    fn on_task<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        task: TaskWork,
    ) -> Handled<'a, serde_json::Value> {
        Box::pin(async move {
            let TaskOutcome { result, stop } = self.0.task(task).await;
            if let Some(reason) = stop {
                ctx.stop(reason);
            }
            result
        })
    }

    fn task_worker(&mut self) -> Option<TaskWorker> {
        let instance = self.0.clone();
        Some(Rc::new(move |task| {
            let instance = instance.clone();
            Box::pin(async move { instance.task(task).await })
        }))
    }

    fn on_tick<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(self.0.handle_in(ctx, "on_tick", ()))
    }

    fn on_idle<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(self.0.handle_in(ctx, "on_idle", ()))
    }

    fn on_stop<'a>(&'a mut self, ctx: &'a mut Context, reason: &'a str) -> Handled<'a> {
        Box::pin(self.0.handle_in(ctx, "on_stop", reason))
    }
}
