//! `dreamos.cron`: `schedule(expr, fn_or_script, opts?)`, `every(d, fn_or_script, opts?)`,
//! `at(t, fn_or_script, opts?)`, `list()`, `cancel(id)`, `next(expr, n?, opts?)`.
//!
//! Each state that uses `cron` gets its own [`Scheduler`] over the embedded store, created on
//! the first call. Two kinds of handler:
//! - a Lua function belongs to this script: it runs in this state (as its own coroutine),
//!   keeps `dreamos run` alive while any such schedule is active, and its schedules are
//!   deleted when the last one ends (cancel, or a one-shot that fired);
//! - a script path makes a durable schedule (like `dreamos schedule add`): `dreamos serve`
//!   fires it (a running daemon picks it up at once), and it does not keep the script
//!   alive. This state's scheduler never competes for the lead, so it fires only its own
//!   function handlers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use mlua::{Function, Lua, Table, Value};
use tokio::sync::Notify;

use super::support::{check_options, duration, fail, misuse, type_name};
use crate::runtime::driver::{lua_error, Metered, Running};
use crate::runtime::{host, Meter};
use crate::scheduler::def::validate_name;
use crate::scheduler::runner::ScriptRunner;
use crate::scheduler::{trigger, Runner, ScheduleDef, ScheduleInfo, Scheduler};
use crate::store::Millis;

const OPTIONS: &[&str] = &[
    "name",
    "timezone",
    "missed",
    "catchup_window",
    "overlap",
    "jitter",
    "max_failures",
];

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "schedule",
        lua.create_async_function(
            |lua, (expr, handler, opts): (Value, Value, Option<Table>)| async move {
                let expr = super::support::required_str(&lua, "cron.schedule", "expr", &expr)?;
                add(&lua, "cron.schedule", handler, opts, |def| {
                    def.cron = Some(expr)
                })
                .await
            },
        )?,
    )?;
    m.set(
        "every",
        lua.create_async_function(
            |lua, (d, handler, opts): (Value, Value, Option<Table>)| async move {
                let d = duration(&lua, "cron.every", "interval", &d)?;
                add(&lua, "cron.every", handler, opts, |def| def.every = Some(d)).await
            },
        )?,
    )?;
    m.set(
        "at",
        lua.create_async_function(
            |lua, (t, handler, opts): (Value, Value, Option<Table>)| async move {
                let at = match &t {
                    Value::Integer(n) => trigger::format_time(n * 1000, chrono_tz::Tz::UTC),
                    Value::Number(secs) => {
                        trigger::format_time((secs * 1000.0) as Millis, chrono_tz::Tz::UTC)
                    }
                    Value::String(s) => s.to_str()?.to_string(),
                    other => {
                        return Err(misuse(
                            &lua,
                            format!(
                                "cron.at: time must be epoch seconds or a string such as \
                             \"2026-12-01T09:00:00+01:00\", got {}",
                                type_name(other)
                            ),
                        ))
                    }
                };
                add(&lua, "cron.at", handler, opts, |def| def.at = Some(at)).await
            },
        )?,
    )?;
    m.set(
        "list",
        lua.create_async_function(|lua, ()| async move { list(&lua).await })?,
    )?;
    m.set(
        "cancel",
        lua.create_async_function(|lua, id: Value| async move {
            let id = super::support::required_str(&lua, "cron.cancel", "id", &id)?;
            let cron = state(&lua).await?;
            let cron = match cron {
                Ok(c) => c,
                Err(e) => return fail(&lua, "store", e),
            };
            match cron.scheduler.remove(&id).await {
                Ok(existed) => {
                    cron.forget_handler(&id);
                    Ok(mlua::MultiValue::from_iter([Value::Boolean(existed)]))
                }
                Err(e) => fail(&lua, "store", e.to_string()),
            }
        })?,
    )?;
    m.set("next", lua.create_function(next)?)?;
    Ok(m)
}

/// This state's scheduler and its function handlers.
struct CronState {
    scheduler: Scheduler,
    /// Function handlers by schedule name; shared with the runner.
    handlers: Rc<RefCell<HashMap<String, Function>>>,
    /// Wakes the keep-alive task when the last function schedule ends.
    released: Rc<Notify>,
    /// Whether a keep-alive task is holding `dreamos run` open now.
    holding: Rc<std::cell::Cell<bool>>,
    /// `lua:<script>:<pid>`: the source of this state's function schedules.
    source: String,
    /// The owning script (for default names and script-path sources).
    script: String,
    counter: std::cell::Cell<u64>,
    tracker: Rc<crate::runtime::driver::SpawnTracker>,
}

impl CronState {
    fn forget_handler(&self, name: &str) {
        let mut handlers = self.handlers.borrow_mut();
        if handlers.remove(name).is_some() && handlers.is_empty() {
            self.released.notify_one();
        }
    }

    /// Holds `dreamos run` open while function schedules exist; when the last one ends,
    /// deletes this script's schedules and lets the script finish.
    fn hold(&self) {
        if self.holding.replace(true) {
            return;
        }
        let guard: Running = self.tracker.start();
        let (released, holding) = (self.released.clone(), self.holding.clone());
        let (scheduler, source) = (self.scheduler.clone(), self.source.clone());
        let handlers = self.handlers.clone();
        tokio::task::spawn_local(async move {
            let _guard = guard;
            // A handler added right after the last one ended must not be swept away.
            while !handlers.borrow().is_empty() {
                released.notified().await;
            }
            holding.set(false);
            let ended: Vec<String> = scheduler
                .list()
                .into_iter()
                .filter(|i| i.source == source && !handlers.borrow().contains_key(&i.name))
                .map(|i| i.name)
                .collect();
            for name in ended {
                if let Err(e) = scheduler.remove(&name).await {
                    tracing::warn!(target: "dreamos::scheduler", "cannot remove schedule {name}: {e}");
                }
            }
        });
    }
}

/// Runs function handlers in this state; scripts and agents as the daemon does.
struct LuaRunner {
    handlers: Rc<RefCell<HashMap<String, Function>>>,
    released: Rc<Notify>,
    lua: mlua::WeakLua,
    meter: Rc<Meter>,
    scripts: ScriptRunner,
}

impl Runner for LuaRunner {
    fn run(
        &self,
        def: &ScheduleDef,
        scheduled: Millis,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        if def.script.is_some() || def.agent.is_some() {
            return self.scripts.run(def, scheduled);
        }
        let name = def.name.clone();
        let one_shot = def.at.is_some();
        let handler = self.handlers.borrow().get(&name).cloned();
        let (handlers, released) = (self.handlers.clone(), self.released.clone());
        let (weak, meter) = (self.lua.clone(), self.meter.clone());
        Box::pin(async move {
            let handler = handler.ok_or_else(|| format!("the handler of '{name}' has ended"))?;
            let lua = weak
                .try_upgrade()
                .ok_or("the script's Lua state has ended")?;
            let ctx = lua.create_table().map_err(|e| e.to_string())?;
            ctx.set("name", name.as_str()).map_err(|e| e.to_string())?;
            ctx.set("scheduled", scheduled as f64 / 1000.0)
                .map_err(|e| e.to_string())?;
            let thread = lua.create_thread(handler).map_err(|e| e.to_string())?;
            let fut = thread
                .clone()
                .into_async::<()>(ctx)
                .map_err(|e| e.to_string())?;
            let result = Metered::new(meter, fut).await;
            // A handler that took messages with bus.recv settles the last one as it ends.
            let failure = result
                .as_ref()
                .err()
                .map(|e| crate::runtime::driver::error_message(&lua, e));
            super::bus::settle_thread(&lua, &thread, failure.as_deref()).await;
            let result = result.map_err(|e| lua_error(&lua, e, Some(&thread)).to_string());
            if one_shot {
                let mut handlers = handlers.borrow_mut();
                if handlers.remove(&name).is_some() && handlers.is_empty() {
                    released.notify_one();
                }
            }
            result
        })
    }
}

/// This state's [`CronState`], created (with its store, scheduler and loop) on first use.
/// `Err` is a store failure, returned to Lua as `nil, err`.
async fn state(lua: &Lua) -> mlua::Result<Result<Rc<CronState>, String>> {
    if let Some(s) = lua.app_data_ref::<Rc<CronState>>() {
        return Ok(Ok(s.clone()));
    }
    // No bus here: a script's schedules log their runs and keep history; the daemon's
    // scheduler is the one that publishes on schedules.events.
    let bus: Option<crate::bus::Bus> = None;
    let (config, script, meter, tracker) = {
        let h = host(lua)?;
        (
            h.config.clone(),
            h.script.clone(),
            h.meter.clone(),
            h.spawned.clone(),
        )
    };
    let store = match crate::runtime::open_store(lua).await? {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    // Another call may have finished creating it while this one awaited the store.
    if let Some(s) = lua.app_data_ref::<Rc<CronState>>() {
        return Ok(Ok(s.clone()));
    }
    let handlers: Rc<RefCell<HashMap<String, Function>>> = Rc::default();
    let released = Rc::new(Notify::new());
    let runner = LuaRunner {
        handlers: handlers.clone(),
        released: released.clone(),
        lua: lua.weak(),
        meter,
        scripts: ScriptRunner::new(config.clone(), bus.clone()),
    };
    let scheduler = Scheduler::new(
        store as Arc<dyn crate::store::ScheduleStore>,
        Rc::new(runner),
        bus,
        crate::scheduler::Settings {
            lead: false,
            ..config.scheduler.settings()
        },
    );
    let looping = scheduler.clone();
    // Untracked: the loop alone does not keep a script running; function schedules do.
    tokio::task::spawn_local(async move { looping.run(std::future::pending()).await });
    let state = Rc::new(CronState {
        scheduler,
        handlers,
        released,
        holding: Rc::default(),
        source: format!("lua:{}:{}", sanitize(&script), std::process::id()),
        script,
        counter: std::cell::Cell::new(0),
        tracker,
    });
    lua.set_app_data(state.clone());
    Ok(Ok(state))
}

/// Schedule names allow letters, digits and `-_.:/`; anything else becomes `_`.
fn sanitize(text: &str) -> String {
    text.trim_start_matches("./")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn add(
    lua: &Lua,
    func: &str,
    handler: Value,
    opts: Option<Table>,
    set_trigger: impl FnOnce(&mut ScheduleDef),
) -> mlua::Result<mlua::MultiValue> {
    let handler = match handler {
        Value::Function(f) => Ok(f),
        Value::String(s) => Err(std::path::PathBuf::from(s.to_str()?.to_string())),
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{func}: handler must be a function or a script path, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let cron = match state(lua).await? {
        Ok(c) => c,
        Err(e) => return fail(lua, "store", e),
    };
    let mut def = ScheduleDef::new(String::new());
    set_trigger(&mut def);
    let custom_name = apply_options(lua, func, &mut def, opts.as_ref())?;
    let source = match &handler {
        Ok(_) => cron.source.clone(),
        Err(script) => {
            def.script = Some(script.clone());
            format!("script:{}", sanitize(&cron.script))
        }
    };
    if custom_name.is_none() {
        def.name = match &handler {
            Ok(_) => {
                cron.counter.set(cron.counter.get() + 1);
                format!(
                    "{}:{}",
                    cron.source.trim_start_matches("lua:"),
                    cron.counter.get()
                )
            }
            Err(script) => sanitize(&script.display().to_string()),
        };
    }
    let config = host(lua)?.config.clone();
    def.check_script(|p| config.resolve(p))
        .map_err(|m| misuse(lua, format!("{func}: {m}")))?;
    let name = def.name.clone();
    if let Ok(f) = &handler {
        cron.handlers.borrow_mut().insert(name.clone(), f.clone());
    }
    match cron.scheduler.add(def, &source).await {
        Ok(_) => {
            if handler.is_ok() {
                cron.hold();
            }
            Ok(mlua::MultiValue::from_iter([Value::String(
                lua.create_string(&name)?,
            )]))
        }
        Err(crate::scheduler::SchedulerError::Invalid(m)) => {
            cron.forget_handler(&name);
            Err(misuse(lua, format!("{func}: {m}")))
        }
        Err(e) => {
            cron.forget_handler(&name);
            fail(lua, "store", e.to_string())
        }
    }
}

/// Fills policies from `opts`; returns the custom name if one was given.
fn apply_options(
    lua: &Lua,
    func: &str,
    def: &mut ScheduleDef,
    opts: Option<&Table>,
) -> mlua::Result<Option<String>> {
    let Some(opts) = opts else {
        return Ok(None);
    };
    check_options(lua, func, opts, OPTIONS)?;
    let name: Option<String> = opts.get("name")?;
    if let Some(name) = &name {
        validate_name(name).map_err(|m| misuse(lua, format!("{func}: name: {m}")))?;
        def.name = name.clone();
    }
    def.timezone = opts.get("timezone")?;
    if let Some(s) = opts.get::<Option<String>>("missed")? {
        def.missed =
            serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
                misuse(
                    lua,
                    format!("{func}: missed: '{s}' is not one of skip, run_once, run_all"),
                )
            })?;
    }
    if let Some(s) = opts.get::<Option<String>>("overlap")? {
        def.overlap =
            serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
                misuse(
                    lua,
                    format!("{func}: overlap: '{s}' is not one of skip, queue, allow"),
                )
            })?;
    }
    let window: Value = opts.get("catchup_window")?;
    if !window.is_nil() {
        def.catchup_window = duration(lua, func, "catchup_window", &window)?;
    }
    let jitter: Value = opts.get("jitter")?;
    if !jitter.is_nil() {
        def.jitter = duration(lua, func, "jitter", &jitter)?;
    }
    if let Some(n) = opts.get::<Option<u32>>("max_failures")? {
        def.max_failures = n;
    }
    Ok(name)
}

async fn list(lua: &Lua) -> mlua::Result<mlua::MultiValue> {
    let cron = match state(lua).await? {
        Ok(c) => c,
        Err(e) => return fail(lua, "store", e),
    };
    let out = lua.create_table()?;
    for info in cron.scheduler.list() {
        out.push(info_table(lua, &info)?)?;
    }
    Ok(mlua::MultiValue::from_iter([Value::Table(out)]))
}

fn info_table(lua: &Lua, info: &ScheduleInfo) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("id", info.name.as_str())?;
    t.set("name", info.name.as_str())?;
    t.set("expr", info.expr.as_str())?;
    t.set("timezone", info.timezone.as_str())?;
    t.set("action", info.action.as_str())?;
    t.set(
        "next",
        lua.create_sequence_from(info.next.iter().map(String::as_str))?,
    )?;
    t.set("last_outcome", info.last_outcome.as_deref())?;
    t.set("paused", info.paused)?;
    t.set("failures", info.failures)?;
    t.set("running", info.running)?;
    Ok(t)
}

/// `next(expr, n?, opts?)`: the next `n` (default 5) fire times as epoch seconds, from
/// `opts.from` (epoch seconds, default now) in `opts.timezone` (default the configured one).
fn next(lua: &Lua, (expr, n, opts): (Value, Option<i64>, Option<Table>)) -> mlua::Result<Table> {
    let expr = super::support::required_str(lua, "cron.next", "expr", &expr)?;
    let n = n.unwrap_or(5);
    if !(1..=1000).contains(&n) {
        return Err(misuse(
            lua,
            format!("cron.next: n must be 1 to 1000, got {n}"),
        ));
    }
    let mut tz_name = host(lua)?.config.scheduler.timezone.clone();
    let mut from = chrono::Utc::now().timestamp_millis();
    if let Some(opts) = &opts {
        check_options(lua, "cron.next", opts, &["timezone", "from"])?;
        if let Some(tz) = opts.get::<Option<String>>("timezone")? {
            tz_name = tz;
        }
        if let Some(secs) = opts.get::<Option<f64>>("from")? {
            from = (secs * 1000.0) as Millis;
        }
    }
    let tz = trigger::parse_tz(&tz_name).map_err(|m| misuse(lua, format!("cron.next: {m}")))?;
    let t = trigger::parse_cron(&expr, tz).map_err(|m| misuse(lua, format!("cron.next: {m}")))?;
    let times = t.upcoming(from, n as usize);
    lua.create_sequence_from(times.into_iter().map(|ms| ms as f64 / 1000.0))
}
