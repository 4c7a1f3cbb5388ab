//! `dreamos.log`: `trace/debug/info/warn/error(msg, fields?)` and `devlog(category, text)`.
//!
//! Lines go through `tracing` with target `dreamos::script` and the script's name, so they
//! reach the console and the JSON-lines file alike; `fields` travel as one JSON object that
//! the file layer flattens into the record.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use tracing::Level;

use super::support::{misuse, required_str};
use crate::runtime::host;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    for (name, level) in [
        ("trace", Level::TRACE),
        ("debug", Level::DEBUG),
        ("info", Level::INFO),
        ("warn", Level::WARN),
        ("error", Level::ERROR),
    ] {
        m.set(
            name,
            lua.create_function(move |lua, (msg, fields): (Value, Option<Table>)| {
                emit(lua, name, level, msg, fields)
            })?,
        )?;
    }
    m.set(
        "devlog",
        lua.create_function(|lua, (category, text): (Value, Value)| {
            let category = required_str(lua, "log.devlog", "category", &category)?;
            let text = required_str(lua, "log.devlog", "text", &text)?;
            let script = host(lua)?.script.clone();
            crate::logging::devlog(&category, &text, Some(&script))
                .map_err(|e| misuse(lua, format!("log.devlog: {e}")))
        })?,
    )?;
    Ok(m)
}

fn emit(
    lua: &Lua,
    name: &str,
    level: Level,
    msg: Value,
    fields: Option<Table>,
) -> mlua::Result<()> {
    let func = format!("log.{name}");
    let msg = match &msg {
        Value::String(s) => s.to_string_lossy(),
        Value::Nil => return Err(misuse(lua, format!("{func}: message is required"))),
        other => other.to_string()?,
    };
    let fields = match fields {
        Some(t) => {
            let json: serde_json::Value = lua
                .from_value(Value::Table(t))
                .map_err(|e| misuse(lua, format!("{func}: fields: {e}")))?;
            if !json.is_object() {
                return Err(misuse(
                    lua,
                    format!("{func}: fields must be a table with string keys"),
                ));
            }
            json.to_string()
        }
        None => String::new(),
    };
    let script = host(lua)?.script.clone();
    macro_rules! at {
        ($lvl:expr) => {
            if fields.is_empty() {
                tracing::event!(target: "dreamos::script", $lvl, script = %script, "{}", msg)
            } else {
                tracing::event!(target: "dreamos::script", $lvl, script = %script, fields = %fields, "{}", msg)
            }
        };
    }
    match level {
        Level::TRACE => at!(Level::TRACE),
        Level::DEBUG => at!(Level::DEBUG),
        Level::INFO => at!(Level::INFO),
        Level::WARN => at!(Level::WARN),
        _ => at!(Level::ERROR),
    }
    Ok(())
}
