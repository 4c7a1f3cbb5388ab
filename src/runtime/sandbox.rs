//! The sandbox: a trimmed standard library, the prelude, and the hook that enforces the
//! instruction budget, the wall-clock timeout and Ctrl-C.
//!
//! Removed: `os.execute`, `os.remove`, `os.rename`, `os.tmpname`, `os.setlocale`,
//! `io.open`, `io.popen`, `io.lines`, `io.input`, `io.output`, `io.tmpfile`, `dofile`,
//! `loadfile`, `package.loadlib`, the C module searchers, and all of `debug` except
//! `traceback`. File, network and process access go through `dreamos.fs`, `dreamos.http` and
//! `dreamos.exec`, which check grants. `os.exit(code)` ends the script with that exit status
//! instead of killing the process, so it is safe in a host running other scripts.

use std::rc::Rc;

use mlua::{Function, HookTriggers, Lua, StdLib, Table, Value, VmState};

use super::Meter;

/// Registry key of the untouched `debug.traceback`, used for tracebacks of failed threads.
pub const TRACEBACK_KEY: &str = "dreamos.traceback";

/// Instructions between two hook calls: small enough for Ctrl-C to feel instant and for
/// the budget to be exact to 0.01%, large enough that the hook costs nothing measurable.
const HOOK_STEP: u32 = 10_000;

/// The error a script raises when it hits a limit or is interrupted. Kept as a type so the
/// driver can tell it from the script's own errors.
#[derive(Debug, Clone)]
pub struct LimitExceeded(pub String);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// `os.exit(code)`: unwinds the script and becomes its exit status.
#[derive(Debug, Clone, Copy)]
pub struct ExitRequest(pub i32);

impl std::fmt::Display for ExitRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "os.exit({})", self.0)
    }
}

impl std::error::Error for ExitRequest {}

pub fn trim(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let debug: Table = g.get("debug")?;
    let traceback: Function = debug.get("traceback")?;
    lua.set_named_registry_value(TRACEBACK_KEY, traceback.clone())?;
    let slim_debug = lua.create_table()?;
    slim_debug.set("traceback", traceback)?;
    g.set("debug", slim_debug)?;

    // Absent when loaded lazily (see `install_lazy_libs`), which trims them then.
    if let Value::Table(os) = g.raw_get("os")? {
        trim_os(lua, &os)?;
    }
    if let Value::Table(io) = g.raw_get("io")? {
        trim_io(&io)?;
    }
    for name in ["dofile", "loadfile"] {
        g.set(name, Value::Nil)?;
    }
    let package: Table = g.get("package")?;
    package.set("loadlib", Value::Nil)?;
    package.set("cpath", "")?;
    Ok(())
}

fn trim_os(lua: &Lua, os: &Table) -> mlua::Result<()> {
    for name in [
        "execute",
        "remove",
        "rename",
        "tmpname",
        "setlocale",
        "exit",
    ] {
        os.set(name, Value::Nil)?;
    }
    os.set(
        "exit",
        lua.create_function(|_, code: Value| -> mlua::Result<()> {
            let code = match code {
                Value::Nil | Value::Boolean(true) => 0,
                Value::Boolean(false) => 1,
                Value::Integer(n) => n as i32,
                Value::Number(n) => n as i32,
                _ => {
                    return Err(mlua::Error::runtime(
                        "os.exit: code must be a number or boolean",
                    ))
                }
            };
            Err(mlua::Error::external(ExitRequest(code)))
        })?,
    )
}

fn trim_io(io: &Table) -> mlua::Result<()> {
    for name in [
        "open", "popen", "lines", "input", "output", "tmpfile", "close",
    ] {
        io.set(name, Value::Nil)?;
    }
    Ok(())
}

/// Standard libraries an agent state opens on first use instead of at start-up.
pub fn lazy_libs() -> StdLib {
    StdLib::IO | StdLib::OS | StdLib::UTF8 | StdLib::MATH
}

/// Opens `math`, `utf8`, `os` and `io` when a script first names them (a metatable on the
/// globals), trimmed as at start-up. An agent state is paid for ten thousand times in a
/// big swarm, and most agents never touch these; they cost about 6 KiB a state.
pub fn install_lazy_libs(lua: &Lua) -> mlua::Result<()> {
    let mt = lua.create_table()?;
    mt.set(
        "__index",
        lua.create_function(|lua, (globals, key): (Table, Value)| {
            let Value::String(name) = &key else {
                return Ok(Value::Nil);
            };
            let name = name.to_string_lossy();
            let lib = match name.as_str() {
                "math" => StdLib::MATH,
                "utf8" => StdLib::UTF8,
                "os" => StdLib::OS,
                "io" => StdLib::IO,
                _ => return Ok(Value::Nil),
            };
            lua.load_std_libs(lib)?;
            let Value::Table(t) = globals.raw_get::<Value>(key.clone())? else {
                return Ok(Value::Nil);
            };
            match name.as_str() {
                "os" => trim_os(lua, &t)?,
                "io" => trim_io(&t)?,
                _ => {}
            }
            Ok(Value::Table(t))
        })?,
    )?;
    lua.globals().set_metatable(Some(mt))
}

pub fn install_prelude(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let co: Table = g.get("coroutine")?;
    let load: Function = g.get("load")?;
    super::loader::load_compiled(lua, include_bytes!("prelude.lua"), "=dreamos.prelude")?
        .call::<()>((
            Value::LightUserData(Lua::poll_pending()),
            co.get::<Function>("resume")?,
            co.get::<Function>("yield")?,
            co.get::<Function>("create")?,
            co.get::<Function>("status")?,
            co.get::<Function>("close")?,
            load,
            g.get::<Function>("pcall")?,
            g.get::<Function>("xpcall")?,
            lua.create_function(clean_error)?,
        ))
}

/// For the prelude: turns an error value from Rust into its plain message, and says
/// whether it is a sandbox stop that must not be caught.
fn clean_error(lua: &Lua, value: Value) -> mlua::Result<(Value, bool)> {
    let Value::Error(err) = &value else {
        return Ok((value, false));
    };
    let fatal = super::driver::is_fatal(err);
    let message = super::driver::error_message(lua, err);
    let message = message
        .split_once("\nstack traceback:")
        .map(|(m, _)| m.to_string())
        .unwrap_or(message);
    Ok((Value::String(lua.create_string(message)?), fatal))
}

pub fn install_hook(lua: &Lua, meter: Rc<Meter>) -> mlua::Result<()> {
    let step = match meter.limit {
        0 => HOOK_STEP,
        limit => HOOK_STEP.min(limit.try_into().unwrap_or(HOOK_STEP)).max(1),
    };
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(step),
        move |_lua, debug| {
            let used = meter.used.get() + u64::from(step);
            meter.used.set(used);
            let place = || {
                let src = debug.source();
                let file = src.short_src.as_deref().unwrap_or("?").to_string();
                format!("{file}:{}: ", debug.current_line().unwrap_or(0))
            };
            if meter.interrupted() {
                return Err(limit(format!("{}interrupted", place())));
            }
            if meter.limit > 0 && used > meter.limit {
                return Err(limit(format!(
                    "{}instruction limit of {} exceeded without suspending (sandbox.instruction_limit); is there an endless loop?",
                    place(),
                    meter.limit
                )));
            }
            if let Some(deadline) = meter.deadline.get() {
                if std::time::Instant::now() >= deadline {
                    return Err(limit(format!("{}{}", place(), timeout_message(&meter))));
                }
            }
            Ok(VmState::Continue)
        },
    )
}

fn limit(message: String) -> mlua::Error {
    mlua::Error::external(LimitExceeded(message))
}

/// The message for a script stopped by `sandbox.timeout`.
pub fn timeout_message(meter: &Meter) -> String {
    format!(
        "wall-clock timeout of {} exceeded (sandbox.timeout)",
        crate::units::format_duration(meter.timeout)
    )
}
