//! `dreamos.tasks`: `add`, `get`, `list`, `claim`, `progress`, `complete`, `fail`, `cancel`,
//! `watch` (plus `heartbeat`) — the task service (`crate::tasks`) as scripts see it.
//!
//! - `claim` returns the task as a plain table whose metatable gives it `progress`,
//!   `complete`, `fail` and `heartbeat` methods. The table carries its own lease (`id`,
//!   `agent`, `attempts`), so it can be printed or JSON-encoded like any table. The module
//!   functions take that table or a task id; an id works only for a task this script
//!   claimed (the lease is remembered per state).
//! - `watch(handler)` runs the handler for every event on the bus topic `tasks.events`
//!   (see [`watch`]).
//!
//! Errors follow the house rule: misuse raises, naming the function (unknown options and
//! names, progress outside 0–100, finishing a task the caller does not hold or whose lease
//! expired, a missing dependency, a cycle); a failing store returns `nil, err`.
//!
//! The service is built per state on first use over the state's store and bus (both kept in
//! [`Host`](crate::runtime::Host), so several states given one store and bus share events);
//! waiting claims of every state over one store wake each other (see `crate::tasks`).

mod convert;
mod held;
mod watch;

use std::cell::RefCell;
use std::collections::HashMap;

use mlua::{Lua, MultiValue, Table, Value};

use super::support::{check_options, fail, misuse, type_name};
use crate::bus::Bus;
use crate::runtime::host;
use crate::tasks::{Lease, TaskError, TaskId, Tasks};
use convert::{list_filter, task_id, task_spec, task_table};

/// This state's service and the leases of the tasks it claimed (for calls by id).
pub(crate) struct StateTasks {
    tasks: Tasks,
    held: RefCell<HashMap<TaskId, Lease>>,
}

/// Gives this state a task service built elsewhere (a benchmark over another backend); the
/// state's `dreamos.tasks` then uses it instead of opening the configured store.
pub(crate) fn install(lua: &Lua, tasks: Tasks) {
    lua.set_app_data(StateTasks {
        tasks,
        held: RefCell::new(HashMap::new()),
    });
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    held::install(lua)?;
    let m = lua.create_table()?;
    m.set("add", lua.create_async_function(add)?)?;
    m.set("get", lua.create_async_function(get)?)?;
    m.set("list", lua.create_async_function(list)?)?;
    m.set("cancel", lua.create_async_function(cancel)?)?;
    m.set("watch", lua.create_async_function(watch::watch)?)?;
    m.set("claim", lua.create_async_function(held::claim)?)?;
    m.set("progress", lua.create_async_function(held::progress_fn)?)?;
    m.set("complete", lua.create_async_function(held::complete_fn)?)?;
    m.set("fail", lua.create_async_function(held::fail_fn)?)?;
    m.set("heartbeat", lua.create_async_function(held::heartbeat_fn)?)?;
    Ok(m)
}

/// This state's task service, built on first use. The inner `Err` is a failure of the world
/// (the store does not open) for `nil, err`.
pub(crate) async fn service(lua: &Lua) -> mlua::Result<Result<Tasks, String>> {
    if let Some(state) = lua.app_data_ref::<StateTasks>() {
        return Ok(Ok(state.tasks.clone()));
    }
    let (bus, bus_config, config) = {
        let h = host(lua)?;
        (
            h.bus.get().cloned(),
            h.config.bus.clone(),
            h.config.tasks.clone(),
        )
    };
    let store = match crate::runtime::open_store(lua).await? {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    let bus = match bus {
        Some(bus) => bus,
        None => {
            let bus = match Bus::new(store.clone(), bus_config) {
                Ok(bus) => bus,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let h = host(lua)?;
            h.bus.get_or_init(|| async { bus }).await.clone()
        }
    };
    let tasks = match Tasks::new(store, bus, config) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // Another call may have built one while this one awaited the store: keep the first.
    if let Some(state) = lua.app_data_ref::<StateTasks>() {
        return Ok(Ok(state.tasks.clone()));
    }
    lua.set_app_data(StateTasks {
        tasks: tasks.clone(),
        held: RefCell::new(HashMap::new()),
    });
    Ok(Ok(tasks))
}

/// Returns `nil, err` from the calling function when the service cannot be built.
macro_rules! service_or_fail {
    ($lua:expr) => {
        match $crate::lua::tasks::service(&$lua).await? {
            Ok(tasks) => tasks,
            Err(message) => return $crate::lua::support::fail(&$lua, "store", message),
        }
    };
}
pub(crate) use service_or_fail;

/// Shapes a [`TaskError`]: the store failing is `nil, err`; anything else is the caller's
/// mistake and raises, prefixed with the function's name.
pub(crate) fn task_error(lua: &Lua, func: &str, e: TaskError) -> mlua::Result<MultiValue> {
    if e.is_world() {
        return fail(lua, "store", e.to_string());
    }
    Err(misuse(lua, format!("{func}: {e}")))
}

fn one(v: impl mlua::IntoLua, lua: &Lua) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([v.into_lua(lua)?]))
}

const ADD_OPTIONS: &[&str] = &[
    "title",
    "description",
    "priority",
    "depends_on",
    "assignee",
    "category",
    "tags",
    "payload",
    "max_attempts",
    "deadline",
];
const LIST_OPTIONS: &[&str] = &["status", "assignee", "category", "priority", "limit"];

async fn add(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.add";
    let Value::Table(opts) = opts else {
        return Err(misuse(
            &lua,
            format!(
                "{F}: expected a table such as {{title = \"...\"}}, got {}",
                type_name(&opts)
            ),
        ));
    };
    check_options(&lua, F, &opts, ADD_OPTIONS)?;
    let spec = task_spec(&lua, F, &opts)?;
    let tasks = service_or_fail!(lua);
    match tasks.add(spec).await {
        Ok(id) => one(id, &lua),
        Err(e) => task_error(&lua, F, e),
    }
}

async fn get(lua: Lua, id: Value) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.get";
    let id = task_id(&lua, F, &id)?;
    let tasks = service_or_fail!(lua);
    match tasks.get(id).await {
        Ok(Some(task)) => one(task_table(&lua, &task)?, &lua),
        Ok(None) => one(Value::Nil, &lua),
        Err(e) => task_error(&lua, F, e),
    }
}

async fn list(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.list";
    let filter = match opts {
        Value::Nil => crate::tasks::ListFilter::default(),
        Value::Table(opts) => {
            check_options(&lua, F, &opts, LIST_OPTIONS)?;
            list_filter(&lua, F, &opts)?
        }
        other => {
            return Err(misuse(
                &lua,
                format!("{F}: filters must be a table, got {}", type_name(&other)),
            ))
        }
    };
    let tasks = service_or_fail!(lua);
    match tasks.list(filter).await {
        Ok(found) => {
            let t = lua.create_table_with_capacity(found.len(), 0)?;
            for task in &found {
                t.raw_push(task_table(&lua, task)?)?;
            }
            one(t, &lua)
        }
        Err(e) => task_error(&lua, F, e),
    }
}

async fn cancel(lua: Lua, (id, reason): (Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.cancel";
    let id = task_id(&lua, F, &id)?;
    let reason = match reason {
        Value::Nil => format!("cancelled by {}", host(&lua)?.script),
        Value::String(s) => s.to_str()?.to_string(),
        other => {
            return Err(misuse(
                &lua,
                format!("{F}: reason must be a string, got {}", type_name(&other)),
            ))
        }
    };
    let tasks = service_or_fail!(lua);
    match tasks.cancel(id, &reason).await {
        Ok(()) => one(true, &lua),
        Err(e) => task_error(&lua, F, e),
    }
}

/// Checks that `opts` (when given) is a table with only `allowed` keys.
pub(crate) fn options(
    lua: &Lua,
    func: &str,
    opts: Value,
    allowed: &[&str],
) -> mlua::Result<Option<Table>> {
    match opts {
        Value::Nil => Ok(None),
        Value::Table(t) => {
            check_options(lua, func, &t, allowed)?;
            Ok(Some(t))
        }
        other => Err(misuse(
            lua,
            format!("{func}: options must be a table, got {}", type_name(&other)),
        )),
    }
}
