//! The compact JSON encoder behind `json.encode`: walks Lua values and writes text directly
//! instead of building a `serde_json::Value` first. Measured, the two cost about the same
//! (~1 µs for a small table, dominated by mlua's table iteration); this one exists for its
//! errors, which name the offending value (NaN, a non-UTF-8 string, a function, a cycle).
//!
//! Rules (the same as the serde path, so output does not depend on the option used):
//! object keys are sorted, so equal tables encode to equal text (content hashes rely on it);
//! a table is an array when it has the `json.array` metatable or its keys are exactly
//! `1..n` with n > 0; `json.null` encodes as `null`; integer keys of objects become strings.

use std::fmt::Write;

use mlua::{Lua, LuaSerdeExt, Table, Value};

/// Nesting deeper than this is refused, as `json.decode` refuses it.
const MAX_DEPTH: usize = 128;

pub fn encode(lua: &Lua, value: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(64);
    let array_mt = lua.array_metatable();
    let mut path = Vec::new();
    write_value(value, &array_mt, &mut out, &mut path)?;
    Ok(out)
}

fn write_value(
    value: &Value,
    array_mt: &Table,
    out: &mut String,
    path: &mut Vec<*const std::ffi::c_void>,
) -> Result<(), String> {
    match value {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(p) if p.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Number(n) if n.is_finite() => {
            let _ = write!(out, "{n}");
        }
        Value::Number(n) => return Err(format!("cannot encode {n} (JSON has no NaN or infinity)")),
        Value::String(s) => {
            let text = s
                .to_str()
                .map_err(|_| "cannot encode a string that is not valid UTF-8".to_string())?;
            write_string(&text, out);
        }
        Value::Table(t) => write_table(t, array_mt, out, path)?,
        other => {
            return Err(format!(
                "cannot encode a {}",
                super::support::type_name(other)
            ))
        }
    }
    Ok(())
}

fn write_table(
    t: &Table,
    array_mt: &Table,
    out: &mut String,
    path: &mut Vec<*const std::ffi::c_void>,
) -> Result<(), String> {
    let ptr = t.to_pointer();
    if path.contains(&ptr) {
        return Err("cannot encode a table that contains itself (cyclic table)".into());
    }
    if path.len() >= MAX_DEPTH {
        return Err(format!("tables nested deeper than {MAX_DEPTH} levels"));
    }
    path.push(ptr);
    let len = t.raw_len();
    let mut entries: Vec<(Value, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        entries.push(pair.map_err(|e| e.to_string())?);
    }
    let marked = t.metatable().is_some_and(|mt| mt == *array_mt);
    if marked || (len > 0 && entries.len() == len) {
        out.push('[');
        for i in 1..=len {
            if i > 1 {
                out.push(',');
            }
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            write_value(&v, array_mt, out, path)?;
        }
        out.push(']');
    } else {
        let mut keyed: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = match k {
                Value::String(s) => s
                    .to_str()
                    .map_err(|_| "cannot encode a key that is not valid UTF-8".to_string())?
                    .to_string(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "cannot encode a table with a {} key",
                        super::support::type_name(&other)
                    ))
                }
            };
            keyed.push((key, v));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        out.push('{');
        for (i, (k, v)) in keyed.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(k, out);
            out.push(':');
            write_value(v, array_mt, out, path)?;
        }
        out.push('}');
    }
    path.pop();
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
