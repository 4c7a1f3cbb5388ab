//! `tasks.watch(handler) -> handle`, `handle:cancel()`.
//!
//! A watch is one task in this script's state (`spawn_local`, metered like every resume of
//! Lua) that receives `tasks.events` from the service's bus and calls the handler with each
//! event as `{seq, id, title, old, new, progress, note, agent, at}` (`at` in seconds, like
//! `time.now()`). The handler may use async functions; returning `false` ends the watch.
//! A handler error is logged and the watch goes on; sandbox stops (limits, `os.exit`) end
//! it. Like `bus.subscribe`, a watch does not keep `dreamos run` alive.

use std::cell::RefCell;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};
use tokio::task::JoinHandle;

use super::{one, service_or_fail};
use crate::lua::support::{misuse, type_name};
use crate::runtime::driver::{is_fatal, lua_error, Metered};
use crate::runtime::host;

pub(super) async fn watch(lua: Lua, handler: Value) -> mlua::Result<MultiValue> {
    const F: &str = "tasks.watch";
    let Value::Function(handler) = handler else {
        return Err(misuse(
            &lua,
            format!(
                "{F}: handler must be a function, got {}",
                type_name(&handler)
            ),
        ));
    };
    let tasks = service_or_fail!(lua);
    // Subscribed before returning: nothing committed after `watch` returns is missed.
    let mut sub = tasks
        .subscribe()
        .map_err(|e| misuse(&lua, format!("{F}: {e}")))?;
    let (meter, script) = {
        let h = host(&lua)?;
        (h.meter.clone(), h.script.clone())
    };
    let weak = lua.weak();
    let task = tokio::task::spawn_local(async move {
        while let Some(published) = sub.recv().await {
            let Some(lua) = weak.try_upgrade() else { break };
            let event = match event_table(&lua, &published.payload) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(target: "dreamos::script", script = %script, "tasks.watch: bad event: {e}");
                    continue;
                }
            };
            let call = handler.call_async::<Value>(event);
            match Metered::new(meter.clone(), call).await {
                Ok(Value::Boolean(false)) => break,
                Ok(_) => {}
                Err(e) => {
                    let fatal = is_fatal(&e);
                    let message = lua_error(&lua, e, None).to_string();
                    tracing::warn!(
                        target: "dreamos::script",
                        script = %script,
                        "tasks.watch handler failed: {message}"
                    );
                    if fatal {
                        break;
                    }
                }
            }
        }
    });
    one(
        lua.create_userdata(Watch {
            task: RefCell::new(Some(task)),
        })?,
        &lua,
    )
}

/// The published event as the handler sees it: absent values are absent keys.
fn event_table(lua: &Lua, payload: &serde_json::Value) -> mlua::Result<Table> {
    let t: Table = lua.to_value(payload).and_then(|v| match v {
        Value::Table(t) => Ok(t),
        _ => Err(mlua::Error::runtime("a task event is not an object")),
    })?;
    if let Some(ms) = payload.get("at").and_then(serde_json::Value::as_i64) {
        t.raw_set("at", ms as f64 / 1000.0)?;
    }
    Ok(t)
}

/// What `watch` returns. Dropping it does not end the watch: keep it to call `cancel`.
struct Watch {
    task: RefCell<Option<JoinHandle<()>>>,
}

impl UserData for Watch {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("active", |_, this| {
            Ok(this
                .task
                .borrow()
                .as_ref()
                .is_some_and(|t| !t.is_finished()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Returns whether the watch was still running.
        methods.add_method("cancel", |_, this, ()| {
            Ok(match this.task.borrow_mut().take() {
                Some(task) => {
                    let running = !task.is_finished();
                    task.abort();
                    running
                }
                None => false,
            })
        });
    }
}
