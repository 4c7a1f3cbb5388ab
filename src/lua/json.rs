//! `dreamos.json`: `encode(v, opts?)`, `decode(s)`, `null`.
//!
//! Empty tables encode as `[]` only when marked with `json.array`, otherwise `{}`, because a
//! Lua table alone cannot say which it is. `null` round-trips as `json.null`.

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::support::{check_options, misuse};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("null", lua.null())?;
    m.set("array", lua.array_metatable())?;
    m.set("encode", lua.create_function(encode)?)?;
    m.set("decode", lua.create_function(decode)?)?;
    Ok(m)
}

fn encode(lua: &Lua, (value, opts): (Value, Option<Table>)) -> mlua::Result<String> {
    let mut pretty = false;
    if let Some(opts) = &opts {
        check_options(lua, "json.encode", opts, &["pretty"])?;
        pretty = opts.get::<Option<bool>>("pretty")?.unwrap_or(false);
    }
    if !pretty {
        return super::json_encode::encode(lua, &value)
            .map_err(|m| misuse(lua, format!("json.encode: {m}")));
    }
    if let Value::Function(_) | Value::Thread(_) = value {
        return Err(misuse(
            lua,
            format!(
                "json.encode: cannot encode a {}",
                super::support::type_name(&value)
            ),
        ));
    }
    let json: serde_json::Value = lua
        .from_value(value)
        .map_err(|e| misuse(lua, format!("json.encode: {}", clean(&e))))?;
    let out = if pretty {
        serde_json::to_string_pretty(&json)
    } else {
        serde_json::to_string(&json)
    };
    out.map_err(|e| misuse(lua, format!("json.encode: {e}")))
}

fn decode(lua: &Lua, text: Value) -> mlua::Result<Value> {
    let Value::String(text) = text else {
        return Err(misuse(
            lua,
            format!(
                "json.decode: expected a string, got {}",
                super::support::type_name(&text)
            ),
        ));
    };
    let bytes = text.as_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| misuse(lua, format!("json.decode: invalid JSON: {e}")))?;
    lua.to_value_with(
        &json,
        mlua::serde::SerializeOptions::new()
            .serialize_none_to_null(true)
            .serialize_unit_to_null(true),
    )
}

/// mlua's serde errors mention Rust types; say it in the script author's words.
fn clean(err: &mlua::Error) -> String {
    let text = err.to_string();
    if text.contains("recursive table") || text.contains("recursion") {
        "cannot encode a table that contains itself (cyclic table)".to_string()
    } else if text.contains("unsupported value type") {
        format!("{text} (only nil, booleans, numbers, strings and tables encode)")
    } else {
        text
    }
}
