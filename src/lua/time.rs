//! `dreamos.time`: `now()`, `monotonic()`, `sleep(d)`, `duration("5m") -> seconds`,
//! `format(t?, fmt?, opts?)`.
//!
//! `sleep` suspends only the calling script (a tokio timer), never the runtime thread.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Utc};
use mlua::{Lua, Table, Value};

use super::support::{check_options, duration, misuse};

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "now",
        lua.create_function(|_, ()| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(now.as_secs_f64())
        })?,
    )?;
    let start = std::time::Instant::now();
    m.set(
        "monotonic",
        lua.create_function(move |_, ()| Ok(start.elapsed().as_secs_f64()))?,
    )?;
    m.set(
        "sleep",
        lua.create_async_function(|lua, d: Value| async move {
            let d = duration(&lua, "time.sleep", "duration", &d)?;
            if d.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(d).await;
            }
            Ok(())
        })?,
    )?;
    m.set(
        "duration",
        lua.create_function(|lua, d: Value| {
            Ok(duration(lua, "time.duration", "argument", &d)?.as_secs_f64())
        })?,
    )?;
    m.set("format", lua.create_function(format)?)?;
    Ok(m)
}

/// Formats epoch seconds with strftime; default is RFC 3339 in UTC with milliseconds.
fn format(
    lua: &Lua,
    (t, fmt, opts): (Option<f64>, Option<String>, Option<Table>),
) -> mlua::Result<String> {
    let mut local = false;
    if let Some(opts) = &opts {
        check_options(lua, "time.format", opts, &["local"])?;
        local = opts.get::<Option<bool>>("local")?.unwrap_or(false);
    }
    let secs = t.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    });
    let utc = DateTime::<Utc>::from_timestamp((secs.floor()) as i64, ((secs.fract()) * 1e9) as u32)
        .ok_or_else(|| misuse(lua, format!("time.format: {secs} is out of range")))?;
    let Some(fmt) = fmt else {
        return Ok(if local {
            utc.with_timezone(&Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        } else {
            utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    };
    // chrono panics when displaying an invalid format, so validate the items first.
    let items: Vec<Item> = StrftimeItems::new(&fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(misuse(
            lua,
            format!("time.format: invalid format '{fmt}' (strftime, e.g. \"%Y-%m-%d %H:%M\")"),
        ));
    }
    Ok(if local {
        utc.with_timezone(&Local)
            .format_with_items(items.into_iter())
            .to_string()
    } else {
        utc.format_with_items(items.into_iter()).to_string()
    })
}
