//! Claiming and everything the holder of a task does: `claim`, `progress`, `complete`,
//! `fail`, `heartbeat`, as module functions and as methods of claimed tasks.
//!
//! A claimed task is a plain table with a shared metatable (`__index` = the methods). Its
//! `id`, `agent` and `attempts` are the lease it presents. Module functions also take a
//! task id, resolved through the leases this state claimed; a table without the metatable
//! (one from `get` or `list`) counts as its id, so nobody finishes someone else's task by
//! passing a copy of it.

use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

use super::convert::{seconds, string_opt, tags, task_id, task_table};
use super::{one, options, service_or_fail, task_error, StateTasks};
use crate::lua::support::{duration, misuse, type_name};
use crate::tasks::{ClaimRequest, Lease, Status, Tasks};

const TASK_MT: &str = "dreamos.tasks.task_mt";
const CLAIM_OPTIONS: &[&str] = &["agent", "category", "tags", "lease", "wait"];
const FAIL_OPTIONS: &[&str] = &["retry"];

/// Builds the claimed-task metatable once per state.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    if lua.named_registry_value::<Table>(TASK_MT).is_ok() {
        return Ok(());
    }
    let methods = lua.create_table()?;
    methods.set(
        "progress",
        lua.create_async_function(|lua, (task, pct, note): (Value, Value, Value)| {
            progress(lua, "task:progress", task, pct, note)
        })?,
    )?;
    methods.set(
        "complete",
        lua.create_async_function(|lua, (task, result): (Value, Value)| {
            complete(lua, "task:complete", task, result)
        })?,
    )?;
    methods.set(
        "fail",
        lua.create_async_function(|lua, (task, err, opts): (Value, Value, Value)| {
            fail(lua, "task:fail", task, err, opts)
        })?,
    )?;
    methods.set(
        "heartbeat",
        lua.create_async_function(|lua, task: Value| heartbeat(lua, "task:heartbeat", task))?,
    )?;
    let mt = lua.create_table()?;
    mt.set("__index", methods)?;
    mt.set("__name", "dreamos.task")?;
    lua.set_named_registry_value(TASK_MT, mt)
}

pub(super) async fn progress_fn(
    lua: Lua,
    (task, pct, note): (Value, Value, Value),
) -> mlua::Result<MultiValue> {
    progress(lua, "tasks.progress", task, pct, note).await
}

pub(super) async fn complete_fn(
    lua: Lua,
    (task, result): (Value, Value),
) -> mlua::Result<MultiValue> {
    complete(lua, "tasks.complete", task, result).await
}

pub(super) async fn fail_fn(
    lua: Lua,
    (task, err, opts): (Value, Value, Value),
) -> mlua::Result<MultiValue> {
    fail(lua, "tasks.fail", task, err, opts).await
}

pub(super) async fn heartbeat_fn(lua: Lua, task: Value) -> mlua::Result<MultiValue> {
    heartbeat(lua, "tasks.heartbeat", task).await
}

pub(super) async fn claim(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.claim";
    let Some(opts) = options(&lua, F, opts, CLAIM_OPTIONS)? else {
        return Err(misuse(
            &lua,
            format!("{F}: expected a table such as {{agent = \"worker\"}}, got nil"),
        ));
    };
    let Some(agent) = string_opt(&lua, F, &opts, "agent")? else {
        return Err(misuse(
            &lua,
            format!("{F}: agent is required (the name this worker claims as)"),
        ));
    };
    let lease = optional_duration(&lua, F, &opts, "lease")?;
    let wait = optional_duration(&lua, F, &opts, "wait")?;
    let req = ClaimRequest {
        agent,
        category: string_opt(&lua, F, &opts, "category")?,
        tags: tags(&lua, F, &opts)?,
        lease,
        wait,
    };
    let tasks = service_or_fail!(lua);
    match tasks.claim(req).await {
        Ok(Some(task)) => {
            if let (Some(lease), Some(state)) = (task.lease(), lua.app_data_ref::<StateTasks>()) {
                state.held.borrow_mut().insert(task.id, lease);
            }
            let t = task_table(&lua, &task)?;
            // `progress` is the method on a claimed task; its value starts at 0 anyway.
            t.raw_set("progress", Value::Nil)?;
            t.set_metatable(Some(lua.named_registry_value::<Table>(TASK_MT)?))?;
            one(t, &lua)
        }
        Ok(None) => one(Value::Nil, &lua),
        Err(e) => task_error(&lua, F, e),
    }
}

fn optional_duration(
    lua: &Lua,
    func: &str,
    opts: &Table,
    key: &str,
) -> mlua::Result<Option<Duration>> {
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        v => duration(lua, func, key, &v).map(Some),
    }
}

/// The lease the caller presents: a claimed task's own, or the one this state remembers for
/// an id.
fn lease_of(lua: &Lua, func: &str, task: &Value) -> mlua::Result<(Lease, Option<Table>)> {
    if let Value::Table(t) = task {
        let claimed = match (t.metatable(), lua.named_registry_value::<Table>(TASK_MT)) {
            (Some(mt), Ok(ours)) => mt == ours,
            _ => false,
        };
        if claimed {
            let id = task_id(lua, func, task)?;
            let agent: Option<String> = t.raw_get("agent")?;
            let attempt: Option<u32> = t.raw_get("attempts")?;
            if let (Some(agent), Some(attempt)) = (agent, attempt) {
                return Ok((Lease { id, agent, attempt }, Some(t.clone())));
            }
        }
    }
    let id = task_id(lua, func, task)?;
    let remembered = lua
        .app_data_ref::<StateTasks>()
        .and_then(|state| state.held.borrow().get(&id).cloned());
    match remembered {
        Some(lease) => Ok((lease, None)),
        None => Err(misuse(
            lua,
            format!("{func}: this script does not hold task {id} (claim it first)"),
        )),
    }
}

/// Forgets a lease that can no longer be used (finished, lost).
fn forget(lua: &Lua, id: i64) {
    if let Some(state) = lua.app_data_ref::<StateTasks>() {
        state.held.borrow_mut().remove(&id);
    }
}

/// Shapes an error of a holder operation; a refusal also means the lease is gone.
fn refused(lua: &Lua, func: &str, id: i64, e: crate::tasks::TaskError) -> mlua::Result<MultiValue> {
    if !e.is_world() && !matches!(e, crate::tasks::TaskError::Invalid { .. }) {
        forget(lua, id);
    }
    task_error(lua, func, e)
}

async fn service(lua: &Lua) -> mlua::Result<Result<Tasks, MultiValue>> {
    match super::service(lua).await? {
        Ok(t) => Ok(Ok(t)),
        Err(message) => Ok(Err(crate::lua::support::fail(lua, "store", message)?)),
    }
}

async fn progress(
    lua: Lua,
    func: &'static str,
    task: Value,
    pct: Value,
    note: Value,
) -> mlua::Result<MultiValue> {
    let (lease, table) = lease_of(&lua, func, &task)?;
    let pct = match pct {
        Value::Integer(n) => n as f64,
        Value::Number(n) => n,
        other => {
            return Err(misuse(
                &lua,
                format!(
                    "{func}: pct must be a number from 0 to 100, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let note = match note {
        Value::Nil => None,
        Value::String(s) => Some(s.to_str()?.to_string()),
        other => {
            return Err(misuse(
                &lua,
                format!("{func}: note must be a string, got {}", type_name(&other)),
            ))
        }
    };
    let tasks = match service(&lua).await? {
        Ok(t) => t,
        Err(nil_err) => return Ok(nil_err),
    };
    match tasks.progress(&lease, pct, note.clone()).await {
        Ok(()) => {
            if let Some(t) = table {
                t.raw_set("status", Status::Running.as_str())?;
                t.raw_set("note", note)?;
            }
            one(true, &lua)
        }
        Err(e) => refused(&lua, func, lease.id, e),
    }
}

async fn complete(
    lua: Lua,
    func: &'static str,
    task: Value,
    result: Value,
) -> mlua::Result<MultiValue> {
    let (lease, table) = lease_of(&lua, func, &task)?;
    let result = match result {
        Value::Nil => None,
        v => Some(lua.from_value::<serde_json::Value>(v).map_err(|e| {
            misuse(
                &lua,
                format!("{func}: result cannot be stored as JSON: {e}"),
            )
        })?),
    };
    let tasks = match service(&lua).await? {
        Ok(t) => t,
        Err(nil_err) => return Ok(nil_err),
    };
    match tasks.complete(&lease, result).await {
        Ok(()) => {
            forget(&lua, lease.id);
            if let Some(t) = table {
                t.raw_set("status", Status::Done.as_str())?;
            }
            one(true, &lua)
        }
        Err(e) => refused(&lua, func, lease.id, e),
    }
}

async fn fail(
    lua: Lua,
    func: &'static str,
    task: Value,
    err: Value,
    opts: Value,
) -> mlua::Result<MultiValue> {
    let (lease, table) = lease_of(&lua, func, &task)?;
    let error = match err {
        Value::String(s) => s.to_str()?.to_string(),
        Value::Nil => {
            return Err(misuse(
                &lua,
                format!("{func}: err is required (why the task failed)"),
            ))
        }
        // Error values (a caught error, a `{kind, message}` table) are kept as their text.
        other => other.to_string()?,
    };
    let retry = match options(&lua, func, opts, FAIL_OPTIONS)? {
        Some(opts) => match opts.get::<Value>("retry")? {
            Value::Nil => true,
            Value::Boolean(b) => b,
            other => {
                return Err(misuse(
                    &lua,
                    format!(
                        "{func}: retry must be true or false, got {}",
                        type_name(&other)
                    ),
                ))
            }
        },
        None => true,
    };
    let tasks = match service(&lua).await? {
        Ok(t) => t,
        Err(nil_err) => return Ok(nil_err),
    };
    match tasks.fail(&lease, &error, retry).await {
        Ok(status) => {
            forget(&lua, lease.id);
            if let Some(t) = table {
                t.raw_set("status", status.as_str())?;
                t.raw_set("error", error)?;
            }
            one(status.as_str(), &lua)
        }
        Err(e) => refused(&lua, func, lease.id, e),
    }
}

async fn heartbeat(lua: Lua, func: &'static str, task: Value) -> mlua::Result<MultiValue> {
    let (lease, table) = lease_of(&lua, func, &task)?;
    let tasks = match service(&lua).await? {
        Ok(t) => t,
        Err(nil_err) => return Ok(nil_err),
    };
    match tasks.heartbeat(&lease).await {
        Ok(until) => {
            if let Some(t) = table {
                t.raw_set("lease_until", seconds(until))?;
            }
            one(seconds(until), &lua)
        }
        Err(e) => refused(&lua, func, lease.id, e),
    }
}
