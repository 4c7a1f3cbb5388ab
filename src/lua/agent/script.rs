//! A Lua script as a supervised [`Agent`].
//!
//! [`ScriptAgent`] is what the daemon knows about one configured agent: its script, limits
//! and grants, and the shared bus and store. Every start builds a **fresh sandboxed state**
//! and loads the script again ([`ScriptAgent::instantiate`]), so a crash, an endless loop
//! or a memory bomb is contained in that state and forgotten on restart — other agents
//! never share it. [`ScriptAgent::probe`] loads the script once to read its definition,
//! which is also how `reload` checks a new version before it replaces the running one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};

pub use super::instance::LuaAgent;
use super::instance::{run, Instance};
use super::methods::{self, AgentSelf};
use super::AgentControl;
use crate::agents::{Agent, AgentError, Factory, Overrides, Supervisor};
use crate::bus::Bus;
use crate::config::Config;
use crate::runtime::driver::error_message;
use crate::runtime::{host, loader, new_state, StateOptions};
use crate::store::SharedStore;

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
    pub store: Option<SharedStore>,
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
        read_definition(&agent.0.lua, &agent.0.def)
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
        opts.lazy_libs = true;
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
            // Agents of one script share its compilation (see `load_compiled`).
            Some(text) => loader::load_compiled(&lua, text.as_bytes(), &format!("@{script}")),
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
            Some(store) => super::state_loads::load(store, &self.name)
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
        Ok(LuaAgent(Rc::new(Instance {
            lua,
            def,
            this,
            name: self.name.clone(),
            store: self.store.clone(),
            saved: RefCell::new(saved.map(|v| v.to_string())),
            stall: self.stall,
        })))
    }
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
