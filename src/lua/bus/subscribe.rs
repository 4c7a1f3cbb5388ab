//! `bus.subscribe(pattern, handler) -> handle`, `handle:cancel()`.
//!
//! Each subscription is one task in this script's state (`spawn_local`, metered like every
//! resume of Lua). The task runs a small Lua loop that asks Rust for the next published
//! message and calls the handler under `xpcall`: a message already waiting costs one call
//! into Rust and one Lua call, no coroutine per message, which is what lets a subscriber
//! keep up with a fast publisher. A handler error is logged and the loop goes on (publish
//! is best-effort); sandbox stops (limits, `os.exit`) end it.
//!
//! Subscriptions are not counted with `dreamos.spawn` tasks: `dreamos run` exits when the
//! main chunk and the spawned tasks are done, and subscriptions end with it. A script that
//! only serves subscriptions keeps itself alive (a `recv` loop, a `time.sleep`).
//!
//! `cancel` drops the subscription at once, so nothing published after it reaches the
//! handler, and messages queued for it but not yet handled are dropped too.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use mlua::{Function, Lua, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};
use tokio::sync::Notify;

use super::{bus_or_fail, json_to_lua, seconds};
use crate::bus::{Published, Subscription};
use crate::lua::support::{misuse, required_str, type_name};
use crate::runtime::driver::{is_fatal, lua_error, Metered};
use crate::runtime::host;

/// The loop every subscription runs. `report` logs a handler error and says whether it was
/// a sandbox stop, which must not be swallowed. `xpcall` and `error` are captured when the
/// module loads, so a script that reassigns those globals cannot break its subscriptions.
const LOOP: &str = r#"
local xpcall, error = xpcall, error
return function(next_message, handler, traceback, report)
  while true do
    local msg = next_message()
    if msg == nil then
      return
    end
    local ok, err = xpcall(handler, traceback, msg)
    if not ok and report(err) then
      error(err, 0)
    end
  end
end
"#;
const LOOP_KEY: &str = "dreamos.bus.subscription_loop";

/// What the task and the handle share.
struct Shared {
    /// `None` once cancelled; taking it out unsubscribes at once.
    sub: RefCell<Option<Subscription>>,
    /// Wakes the task when cancelled while it waits.
    cancelled: Notify,
}

impl Shared {
    /// The next published message, or `None` once cancelled.
    async fn next(&self) -> Option<Arc<Published>> {
        // A fresh `recv` future per poll keeps the RefCell borrowed only inside a poll (so
        // `cancel` from the handler never collides with it); mpsc `recv` is cancel-safe and
        // its waker registration outlives the future.
        let published = std::future::poll_fn(|cx| match self.sub.borrow_mut().as_mut() {
            None => Poll::Ready(None),
            Some(sub) => {
                let fut = sub.recv();
                tokio::pin!(fut);
                fut.poll(cx)
            }
        });
        tokio::select! {
            biased;
            _ = self.cancelled.notified() => None,
            p = published => p,
        }
    }

    fn cancel(&self) -> bool {
        let was_active = self.sub.borrow_mut().take().is_some();
        self.cancelled.notify_one();
        was_active
    }
}

pub(super) async fn subscribe(
    lua: Lua,
    (pattern, handler): (Value, Value),
) -> mlua::Result<MultiValue> {
    const F: &str = "bus.subscribe";
    let pattern = required_str(&lua, F, "pattern", &pattern)?;
    let Value::Function(handler) = handler else {
        return Err(misuse(
            &lua,
            format!(
                "{F}: handler must be a function, got {}",
                type_name(&handler)
            ),
        ));
    };
    let bus = bus_or_fail!(lua);
    let sub = bus
        .subscribe(&pattern)
        .map_err(|e| misuse(&lua, format!("{F}: {e}")))?;
    let shared = Rc::new(Shared {
        sub: RefCell::new(Some(sub)),
        cancelled: Notify::new(),
    });
    let (meter, script, tracker) = {
        let h = host(&lua)?;
        (h.meter.clone(), h.script.clone(), h.spawned.clone())
    };
    let next = lua.create_async_function({
        let shared = shared.clone();
        move |lua, ()| {
            let shared = shared.clone();
            async move {
                match shared.next().await {
                    Some(p) => Ok(Value::Table(published_table(&lua, &p)?)),
                    None => Ok(Value::Nil),
                }
            }
        }
    })?;
    let report = lua.create_function({
        let (pattern, script) = (pattern.clone(), script.clone());
        move |_, err: Value| {
            let fatal = matches!(&err, Value::Error(e) if is_fatal(e));
            let message = err.to_string().unwrap_or_else(|_| "unknown error".into());
            tracing::warn!(
                target: "dreamos::script",
                script = %script,
                "bus.subscribe('{pattern}') handler failed: {message}"
            );
            Ok(fatal)
        }
    })?;
    let traceback: Function = lua.named_registry_value(crate::runtime::sandbox::TRACEBACK_KEY)?;
    let thread = lua.create_thread(loop_function(&lua)?)?;
    let run = thread
        .clone()
        .into_async::<()>((next, handler, traceback, report))?;
    let weak = lua.weak();
    let task_shared = shared.clone();
    let task_pattern = pattern.clone();
    let task = tokio::task::spawn_local(async move {
        if let Err(e) = Metered::new(meter, run).await {
            let message = match weak.try_upgrade() {
                Some(lua) => lua_error(&lua, e, Some(&thread)).to_string(),
                None => e.to_string(),
            };
            tracing::warn!(
                target: "dreamos::script",
                script = %script,
                "bus.subscribe('{task_pattern}') stopped: {message}"
            );
        }
        task_shared.cancel();
    });
    let on_abort = shared.clone();
    tracker.keep_with(
        &task,
        Some(Box::new(move || {
            on_abort.cancel();
        })),
    );
    let handle = lua.create_userdata(SubscriptionHandle { shared, pattern })?;
    Ok(MultiValue::from_iter([Value::UserData(handle)]))
}

/// Builds the loop when the module loads (see [`LOOP`]).
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    loop_function(lua).map(|_| ())
}

/// The compiled loop, cached per state.
fn loop_function(lua: &Lua) -> mlua::Result<Function> {
    if let Ok(f) = lua.named_registry_value::<Function>(LOOP_KEY) {
        return Ok(f);
    }
    let f: Function = lua
        .load(LOOP)
        .set_name("=dreamos.bus subscription")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .call(())?;
    lua.set_named_registry_value(LOOP_KEY, f.clone())?;
    Ok(f)
}

/// `{topic, from, payload, at}` for the handler.
fn published_table(lua: &Lua, p: &Published) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 4)?;
    t.raw_set("topic", p.topic.as_str())?;
    t.raw_set("from", p.from.as_str())?;
    if !p.payload.is_null() {
        t.raw_set("payload", json_to_lua(lua, &p.payload)?)?;
    }
    t.raw_set("at", seconds(p.at))?;
    Ok(t)
}

/// What `subscribe` returns. Dropping it does not cancel: keep it to call `cancel`.
struct SubscriptionHandle {
    shared: Rc<Shared>,
    pattern: String,
}

impl UserData for SubscriptionHandle {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("pattern", |_, this| Ok(this.pattern.clone()));
        fields.add_field_method_get("active", |_, this| Ok(this.shared.sub.borrow().is_some()));
        fields.add_field_method_get("lagged", |_, this| {
            Ok(this.shared.sub.borrow().as_ref().map_or(0, |s| s.lagged()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("cancel", |_, this, ()| Ok(this.shared.cancel()));
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("subscription '{}'", this.pattern))
        });
    }
}
