//! Shared argument checking and error shaping for every Lua module, so every misuse reads
//! the same way: `file:line: module.fn: what is wrong (the fix)`.

use std::time::Duration;

use mlua::{Lua, Table, Value};

/// A misuse error, prefixed with the calling script's `file:line`.
pub fn misuse(lua: &Lua, message: impl AsRef<str>) -> mlua::Error {
    mlua::Error::runtime(format!("{}{}", caller(lua), message.as_ref()))
}

/// `file:line: ` of the Lua code that called the running Rust function, or "". Frames of
/// C functions, of mlua's async wrapper (`__mlua_async_poll`, which sits between a script
/// and every async function) and of the prelude (whose `pcall` calls the function when a
/// script writes `pcall(mod.fn, ...)`) are skipped, so errors point at the script.
pub fn caller(lua: &Lua) -> String {
    for level in 1..8 {
        let found = lua.inspect_stack(level, |d| {
            let src = d.source();
            let file = src.short_src.as_deref().unwrap_or_default().to_string();
            let internal = file.starts_with("__mlua") || file == "dreamos.prelude";
            if src.what == "C" || internal || file.is_empty() {
                return None;
            }
            d.current_line().map(|line| format!("{file}:{line}: "))
        });
        match found {
            Some(Some(place)) => return place,
            Some(None) => continue,
            None => break,
        }
    }
    String::new()
}

/// Refuses keys of `opts` not in `allowed`, suggesting the nearest one.
pub fn check_options(lua: &Lua, func: &str, opts: &Table, allowed: &[&str]) -> mlua::Result<()> {
    for pair in opts.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let name = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                return Err(misuse(
                    lua,
                    format!(
                        "{func}: option keys must be strings, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        if !allowed.contains(&name.as_str()) {
            let known: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            let hint = match crate::config::did_you_mean(&name, &known) {
                Some(best) => format!(" (did you mean '{best}'?)"),
                None => format!(" (valid options: {})", allowed.join(", ")),
            };
            return Err(misuse(
                lua,
                format!("{func}: unknown option '{name}'{hint}"),
            ));
        }
    }
    Ok(())
}

/// A duration argument: seconds as a number, or a string such as `"250ms"` or `"1h30m"`.
pub fn duration(lua: &Lua, func: &str, what: &str, value: &Value) -> mlua::Result<Duration> {
    let parsed = match value {
        Value::Integer(n) => {
            crate::units::seconds(*n as f64).ok_or_else(|| format!("{n} is negative"))
        }
        Value::Number(n) => {
            crate::units::seconds(*n).ok_or_else(|| format!("{n} is not a valid number of seconds"))
        }
        Value::String(s) => crate::units::parse_duration(&s.to_string_lossy()),
        other => Err(format!(
            "expected seconds or a string such as \"5m\", got {}",
            type_name(other)
        )),
    };
    parsed.map_err(|m| misuse(lua, format!("{func}: {what}: {m}")))
}

/// The `err` of a `nil, err` return: a table with `kind` and `message`, whose `tostring`
/// is `kind: message`.
pub fn world_error(lua: &Lua, kind: &str, message: impl AsRef<str>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("kind", kind)?;
    t.set("message", message.as_ref())?;
    t.set_metatable(Some(error_metatable(lua)?))?;
    Ok(t)
}

/// `nil, err` as a multi-value.
pub fn fail(lua: &Lua, kind: &str, message: impl AsRef<str>) -> mlua::Result<mlua::MultiValue> {
    let err = world_error(lua, kind, message)?;
    Ok(mlua::MultiValue::from_iter([Value::Nil, Value::Table(err)]))
}

fn error_metatable(lua: &Lua) -> mlua::Result<Table> {
    const KEY: &str = "dreamos.error_mt";
    if let Ok(mt) = lua.named_registry_value::<Table>(KEY) {
        return Ok(mt);
    }
    let mt = lua.create_table()?;
    mt.set(
        "__tostring",
        lua.create_function(|_, t: Table| {
            let kind: String = t.get("kind").unwrap_or_default();
            let message: String = t.get("message").unwrap_or_default();
            Ok(format!("{kind}: {message}"))
        })?,
    )?;
    mt.set("__name", "dreamos.error")?;
    lua.set_named_registry_value(KEY, mt.clone())?;
    Ok(mt)
}

/// A string argument that must be present.
pub fn required_str(lua: &Lua, func: &str, what: &str, value: &Value) -> mlua::Result<String> {
    match value {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Nil => Err(misuse(lua, format!("{func}: {what} is required"))),
        other => Err(misuse(
            lua,
            format!("{func}: {what} must be a string, got {}", type_name(other)),
        )),
    }
}

/// The type name Lua's `type()` would give (mlua says "integer" for integers).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::Error(_) => "error",
        other => other.type_name(),
    }
}
