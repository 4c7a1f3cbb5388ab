//! A Lua script as a supervised [`Agent`].
//!
//! [`ScriptAgent`] is what the daemon knows about one configured agent: its script, limits
//! and grants, and the shared bus and store. Every start builds a **fresh sandboxed state**
//! and loads the script again ([`ScriptAgent::instantiate`]), so a crash, an endless loop
//! or a memory bomb is contained in that state and forgotten on restart — other agents
//! never share it. [`ScriptAgent::probe`] loads the script once to read its definition,
//! which is also how `reload` checks a new version before it replaces the running one.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Function, IntoLuaMulti, Lua, LuaSerdeExt, Table, Value};

use super::methods::{self, AgentSelf};
use super::AgentControl;
use crate::agents::{
    Agent, AgentError, Context, Factory, Handled, Overrides, Supervisor, TaskWork,
};
use crate::bus::{Bus, Message};
use crate::config::Config;
use crate::runtime::driver::{error_message, Metered};
use crate::runtime::{host, loader, new_state, StateOptions};
use crate::store::{AgentStore, SqliteStore};

/// Recent log lines of one agent (`self:log`), shared with the control API.
#[derive(Clone, Default)]
pub struct LogRing(Arc<Mutex<VecDeque<String>>>);

/// Lines kept per agent.
const LOG_LINES: usize = 500;

impl LogRing {
    pub fn push(&self, line: &str) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() >= LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(format!("{stamp} {line}"));
        }
    }

    /// Every kept line, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One configured Lua agent.
#[derive(Clone)]
pub struct ScriptAgent {
    /// The agent's name (its inbox is `agent:<name>`).
    pub name: String,
    /// The script, resolved against the configuration's directory.
    pub script: PathBuf,
    pub config: Arc<Config>,
    pub bus: Option<Bus>,
    pub store: Option<Arc<SqliteStore>>,
    /// Grants beyond `[sandbox] allow` (the `[[agents]]` entry's `allow`).
    pub allow: Vec<String>,
    pub memory_limit: Option<u64>,
    /// Given to agents allowed to steer others (the Captain).
    pub control: Option<Supervisor>,
    /// Stall limit for handlers, enforced inside Lua too (a loop that never yields).
    pub stall: Option<Duration>,
    pub logs: LogRing,
    /// The script's text as read at start or at the last good reload. Every restart loads
    /// this text, not the file, so a broken edit on disk never replaces a working agent
    /// behind the operator's back; `None` reads the file at each start.
    pub source: Option<Arc<str>>,
    /// The task service, for `on_task` agents (`task:progress`).
    pub tasks: Option<crate::tasks::Tasks>,
}

/// What a script declared in `agent.define{...}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definition {
    pub name: Option<String>,
    pub overrides: Overrides,
    /// `tasks = { category, concurrency }`.
    pub tasks: Option<(String, usize)>,
}

impl ScriptAgent {
    /// A copy holding the script's current text from disk (for start-up and reload).
    pub fn reread(&self) -> Result<ScriptAgent, AgentError> {
        let text = std::fs::read_to_string(&self.script)
            .map_err(|e| AgentError::new(format!("cannot read {}: {e}", self.script.display())))?;
        Ok(ScriptAgent {
            source: Some(text.into()),
            ..self.clone()
        })
    }

    /// Loads the script in a throw-away state and reads its definition.
    pub async fn probe(&self) -> Result<Definition, AgentError> {
        let agent = self.instantiate().await?;
        read_definition(&agent.lua, &agent.def)
    }

    /// Builds a factory that instantiates this agent afresh on every start.
    pub fn factory(self) -> Factory {
        let me = Rc::new(self);
        Rc::new(move || {
            let me = me.clone();
            Box::pin(async move {
                me.instantiate()
                    .await
                    .map(|a| Box::new(a) as Box<dyn Agent>)
            })
        })
    }

    /// A new state with the script loaded, its definition checked and `self` built.
    pub async fn instantiate(&self) -> Result<LuaAgent, AgentError> {
        let script = self.script.display().to_string();
        let mut opts = StateOptions::new(script.clone());
        opts.extra_allow = self.allow.clone();
        opts.memory_limit = self.memory_limit;
        // An agent lives as long as the daemon: no whole-run wall-clock timeout; stalls are
        // limited per handler instead.
        opts.timeout = Some(Duration::ZERO);
        let lua =
            new_state(self.config.clone(), opts).map_err(|e| AgentError::new(e.to_string()))?;
        let setup = |e: mlua::Error| AgentError::new(format!("{script}: {e}"));
        {
            // One store and one bus for every agent: `dreamos.kv`, `dreamos.bus` and
            // `dreamos.tasks` in this state use the daemon's, so agents wake each other
            // instead of polling the database.
            let h = host(&lua).map_err(setup)?;
            if let Some(store) = &self.store {
                let _ = h.store.set(store.clone());
            }
            if let Some(bus) = &self.bus {
                let _ = h.bus.set(bus.clone());
            }
        }
        lua.set_app_data(AgentSelf {
            name: self.name.clone(),
            bus: self.bus.clone(),
            stop: Default::default(),
            logs: Some(self.logs.clone()),
            tasks: self.tasks.clone(),
        });
        if let Some(supervisor) = &self.control {
            lua.set_app_data(AgentControl {
                supervisor: supervisor.clone(),
            });
        }
        let chunk = match &self.source {
            Some(text) => lua
                .load(text.as_bytes())
                .set_name(format!("@{script}"))
                .set_mode(mlua::chunk::ChunkMode::Text)
                .into_function(),
            None => loader::load_text_file(&lua, &self.script),
        }
        .map_err(|e| AgentError::new(error_message(&lua, &e)))?;
        // `return agent.define{...}` is a tail call, so a define error carries no line of
        // the script: name the script when the message does not.
        let returned = run(&lua, chunk, (), self.stall, "loading the script")
            .await
            .map_err(|e| match e.0.contains(&script) {
                true => e,
                false => AgentError::new(format!("{script}: {}", e.0)),
            })?;
        let sdk: Table = lua
            .globals()
            .get::<Function>("require")
            .and_then(|r| r.call("dreamos.agent"))
            .map_err(setup)?;
        let is_def: bool = sdk
            .get::<Function>("is_definition")
            .and_then(|f| f.call(returned.clone()))
            .map_err(setup)?;
        let Value::Table(def) = returned else {
            return Err(AgentError::new(format!(
                "{script}: an agent script must return agent.define{{...}}, it returned {}",
                returned.type_name()
            )));
        };
        if !is_def {
            return Err(AgentError::new(format!(
                "{script}: an agent script must return agent.define{{...}}, it returned a plain table"
            )));
        }
        let saved = match &self.store {
            Some(store) => store
                .load_agent_state(self.name.clone())
                .await
                .map_err(|e| AgentError::new(format!("loading self.state: {e}")))?,
            None => None,
        };
        let this = lua.create_table().map_err(setup)?;
        this.set("name", self.name.as_str()).map_err(setup)?;
        let state = match &saved {
            Some(v) => lua.to_value(v).map_err(setup)?,
            None => match def.get::<Value>("state").map_err(setup)? {
                Value::Table(initial) => Value::Table(initial),
                _ => Value::Table(lua.create_table().map_err(setup)?),
            },
        };
        this.set("state", state).map_err(setup)?;
        let mt = lua.create_table().map_err(setup)?;
        mt.set("__index", methods::methods(&lua).map_err(setup)?)
            .map_err(setup)?;
        this.set_metatable(Some(mt)).map_err(setup)?;
        Ok(LuaAgent {
            lua,
            def,
            this,
            name: self.name.clone(),
            store: self.store.clone(),
            saved: saved.map(|v| v.to_string()),
            stall: self.stall,
        })
    }
}

/// One live instance: its own Lua state, the definition table and `self`.
pub struct LuaAgent {
    lua: Lua,
    def: Table,
    this: Table,
    name: String,
    store: Option<Arc<SqliteStore>>,
    /// `self.state` as last saved (JSON text), to skip writes when nothing changed.
    saved: Option<String>,
    stall: Option<Duration>,
}

impl LuaAgent {
    /// Runs handler `name` (if the script defined it) with `self` and `args`, then saves
    /// `self.state` if it changed and forwards `self:stop()`.
    async fn handle(
        &mut self,
        ctx: &mut Context,
        name: &str,
        args: impl IntoLuaMulti,
    ) -> Result<Value, AgentError> {
        let handler = match self.def.get::<Value>(name) {
            Ok(Value::Function(f)) => f,
            _ => return Ok(Value::Nil),
        };
        let args = (self.this.clone(), args)
            .into_lua_multi(&self.lua)
            .map_err(|e| AgentError::new(format!("{name}: {e}")))?;
        let out = run(&self.lua, handler, args, self.stall, name).await;
        self.save_state().await;
        if let Some(me) = self.lua.app_data_ref::<AgentSelf>() {
            if let Some(reason) = me.stop.borrow_mut().take() {
                ctx.stop(reason);
            }
        }
        out
    }

    async fn save_state(&mut self) {
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
        if self.saved.as_deref() == Some(text.as_str()) {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        match store.save_agent_state(self.name.clone(), state, now).await {
            Ok(()) => self.saved = Some(text),
            Err(e) => tracing::warn!(agent = %self.name, error = %e, "cannot save self.state"),
        }
    }
}

/// Runs `func` as a metered coroutine. With a stall limit, the instruction hook's deadline
/// is armed too, so a loop that never suspends is interrupted as well.
async fn run(
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
    meter.deadline.set(deadline);
    let result = async {
        let thread = lua.create_thread(func)?;
        Metered::new(meter.clone(), thread.into_async::<Value>(args)?).await
    }
    .await;
    meter.deadline.set(None);
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

fn read_definition(lua: &Lua, def: &Table) -> Result<Definition, AgentError> {
    let bad = |e: mlua::Error| AgentError::new(format!("agent.define: {e}"));
    let duration = |key: &str| -> Result<Option<Duration>, AgentError> {
        let v: Value = def.get(key).map_err(bad)?;
        if v.is_nil() {
            return Ok(None);
        }
        crate::lua::support::duration(lua, "agent.define", key, &v)
            .map(Some)
            .map_err(|e| AgentError::new(e.to_string()))
    };
    let count = |key: &str| -> Result<Option<u32>, AgentError> {
        match def.get::<Option<f64>>(key).map_err(bad)? {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => {
                Ok(Some(n as u32))
            }
            Some(n) => Err(AgentError::new(format!(
                "agent.define: {key} must be a whole number >= 0, got {n}"
            ))),
            None => Ok(None),
        }
    };
    let restart = match def.get::<Option<String>>("restart").map_err(bad)? {
        Some(r) => Some(r.parse().map_err(AgentError::new)?),
        None => None,
    };
    let tasks = match def.get::<Option<Table>>("tasks").map_err(bad)? {
        Some(t) => {
            let category: String = t
                .get::<Option<String>>("category")
                .map_err(bad)?
                .unwrap_or_default();
            let concurrency = t
                .get::<Option<u32>>("concurrency")
                .map_err(bad)?
                .unwrap_or(1)
                .max(1);
            Some((category, concurrency as usize))
        }
        None => None,
    };
    Ok(Definition {
        name: def.get("name").map_err(bad)?,
        overrides: Overrides {
            restart,
            max_restarts: count("max_restarts")?,
            restart_window: duration("restart_window")?,
            idle_timeout: duration("idle_timeout")?,
            resume_after: duration("resume_after")?,
            max_resumes: count("max_resumes")?,
            resume_cooldown: duration("resume_cooldown")?,
            stall_timeout: duration("stall_timeout")?,
            tick: duration("tick")?,
        },
        tasks,
    })
}

impl Agent for LuaAgent {
    fn on_start<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(async move { self.handle(ctx, "on_start", ()).await.map(|_| ()) })
    }

    fn on_message<'a>(&'a mut self, ctx: &'a mut Context, message: Message) -> Handled<'a> {
        Box::pin(async move {
            let msg = methods::to_table(&self.lua, &message)
                .map_err(|e| AgentError::new(format!("on_message: {e}")))?;
            self.handle(ctx, "on_message", msg).await.map(|_| ())
        })
    }

    fn on_task<'a>(
        &'a mut self,
        ctx: &'a mut Context,
        task: TaskWork,
    ) -> Handled<'a, serde_json::Value> {
        Box::pin(async move {
            let value = methods::task_table(&self.lua, &task)
                .map_err(|e| AgentError::new(format!("on_task: {e}")))?;
            let out = self.handle(ctx, "on_task", value).await?;
            self.lua
                .from_value(out)
                .map_err(|e| AgentError::new(format!("on_task: result is not JSON: {e}")))
        })
    }

    fn on_tick<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(async move { self.handle(ctx, "on_tick", ()).await.map(|_| ()) })
    }

    fn on_idle<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(async move { self.handle(ctx, "on_idle", ()).await.map(|_| ()) })
    }

    fn on_stop<'a>(&'a mut self, ctx: &'a mut Context, reason: &'a str) -> Handled<'a> {
        Box::pin(async move { self.handle(ctx, "on_stop", reason).await.map(|_| ()) })
    }
}
