//! `dreamos`: `version`, `config` (a read-only view), `spawn(fn, ...) -> handle`.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, Lua, LuaSerdeExt, MultiValue, Table, UserData, UserDataMethods, Value};
use tokio::task::JoinHandle;

use super::support::misuse;
use crate::runtime::{driver::Metered, host};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("version", env!("CARGO_PKG_VERSION"))?;
    let config = {
        let h = host(lua)?;
        lua.to_value(&*h.config)?
    };
    m.set("config", read_only(lua, config)?)?;
    m.set("spawn", lua.create_function(spawn)?)?;
    Ok(m)
}

/// Wraps tables in proxies whose `__newindex` raises, recursively, so scripts can read the
/// configuration but not believe they changed it.
fn read_only(lua: &Lua, value: Value) -> mlua::Result<Value> {
    let Value::Table(t) = value else {
        return Ok(value);
    };
    let inner = lua.create_table()?;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        inner.raw_set(k, read_only(lua, v)?)?;
    }
    let proxy = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", inner.clone())?;
    mt.set(
        "__len",
        lua.create_function(|_, (_, t): (Value, Table)| Ok(t.raw_len()))?
            .bind(inner.clone())?,
    )?;
    mt.set(
        "__pairs",
        lua.create_function(move |lua, _: Value| {
            let next: Function = lua.globals().get("next")?;
            Ok((next, inner.clone(), Value::Nil))
        })?,
    )?;
    mt.set(
        "__newindex",
        lua.create_function(|lua, (_, key): (Value, Value)| -> mlua::Result<()> {
            Err(misuse(
                lua,
                format!(
                    "dreamos.config is read-only (tried to set '{}'); change dreamos.toml or DREAMOS_* variables instead",
                    key.to_string().unwrap_or_default()
                ),
            ))
        })?,
    )?;
    mt.set("__metatable", false)?;
    proxy.set_metatable(Some(mt))?;
    Ok(Value::Table(proxy))
}

/// The outcome of a spawned task, kept so `join` can be called more than once.
enum Outcome {
    Running(JoinHandle<Result<MultiValue, String>>),
    Done(Result<MultiValue, String>),
    Taken,
}

/// What `dreamos.spawn` returns.
struct TaskHandle {
    state: Rc<RefCell<Outcome>>,
}

fn spawn(lua: &Lua, (func, args): (Value, MultiValue)) -> mlua::Result<TaskHandle> {
    let Value::Function(func) = func else {
        return Err(misuse(
            lua,
            format!(
                "dreamos.spawn: first argument must be a function, got {}",
                super::support::type_name(&func)
            ),
        ));
    };
    let (meter, tracker, script) = {
        let h = host(lua)?;
        (h.meter.clone(), h.spawned.clone(), h.script.clone())
    };
    let thread = lua.create_thread(func)?;
    let fut = thread.clone().into_async::<MultiValue>(args)?;
    let weak = lua.weak();
    // Dropped when the task ends in any way, cancellation included, so `run` never waits
    // for a task that no longer exists.
    let running = tracker.start();
    let handle = tokio::task::spawn_local(async move {
        let _running = running;
        let out = Metered::new(meter, fut).await;
        if let Some(lua) = weak.try_upgrade() {
            let failure = out
                .as_ref()
                .err()
                .map(|e| crate::runtime::driver::error_message(&lua, e));
            let settled = super::bus::settle_thread(&lua, &thread, failure.as_deref());
            drop(lua);
            settled.await;
        }
        out.map_err(|e| {
            let message = match weak.try_upgrade() {
                Some(lua) => crate::runtime::driver::lua_error(&lua, e, Some(&thread)).to_string(),
                None => e.to_string(),
            };
            tracing::warn!(target: "dreamos::script", script = %script, "spawned task failed: {message}");
            message
        })
    });
    tracker.keep(&handle);
    Ok(TaskHandle {
        state: Rc::new(RefCell::new(Outcome::Running(handle))),
    })
}

impl UserData for TaskHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_method("join", |lua, this, ()| async move {
            let state = this.state.clone();
            let current = std::mem::replace(&mut *state.borrow_mut(), Outcome::Taken);
            let result = match current {
                Outcome::Running(handle) => match handle.await {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => Err("task was cancelled".to_string()),
                    Err(e) => Err(format!("task failed: {e}")),
                },
                Outcome::Done(r) => r,
                Outcome::Taken => {
                    return Err(misuse(
                        &lua,
                        "handle:join: another join is already waiting on this task",
                    ))
                }
            };
            *state.borrow_mut() = Outcome::Done(result.clone());
            result.map_err(mlua::Error::runtime)
        });
        methods.add_method("cancel", |_, this, ()| {
            let mut state = this.state.borrow_mut();
            if let Outcome::Running(handle) = &*state {
                handle.abort();
                *state = Outcome::Done(Err("task was cancelled".to_string()));
                return Ok(true);
            }
            Ok(false)
        });
        methods.add_method("done", |_, this, ()| {
            Ok(match &*this.state.borrow() {
                Outcome::Running(h) => h.is_finished(),
                _ => true,
            })
        });
    }
}
