//! `dreamos.bus`: `send`, `publish`, `subscribe`, `recv`, `request`, `reply`, `history`,
//! `export` — the message bus (`crate::bus`) as scripts see it.
//!
//! - `send` returns a receipt userdata (`receipt.id`, `receipt:wait(timeout)`) once the
//!   message is on disk.
//! - [`recv`] hands out messages as plain tables with `ack`, `nack` and `extend` methods; the
//!   delivery behind each table is kept on the Rust side, so a message can be printed,
//!   copied or JSON-encoded like any other table.
//! - [`subscribe`] runs a handler in this state for every matching `publish`.
//!
//! Errors follow the house rule: misuse (a bad channel, a payload JSON cannot hold, a payload
//! over `bus.max_payload`, an unknown option) raises at the call, naming the function;
//! failures of the world (a timeout, the store) return `nil, err`. The sender recorded in
//! history is the script's name unless `opts.from` says otherwise.
//!
//! The bus is created on first use over the embedded store and kept in the state's
//! [`Host`](crate::runtime::Host), unless whoever created the state put a shared one there.

mod recv;
mod subscribe;

pub use recv::settle_thread;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::support::{check_options, duration, fail, misuse, required_str, type_name};
use crate::bus::{Bus, BusError, HistoryQuery, Millis, Receipt, SendOptions};
use crate::runtime::host;

/// How long `receipt:wait()` and `request` wait when no timeout is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

const SEND_OPTIONS: &[&str] = &[
    "priority",
    "max_attempts",
    "backoff",
    "ttl",
    "headers",
    "correlation_id",
    "from",
];
const REQUEST_OPTIONS: &[&str] = &[
    "timeout",
    "priority",
    "max_attempts",
    "backoff",
    "headers",
    "correlation_id",
    "from",
];
const HISTORY_OPTIONS: &[&str] = &["channel", "agent", "since", "until", "limit"];

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    recv::install(lua)?;
    subscribe::install(lua)?;
    let m = lua.create_table()?;
    m.set("send", lua.create_async_function(send)?)?;
    m.set("publish", lua.create_async_function(publish)?)?;
    m.set(
        "subscribe",
        lua.create_async_function(subscribe::subscribe)?,
    )?;
    m.set("recv", lua.create_async_function(recv::recv)?)?;
    m.set("request", lua.create_async_function(request)?)?;
    m.set("reply", lua.create_async_function(reply)?)?;
    m.set("history", lua.create_async_function(history)?)?;
    m.set("export", lua.create_async_function(export)?)?;
    Ok(m)
}

/// This state's bus if it exists already: the hot path, without an `await`, so the futures
/// of the module's functions stay small (mlua boxes one per call).
pub(crate) fn ready_bus(lua: &Lua) -> mlua::Result<Option<Bus>> {
    Ok(host(lua)?.bus.get().cloned())
}

/// Creates this state's bus, opening the store, on first use. The inner `Err` is a failure
/// of the world for `nil, err`.
pub(crate) async fn open_bus(lua: &Lua) -> mlua::Result<Result<Bus, String>> {
    let config = host(lua)?.config.bus.clone();
    let store = match crate::runtime::open_store(lua).await? {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    let bus = match Bus::new(store, config) {
        Ok(bus) => bus,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let h = host(lua)?;
    Ok(Ok(h.bus.get_or_init(|| async { bus }).await.clone()))
}

/// This state's bus, or returns `nil, err` from the calling function when the store cannot
/// be opened. The cold path is boxed so it does not size every call's future.
macro_rules! bus_or_fail {
    ($lua:expr) => {
        match $crate::lua::bus::ready_bus(&$lua)? {
            Some(bus) => bus,
            None => match Box::pin($crate::lua::bus::open_bus(&$lua)).await? {
                Ok(bus) => bus,
                Err(message) => return $crate::lua::support::fail(&$lua, "store", message),
            },
        }
    };
}
pub(crate) use bus_or_fail;

/// Misuse raises; failures of the world become `nil, err`.
pub(crate) fn failure(lua: &Lua, func: &str, e: BusError) -> mlua::Result<MultiValue> {
    if e.is_misuse() {
        Err(misuse(lua, format!("{func}: {e}")))
    } else {
        fail(lua, e.kind(), e.to_string())
    }
}

/// The sender name for history: the script's name, as the kv namespace is.
fn script_name(lua: &Lua) -> mlua::Result<String> {
    Ok(host(lua)?.script.trim_start_matches("./").to_string())
}

/// A payload as JSON, or a misuse error saying why it cannot be one. Checked before
/// anything is stored, so nothing half-written is left behind.
pub(crate) fn payload_json(lua: &Lua, func: &str, value: Value) -> mlua::Result<serde_json::Value> {
    let why = match &value {
        Value::Function(_) | Value::Thread(_) | Value::UserData(_) | Value::Error(_) => {
            Some(format!("a {} is not JSON data", type_name(&value)))
        }
        Value::LightUserData(p) if !p.0.is_null() => {
            Some("a light userdata is not JSON data".into())
        }
        _ => None,
    };
    let converted = match why {
        Some(why) => Err(why),
        None => lua.from_value(value).map_err(|e| explain_conversion(&e)),
    };
    converted.map_err(|why| {
        misuse(
            lua,
            format!(
                "{func}: payload cannot be stored as JSON: {why} (send nil, booleans, numbers, \
                 strings and tables of them)"
            ),
        )
    })
}

/// mlua's serde errors speak of Rust types; say it in the script author's words.
pub(crate) fn explain_conversion(err: &mlua::Error) -> String {
    let text = err.to_string();
    let text = text.trim_start_matches("deserialize error: ");
    if text.contains("recursive table") {
        return "the table contains itself (a cyclic table)".into();
    }
    if let Some(rest) = text.strip_prefix("unsupported value type `") {
        let kind = rest.trim_end_matches('`');
        return format!("it contains a {kind}, which is not JSON data");
    }
    text.to_string()
}

/// JSON to Lua: nested nulls become `json.null`, arrays keep the array marker.
pub(crate) fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value(v)
}

/// Milliseconds since the epoch as the seconds `time.now()` uses.
pub(crate) fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

/// An optional options table.
pub(crate) fn options(lua: &Lua, func: &str, v: Value) -> mlua::Result<Option<Table>> {
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        other => Err(misuse(
            lua,
            format!("{func}: options must be a table, got {}", type_name(&other)),
        )),
    }
}

fn opt_string(lua: &Lua, func: &str, what: &str, v: Value) -> mlua::Result<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        v => required_str(lua, func, what, &v).map(Some),
    }
}

fn opt_duration(lua: &Lua, func: &str, what: &str, v: Value) -> mlua::Result<Option<Duration>> {
    match v {
        Value::Nil => Ok(None),
        v => duration(lua, func, what, &v).map(Some),
    }
}

/// Reads the options of `send` and `request` (the caller checked the keys); returns them
/// and the sender name to use.
fn send_options(lua: &Lua, func: &str, t: Option<&Table>) -> mlua::Result<(SendOptions, String)> {
    let mut opts = SendOptions::default();
    let Some(t) = t else {
        return Ok((opts, script_name(lua)?));
    };
    if let Some(p) = opt_string(lua, func, "priority", t.get("priority")?)? {
        opts.priority = p
            .parse()
            .map_err(|m: String| misuse(lua, format!("{func}: {m}")))?;
    }
    opts.max_attempts = match t.get::<Value>("max_attempts")? {
        Value::Nil => None,
        Value::Integer(n) if n >= 1 && n <= i64::from(u32::MAX) => Some(n as u32),
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{func}: max_attempts must be a whole number of at least 1, got {}",
                    other
                        .to_string()
                        .unwrap_or_else(|_| type_name(&other).into())
                ),
            ))
        }
    };
    opts.backoff = opt_duration(lua, func, "backoff", t.get("backoff")?)?;
    opts.ttl = opt_duration(lua, func, "ttl", t.get("ttl")?)?;
    opts.correlation_id = opt_string(lua, func, "correlation_id", t.get("correlation_id")?)?;
    if let Some(headers) = t.get::<Option<Value>>("headers")? {
        opts.headers = header_map(lua, func, headers)?;
    }
    let from = match opt_string(lua, func, "from", t.get("from")?)? {
        Some(from) => from,
        None => script_name(lua)?,
    };
    Ok((opts, from))
}

/// `headers = {name = "value"}`; numbers and booleans are written as text.
fn header_map(lua: &Lua, func: &str, v: Value) -> mlua::Result<BTreeMap<String, String>> {
    let Value::Table(t) = v else {
        return Err(misuse(
            lua,
            format!(
                "{func}: headers must be a table of strings, got {}",
                type_name(&v)
            ),
        ));
    };
    let mut map = BTreeMap::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(name) = &k else {
            return Err(misuse(
                lua,
                format!(
                    "{func}: header names must be strings, got {}",
                    type_name(&k)
                ),
            ));
        };
        let name = name.to_str()?.to_string();
        let value = match &v {
            Value::String(s) => s.to_str()?.to_string(),
            Value::Integer(_) | Value::Number(_) | Value::Boolean(_) => v.to_string()?,
            other => {
                return Err(misuse(
                    lua,
                    format!(
                        "{func}: header '{name}' must be a string, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        map.insert(name, value);
    }
    Ok(map)
}

async fn send(lua: Lua, (to, payload, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "bus.send";
    let to = required_str(&lua, F, "to", &to)?;
    let opts = options(&lua, F, opts)?;
    if let Some(t) = &opts {
        check_options(&lua, F, t, SEND_OPTIONS)?;
    }
    let (opts, from) = send_options(&lua, F, opts.as_ref())?;
    let payload = payload_json(&lua, F, payload)?;
    let bus = bus_or_fail!(lua);
    // Boxed: mlua boxes this function's future per call, and with the bus's future inline it
    // would be a large allocation, the slow kind for malloc. Two small ones are cheaper.
    match Box::pin(bus.send(&from, &to, &payload, opts)).await {
        Ok(receipt) => Ok(MultiValue::from_iter([Value::UserData(
            lua.create_userdata(LuaReceipt(receipt))?,
        )])),
        Err(e) => failure(&lua, F, e),
    }
}

/// What `send` and `reply` return.
struct LuaReceipt(Receipt);

impl UserData for LuaReceipt {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id()));
        fields.add_field_method_get("ids", |lua, this| {
            lua.create_sequence_from(this.0.ids().iter().copied())
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_method("wait", |lua, this, timeout: Value| async move {
            let timeout = match timeout {
                Value::Nil => DEFAULT_WAIT,
                v => duration(&lua, "receipt:wait", "timeout", &v)?,
            };
            let receipt = this.0.clone();
            drop(this);
            match receipt.wait(timeout).await {
                Ok(outcome) => Ok(MultiValue::from_iter([Value::String(
                    lua.create_string(outcome.as_str())?,
                )])),
                Err(e) => failure(&lua, "receipt:wait", e),
            }
        });
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("receipt #{}", this.0.id()))
        });
    }
}

async fn publish(
    lua: Lua,
    (topic, payload, opts): (Value, Value, Value),
) -> mlua::Result<MultiValue> {
    const F: &str = "bus.publish";
    let topic = required_str(&lua, F, "topic", &topic)?;
    let from = match options(&lua, F, opts)? {
        Some(t) => {
            check_options(&lua, F, &t, &["from"])?;
            opt_string(&lua, F, "from", t.get("from")?)?
        }
        None => None,
    };
    let from = match from {
        Some(from) => from,
        None => script_name(&lua)?,
    };
    let payload = payload_json(&lua, F, payload)?;
    let bus = bus_or_fail!(lua);
    match bus.publish(&from, &topic, payload) {
        Ok(reached) => Ok(MultiValue::from_iter([Value::Integer(reached as i64)])),
        Err(e) => failure(&lua, F, e),
    }
}

async fn request(lua: Lua, (to, payload, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "bus.request";
    let to = required_str(&lua, F, "to", &to)?;
    let opts = options(&lua, F, opts)?;
    let mut timeout = DEFAULT_WAIT;
    if let Some(t) = &opts {
        check_options(&lua, F, t, REQUEST_OPTIONS)?;
        if let Some(d) = opt_duration(&lua, F, "timeout", t.get("timeout")?)? {
            timeout = d;
        }
    }
    let (send_opts, from) = send_options(&lua, F, opts.as_ref())?;
    let payload = payload_json(&lua, F, payload)?;
    let bus = bus_or_fail!(lua);
    match Box::pin(bus.request(&from, &to, &payload, timeout, send_opts)).await {
        // A null reply comes back as json.null, so nil always means failure.
        Ok(reply) if reply.payload.is_null() => Ok(MultiValue::from_iter([lua.null()])),
        Ok(reply) => Ok(MultiValue::from_iter([json_to_lua(&lua, &reply.payload)?])),
        Err(e) => failure(&lua, F, e),
    }
}

async fn reply(lua: Lua, (msg, payload): (Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "bus.reply";
    let request = recv::request_of(&lua, F, &msg)?;
    let payload = payload_json(&lua, F, payload)?;
    let from = script_name(&lua)?;
    let bus = bus_or_fail!(lua);
    match Box::pin(bus.reply(&from, &request, &payload)).await {
        Ok(receipt) => Ok(MultiValue::from_iter([Value::UserData(
            lua.create_userdata(LuaReceipt(receipt))?,
        )])),
        Err(e) => failure(&lua, F, e),
    }
}

async fn history(lua: Lua, filter: Value) -> mlua::Result<MultiValue> {
    const F: &str = "bus.history";
    let mut query = HistoryQuery::default();
    if let Some(t) = options(&lua, F, filter)? {
        check_options(&lua, F, &t, HISTORY_OPTIONS)?;
        query.channel = opt_string(&lua, F, "channel", t.get("channel")?)?;
        query.agent = opt_string(&lua, F, "agent", t.get("agent")?)?;
        query.since = time_arg(&lua, F, "since", t.get("since")?)?;
        query.until = time_arg(&lua, F, "until", t.get("until")?)?;
        query.limit = match t.get::<Value>("limit")? {
            Value::Nil => 0,
            Value::Integer(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            other => {
                return Err(misuse(
                    &lua,
                    format!(
                        "{F}: limit must be a whole number of at least 1, got {}",
                        other
                            .to_string()
                            .unwrap_or_else(|_| type_name(&other).into())
                    ),
                ))
            }
        };
    }
    let bus = bus_or_fail!(lua);
    match bus.history(query).await {
        // Absent times and errors become nil (not json.null, which is truthy).
        Ok(records) => Ok(MultiValue::from_iter([lua.to_value_with(
            &records,
            mlua::serde::SerializeOptions::new().serialize_none_to_null(false),
        )?])),
        Err(e) => failure(&lua, F, e),
    }
}

/// A point in time: epoch seconds (as `time.now()` gives) or an RFC 3339 string (as history
/// records carry).
fn time_arg(lua: &Lua, func: &str, what: &str, v: Value) -> mlua::Result<Option<Millis>> {
    let bad = |got: String| {
        misuse(
            lua,
            format!(
                "{func}: {what} must be epoch seconds (time.now()) or an RFC 3339 time such as \
                 \"2026-01-31T12:00:00Z\", got {got}"
            ),
        )
    };
    match v {
        Value::Nil => Ok(None),
        Value::Integer(n) => Ok(Some(n.saturating_mul(1000))),
        Value::Number(n) if n.is_finite() => Ok(Some((n * 1000.0) as Millis)),
        Value::String(s) => {
            let text = s.to_str()?.to_string();
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| Some(t.timestamp_millis()))
                .map_err(|_| bad(format!("'{text}'")))
        }
        other => Err(bad(type_name(&other).to_string())),
    }
}

async fn export(lua: Lua, path: Value) -> mlua::Result<MultiValue> {
    const F: &str = "bus.export";
    // The configured export path is the operator's choice and needs no grant; any other
    // path is a file write like fs.write and needs an fs grant covering it.
    let path: Option<PathBuf> = match path {
        Value::Nil => None,
        v => {
            let text = required_str(&lua, F, "path", &v)?;
            let h = host(&lua)?;
            Some(
                h.grants
                    .check_fs(&text)
                    .map_err(|m| misuse(&lua, format!("{F}: {m}")))?,
            )
        }
    };
    let bus = bus_or_fail!(lua);
    match bus.export(HistoryQuery::default(), path.as_deref()).await {
        Ok(report) => {
            let t = lua.create_table()?;
            t.set("path", report.path.display().to_string())?;
            t.set("records", report.records)?;
            Ok(MultiValue::from_iter([Value::Table(t)]))
        }
        Err(e) => failure(&lua, F, e),
    }
}
