//! What an agent's `self` can do, and how bus messages look to Lua.
//!
//! `self` is a plain table `{ name = ..., state = {...} }` whose metatable's `__index` is the
//! methods table built here, once per state. The methods find the agent's name and bus in
//! the state's [`AgentSelf`] app data, so a script cannot send in another agent's name by
//! editing `self.name`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

use crate::bus::{Bus, Message, SendOptions};
use crate::lua::support::{fail, misuse, required_str};
use crate::store::Priority;

/// App data of an agent's own state.
pub struct AgentSelf {
    pub name: String,
    /// The daemon's bus; `None` when the agent runs without one (tests).
    pub bus: Option<Bus>,
    /// Set by `self:stop(reason)`; the host turns it into a normal exit after the handler.
    pub stop: RefCell<Option<String>>,
    /// Recent `self:log` lines, for `dreamos agent logs`.
    pub logs: Option<super::script::LogRing>,
    /// The task service, for `task:progress` inside `on_task`.
    pub tasks: Option<crate::tasks::Tasks>,
}

impl AgentSelf {
    fn sender(&self) -> String {
        format!("agent:{}", self.name)
    }
}

/// The methods of `self`: a table that builds each method the first time it is looked up,
/// since most agents use one or two of them and every agent state would pay for all.
pub fn methods(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    let lazy = lua.create_table()?;
    lazy.set(
        "__index",
        lua.create_function(|lua, (m, key): (Table, Value)| {
            let Value::String(name) = &key else {
                return Ok(Value::Nil);
            };
            let Some(f) = method(lua, &name.to_string_lossy())? else {
                return Ok(Value::Nil);
            };
            m.raw_set(key, f.clone())?;
            Ok(Value::Function(f))
        })?,
    )?;
    m.set_metatable(Some(lazy))?;
    Ok(m)
}

/// One method of `self` by name, or `None`.
fn method(lua: &Lua, name: &str) -> mlua::Result<Option<mlua::Function>> {
    let f = match name {
        "send" => lua.create_async_function(
            |lua, (_this, to, payload): (Value, Value, Value)| async move {
                let to = required_str(&lua, "self:send", "to", &to)?;
                let payload = to_json(&lua, "self:send", payload)?;
                let (from, bus) = bus_of(&lua)?;
                let Some(bus) = bus else {
                    return fail(&lua, "unavailable", "this agent runs without a bus");
                };
                match bus.send(&from, &to, &payload, SendOptions::default()).await {
                    Ok(receipt) => Ok(MultiValue::from_iter([Value::Integer(receipt.id())])),
                    Err(e) => fail(&lua, "bus", e.to_string()),
                }
            },
        )?,
        "publish" => {
            lua.create_function(|lua, (_this, topic, payload): (Value, Value, Value)| {
                let topic = required_str(lua, "self:publish", "topic", &topic)?;
                let payload = to_json(lua, "self:publish", payload)?;
                let (from, bus) = bus_of(lua)?;
                let Some(bus) = bus else {
                    return fail(lua, "unavailable", "this agent runs without a bus");
                };
                match bus.publish(&from, &topic, payload) {
                    Ok(n) => Ok(MultiValue::from_iter([Value::Integer(n as i64)])),
                    Err(e) => fail(lua, "bus", e.to_string()),
                }
            })?
        }
        "reply" => lua.create_async_function(
            |lua, (_this, msg, payload): (Value, Value, Value)| async move {
                let Value::Table(msg) = msg else {
                    return Err(misuse(
                        &lua,
                        "self:reply: expected the message given to on_message",
                    ));
                };
                let request = from_table(&msg)?;
                let payload = to_json(&lua, "self:reply", payload)?;
                let (from, bus) = bus_of(&lua)?;
                let Some(bus) = bus else {
                    return fail(&lua, "unavailable", "this agent runs without a bus");
                };
                match bus.reply(&from, &request, &payload).await {
                    Ok(receipt) => Ok(MultiValue::from_iter([Value::Integer(receipt.id())])),
                    Err(e) => fail(&lua, "bus", e.to_string()),
                }
            },
        )?,
        "log" => lua.create_function(|lua, (_this, text): (Value, Value)| {
            let text = match text {
                Value::String(s) => s.to_string_lossy(),
                other => other.to_string()?,
            };
            let me = lua
                .app_data_ref::<AgentSelf>()
                .ok_or_else(|| misuse(lua, "self:log: not an agent state"))?;
            tracing::info!(agent = %me.name, "{text}");
            if let Some(ring) = &me.logs {
                ring.push(&text);
            }
            Ok(())
        })?,
        "stop" => lua.create_function(|lua, (_this, reason): (Value, Option<String>)| {
            let me = lua
                .app_data_ref::<AgentSelf>()
                .ok_or_else(|| misuse(lua, "self:stop: not an agent state"))?;
            *me.stop.borrow_mut() = Some(reason.unwrap_or_else(|| "stopped itself".into()));
            Ok(())
        })?,
        "claim_task" => {
            lua.create_async_function(|lua, (_this, opts): (Value, Option<Table>)| async move {
                // `tasks.claim` with this agent's name: the claimed task has complete, fail,
                // progress and heartbeat methods, as in dreamos.tasks.
                let name = lua
                    .app_data_ref::<AgentSelf>()
                    .map(|me| me.name.clone())
                    .ok_or_else(|| misuse(&lua, "self:claim_task: not an agent state"))?;
                let opts = match opts {
                    Some(t) => t,
                    None => lua.create_table()?,
                };
                if opts.contains_key("agent")? {
                    return Err(misuse(
                        &lua,
                        "self:claim_task: agent is set for you (the agent's name); leave it out",
                    ));
                }
                opts.set("agent", name)?;
                let tasks: Table = lua
                    .globals()
                    .get::<mlua::Function>("require")?
                    .call("dreamos.tasks")?;
                let claim: mlua::Function = tasks.get("claim")?;
                claim.call_async::<MultiValue>(opts).await
            })?
        }
        _ => return Ok(None),
    };
    Ok(Some(f))
}

fn bus_of(lua: &Lua) -> mlua::Result<(String, Option<Bus>)> {
    let me = lua
        .app_data_ref::<AgentSelf>()
        .ok_or_else(|| mlua::Error::runtime("agent methods work only in an agent's state"))?;
    Ok((me.sender(), me.bus.clone()))
}

fn to_json(lua: &Lua, func: &str, value: Value) -> mlua::Result<serde_json::Value> {
    lua.from_value(value)
        .map_err(|e| misuse(lua, format!("{func}: payload cannot be sent as JSON: {e}")))
}

/// A bus message as Lua sees it in `on_message`.
pub fn to_table(lua: &Lua, m: &Message) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("id", m.id)?;
    t.set("from", m.from.as_str())?;
    t.set("to", m.to.as_str())?;
    t.set("channel", m.channel.as_str())?;
    t.set(
        "payload",
        lua.to_value_with(
            &m.payload,
            mlua::serde::SerializeOptions::new().serialize_none_to_null(false),
        )?,
    )?;
    t.set("priority", m.priority.as_str())?;
    t.set("headers", lua.to_value(&m.headers)?)?;
    t.set("correlation_id", m.correlation_id.as_deref())?;
    t.set("reply_to", m.reply_to.as_deref())?;
    t.set("created_at", m.created_at)?;
    t.set("expires_at", m.expires_at)?;
    Ok(t)
}

/// Enough of a message back from Lua to answer it (`self:reply`).
fn from_table(t: &Table) -> mlua::Result<Message> {
    let priority: Option<String> = t.get("priority")?;
    Ok(Message {
        id: t.get::<Option<i64>>("id")?.unwrap_or(0),
        from: t.get::<Option<String>>("from")?.unwrap_or_default(),
        to: t.get::<Option<String>>("to")?.unwrap_or_default(),
        channel: t.get::<Option<String>>("channel")?.unwrap_or_default(),
        payload: serde_json::Value::Null,
        priority: priority
            .and_then(|p| p.parse::<Priority>().ok())
            .unwrap_or_default(),
        headers: BTreeMap::new(),
        correlation_id: t.get("correlation_id")?,
        reply_to: t.get("reply_to")?,
        created_at: t.get::<Option<i64>>("created_at")?.unwrap_or(0),
        expires_at: t.get("expires_at")?,
        max_attempts: 1,
        backoff: None,
    })
}

/// The task given to `on_task`: its fields (title, payload, attempts, percent, ...) plus
/// `task:progress(pct, note?)`, which reports progress and renews the lease.
pub fn task_table(lua: &Lua, work: &crate::agents::TaskWork) -> mlua::Result<Table> {
    let t: Table = match lua.to_value(&work.task)? {
        Value::Table(t) => t,
        _ => lua.create_table()?,
    };
    t.set("id", work.id)?;
    // `progress` is the method; the number it last reported is `percent`.
    let percent: Value = t.raw_get("progress")?;
    t.raw_set("percent", percent)?;
    t.raw_set("progress", Value::Nil)?;
    let lease = work.lease.clone();
    let progress =
        lua.create_async_function(move |lua, (_t, pct, note): (Value, f64, Option<String>)| {
            let lease = lease.clone();
            async move {
                let tasks = lua
                    .app_data_ref::<AgentSelf>()
                    .and_then(|me| me.tasks.clone());
                let Some(tasks) = tasks else {
                    return fail(&lua, "unavailable", "task:progress: no task service here");
                };
                match tasks.progress(&lease, pct, note).await {
                    Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
                    Err(e) if e.is_world() => fail(&lua, "task", e.to_string()),
                    Err(e) => Err(misuse(&lua, format!("task:progress: {e}"))),
                }
            }
        })?;
    let mt = lua.create_table()?;
    let methods = lua.create_table()?;
    methods.set("progress", progress)?;
    mt.set("__index", methods)?;
    t.set_metatable(Some(mt))?;
    Ok(t)
}
