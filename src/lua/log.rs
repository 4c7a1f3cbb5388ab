//! `dreamos.log`: `trace/debug/info/warn/error(msg, fields?)`, `devlog(category, text)` and
//! `devlogs(opts?)`, which reads devlog entries back (for devlog-to-social strategies).
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
    m.set(
        "devlogs",
        lua.create_async_function(
            |lua, opts: Option<Table>| async move { devlogs(&lua, opts).await },
        )?,
    )?;
    Ok(m)
}

/// Devlog entries from `<log.dir>/devlog.jsonl` (and its rotated files), oldest first:
/// `{ts, time, category, text, script}`. Options: `category`, `since` (epoch seconds),
/// `limit` (the newest N; default 100).
async fn devlogs(lua: &Lua, opts: Option<Table>) -> mlua::Result<Value> {
    const F: &str = "log.devlogs";
    let mut query = crate::logging::LogQuery {
        source: crate::logging::LogSource::DevLog,
        limit: Some(100),
        ..Default::default()
    };
    if let Some(opts) = &opts {
        super::support::check_options(lua, F, opts, &["category", "since", "limit"])?;
        query.category = opts.get("category")?;
        if let Some(since) = opts.get::<Option<f64>>("since")? {
            query.since = chrono::DateTime::from_timestamp_millis((since * 1000.0) as i64);
        }
        if let Some(limit) = opts.get::<Option<usize>>("limit")? {
            query.limit = Some(limit);
        }
    }
    let config = host(lua)?.config.clone();
    if config.log.dir.as_os_str().is_empty() {
        return Err(misuse(
            lua,
            format!("{F}: [log] dir is empty, so no devlog file is kept"),
        ));
    }
    let dir = config.resolve(&config.log.dir);
    let found = tokio::task::spawn_blocking(move || {
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        crate::logging::search(&dir, &query)
    })
    .await
    .map_err(|e| misuse(lua, format!("{F}: {e}")))?;
    let records = match found {
        Ok(r) => r,
        Err(e) => return Err(misuse(lua, format!("{F}: {e:#}"))),
    };
    let out = lua.create_table()?;
    for r in records {
        let t = lua.create_table()?;
        let ts = r["ts"].as_str().unwrap_or_default().to_string();
        let time = chrono::DateTime::parse_from_rfc3339(&ts)
            .map(|d| d.timestamp_millis() as f64 / 1000.0)
            .unwrap_or(0.0);
        t.set("ts", ts)?;
        t.set("time", time)?;
        t.set("category", r["category"].as_str().unwrap_or_default())?;
        t.set("text", r["message"].as_str().unwrap_or_default())?;
        if let Some(script) = r["script"].as_str() {
            t.set("script", script)?;
        }
        out.push(t)?;
    }
    Ok(Value::Table(out))
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
