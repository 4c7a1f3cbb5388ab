//! `dreamos.agent`: `define{...}` for agent scripts (Lua, `stdlib/dreamos/agent.lua`) and
//! `list`, `status`, `start`, `stop`, `restart` for operators (native, here).
//!
//! The operator functions act on the supervisor of the process, which the daemon puts in a
//! state's app data ([`AgentControl`]) for the states allowed to steer agents: the Captain
//! and `repl --attach`. Anywhere else they return `nil, err` (kind `unavailable`).
//!
//! - [`script`]: a Lua script as an [`Agent`](crate::agents::Agent): one fresh, sandboxed
//!   state per start, `self.state` persisted in the store after each handler.
//! - `instance`: one live agent — its handlers, each in a coroutine of its own state.
//! - `state_loads`: agents starting together read their `self.state` in one store read.
//! - [`methods`]: what `self` can do (`send`, `publish`, `reply`, `log`, `stop`,
//!   `claim_task`) and how bus messages become Lua tables.

mod define;
mod instance;
pub mod methods;
pub mod script;
mod state_loads;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

use super::support::{fail, required_str};
use crate::agents::Supervisor;

pub use script::{Definition, ScriptAgent};

/// App data of a state that may steer agents.
pub struct AgentControl {
    pub supervisor: Supervisor,
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let check = lua.create_function(define::check)?;
    // The operators are built when first looked up: nearly every agent state loads this
    // module for `define` and never steers another agent.
    let operators = lua.create_table()?;
    let lazy = lua.create_table()?;
    lazy.set(
        "__index",
        lua.create_function(|lua, (operators, key): (Table, Value)| {
            let Value::String(name) = &key else {
                return Ok(Value::Nil);
            };
            let Some(f) = operator(lua, &name.to_string_lossy())? else {
                return Ok(Value::Nil);
            };
            operators.raw_set(key, f.clone())?;
            Ok(Value::Function(f))
        })?,
    )?;
    operators.set_metatable(Some(lazy))?;
    // The SDK chunk adds `define` and returns the module table.
    let source = crate::runtime::loader::EMBEDDED
        .iter()
        .find(|(name, _)| *name == "dreamos.agent")
        .map(|(_, source)| *source)
        .ok_or_else(|| mlua::Error::runtime("dreamos.agent: the SDK is not embedded"))?;
    let (text, chunk_name) = crate::runtime::loader::embedded_source("dreamos.agent", source);
    crate::runtime::loader::load_compiled(lua, text.as_bytes(), &chunk_name)?
        .call((check, operators))
}

/// One operator function (`list`, `status`, `start`, `restart`, `stop`), or `None`.
fn operator(lua: &Lua, name: &str) -> mlua::Result<Option<mlua::Function>> {
    let f = match name {
        "list" => lua.create_function(list)?,
        "status" => lua.create_function(|lua, name: Value| {
            let name = required_str(lua, "agent.status", "name", &name)?;
            let Some(sup) = supervisor(lua) else {
                return unavailable(lua);
            };
            match sup.status(&name) {
                Ok(status) => Ok(MultiValue::from_iter([lua.to_value(&status)?])),
                Err(e) => fail(lua, "not_found", e.to_string()),
            }
        })?,
        "start" => lua.create_function(|lua, name: Value| {
            let name = required_str(lua, "agent.start", "name", &name)?;
            let Some(sup) = supervisor(lua) else {
                return unavailable(lua);
            };
            done(lua, sup.start(&name, "started by a script"))
        })?,
        "restart" => lua.create_function(|lua, name: Value| {
            let name = required_str(lua, "agent.restart", "name", &name)?;
            let Some(sup) = supervisor(lua) else {
                return unavailable(lua);
            };
            done(lua, sup.restart(&name, "restarted by a script"))
        })?,
        "stop" => lua.create_async_function(|lua, name: Value| async move {
            let name = required_str(&lua, "agent.stop", "name", &name)?;
            let Some(sup) = supervisor(&lua) else {
                return unavailable(&lua);
            };
            let result = sup.stop(&name, "stopped by a script").await;
            done(&lua, result)
        })?,
        _ => return Ok(None),
    };
    Ok(Some(f))
}

fn supervisor(lua: &Lua) -> Option<Supervisor> {
    lua.app_data_ref::<AgentControl>()
        .map(|c| c.supervisor.clone())
}

fn unavailable(lua: &Lua) -> mlua::Result<MultiValue> {
    fail(
        lua,
        "unavailable",
        "no agent supervisor in this state: agent control works inside `dreamos serve` \
         (the Captain, `dreamos repl --attach`); from a shell use `dreamos agent ...`",
    )
}

fn done(lua: &Lua, result: Result<(), crate::agents::SupervisorError>) -> mlua::Result<MultiValue> {
    match result {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(e) => fail(lua, "refused", e.to_string()),
    }
}

fn list(lua: &Lua, (): ()) -> mlua::Result<MultiValue> {
    let Some(sup) = supervisor(lua) else {
        return unavailable(lua);
    };
    let out = lua.create_table()?;
    for status in sup.list() {
        out.push(lua.to_value(&status)?)?;
    }
    Ok(MultiValue::from_iter([Value::Table(out)]))
}
