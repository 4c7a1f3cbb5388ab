//! `bus.recv(channel, timeout?)` and the message tables it returns, with `msg:ack()`,
//! `msg:nack(err, opts?)` and `msg:extend(d)`.
//!
//! A message is a plain table (id, from, to, channel, payload, priority, headers,
//! correlation_id, reply_to, attempt, max_attempts, created_at, expires_at) whose metatable
//! holds the methods, so it prints, copies and JSON-encodes like any table. The delivery
//! behind it stays on the Rust side, in this state's [`Holds`], keyed by (id, attempt): no
//! userdata or weak table per message, which keeps the garbage collector out of the hot
//! path. A hold ends when the message is settled, or is swept once its visibility deadline
//! has passed (the bus redelivers it then, and an ack could no longer apply).
//!
//! Settling: `ack` and `nack` settle explicitly. A message left unsettled is acked when the
//! same coroutine calls `recv` on the same channel again — the loop
//! `while true do local m = bus.recv(c) ... end` acks each message by asking for the next,
//! as an agent's handler acks by returning — and that ack is pipelined (committed with the
//! next batch, not waited for). The last message of such a loop is settled when its
//! coroutine ends ([`settle_thread`]: the script's main chunk, a `dreamos.spawn` task, an
//! agent's handler): acked if it returned normally, nacked for a retry if it failed. A
//! coroutine that is cancelled midway (a stalled handler) leaves it to be redelivered after
//! `bus.visibility_timeout`, as for a consumer that died.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Thread, Value};

use super::{bus_or_fail, failure, json_to_lua, options, seconds};
use crate::bus::{channel::validate_recv_channel, Bus, BusError, Delivery, MessageId};
use crate::lua::support::{check_options, duration, fail, misuse, required_str, type_name};

/// Builds a message table from its fields in one Lua call: constant keys in a table
/// constructor cost far less than setting thirteen fields from Rust.
const CONSTRUCTOR: &str = r#"
local setmetatable, mt = setmetatable, ...
return function(id, from, to, channel, payload, priority, headers, correlation_id, reply_to,
                attempt, max_attempts, created_at, expires_at)
  return setmetatable({
    id = id, from = from, to = to, channel = channel, payload = payload,
    priority = priority, headers = headers, correlation_id = correlation_id,
    reply_to = reply_to, attempt = attempt, max_attempts = max_attempts,
    created_at = created_at, expires_at = expires_at,
  }, mt)
end
"#;

/// Sweep after this many receives at least, and never more often than once per receives as
/// many as what survived the last sweep, so sweeping stays O(1) per receive.
const MIN_SWEEP_INTERVAL: usize = 1024;

/// A delivery this script holds and has not settled.
struct Held {
    /// The payload is taken out once converted: the table holds it.
    delivery: Delivery,
    bus: Bus,
}

/// The message a coroutine last received on a channel. Keeping the coroutine alive while
/// this exists means its address cannot be reused by a new coroutine meanwhile.
struct Last {
    /// Held only to pin the coroutine; never read.
    _thread: Thread,
    key: (MessageId, u32),
}

/// Per-state bookkeeping, made once when the module is first required.
struct Holds {
    constructor: Function,
    /// The four priority names, made once: creating a Lua string from Rust costs a
    /// protected call, and every message carries these.
    priorities: Vec<LuaString>,
    /// The sender of the previous message, reused while consecutive messages share it.
    last_from: RefCell<Option<(String, LuaString)>>,
    held: RefCell<HashMap<(MessageId, u32), Held>>,
    /// channel -> coroutine address -> its last message there.
    last: RefCell<HashMap<String, HashMap<usize, Last>>>,
    /// Receives since the last sweep, and how many to wait for before the next.
    since_sweep: Cell<usize>,
    sweep_interval: Cell<usize>,
    /// Pipelined acks not yet known to be committed, oldest first.
    pending_acks: RefCell<VecDeque<PendingAck>>,
    /// Whether a task is draining `pending_acks`.
    draining: Cell<bool>,
}

pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    // Built once: message tables from before a re-require keep working.
    if lua.app_data_ref::<Holds>().is_some() {
        return Ok(());
    }
    let methods = lua.create_table()?;
    methods.set("ack", lua.create_async_function(ack)?)?;
    methods.set("nack", lua.create_async_function(nack)?)?;
    methods.set("extend", lua.create_async_function(extend)?)?;
    let message_mt = lua.create_table()?;
    message_mt.set("__index", methods)?;
    message_mt.set("__name", "dreamos.bus.Message")?;
    let constructor: Function = lua
        .load(CONSTRUCTOR)
        .set_name("=dreamos.bus message")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .call(message_mt)?;
    let priorities = crate::bus::Priority::NAMES
        .iter()
        .map(|name| lua.create_string(name))
        .collect::<mlua::Result<_>>()?;
    let holds = Holds {
        constructor,
        priorities,
        last_from: RefCell::new(None),
        held: RefCell::new(HashMap::new()),
        last: RefCell::new(HashMap::new()),
        since_sweep: Cell::new(0),
        sweep_interval: Cell::new(MIN_SWEEP_INTERVAL),
        pending_acks: RefCell::new(VecDeque::new()),
        draining: Cell::new(false),
    };
    lua.try_set_app_data(holds)
        .map_err(|_| mlua::Error::runtime("dreamos.bus: state busy while loading"))?;
    Ok(())
}

fn holds(lua: &Lua) -> mlua::Result<mlua::AppDataRef<'_, Holds>> {
    lua.app_data_ref::<Holds>()
        .ok_or_else(|| mlua::Error::runtime("dreamos.bus is not loaded in this state"))
}

/// Not `async fn`: the calling coroutine is read when Lua calls, before anything suspends.
pub(super) fn recv(
    lua: Lua,
    (channel, timeout): (Value, Value),
) -> impl Future<Output = mlua::Result<MultiValue>> {
    let thread = lua.current_thread();
    async move {
        const F: &str = "bus.recv";
        let channel_value = channel;
        let channel = required_str(&lua, F, "channel", &channel_value)?;
        validate_recv_channel(&channel).map_err(|e| misuse(&lua, format!("{F}: {e}")))?;
        let timeout = match timeout {
            Value::Nil => None,
            v => Some(duration(&lua, F, "timeout", &v)?),
        };
        let bus = bus_or_fail!(lua);
        settle_previous(&lua, &thread, &channel)?;
        match bus.recv(&channel, timeout).await {
            Ok(Some(d)) => {
                let msg = hold(&lua, &bus, d, thread, &channel, channel_value)?;
                Ok(MultiValue::from_iter([Value::Table(msg)]))
            }
            Ok(None) => fail(
                &lua,
                "timeout",
                format!(
                    "nothing arrived on {channel} within {}",
                    crate::units::format_duration(timeout.unwrap_or_default())
                ),
            ),
            Err(e) => failure(&lua, F, e),
        }
    }
}

/// Acks (pipelined) what this coroutine got from `channel` last time, if still unsettled.
fn settle_previous(lua: &Lua, thread: &Thread, channel: &str) -> mlua::Result<()> {
    let h = holds(lua)?;
    let previous = h
        .last
        .borrow_mut()
        .get_mut(channel)
        .and_then(|by_thread| by_thread.remove(&(thread.to_pointer() as usize)));
    let Some(previous) = previous else {
        return Ok(());
    };
    let held = h.held.borrow_mut().remove(&previous.key);
    if let Some(held) = held {
        ack_in_background(lua, held.bus.ack_queued(&held.delivery))?;
    }
    Ok(())
}

/// The coroutine `thread` ended (`failure` says why, if it failed): settles the last
/// message it received on each channel and left unsettled — acked after a normal end (the
/// loop handled it and finished), nacked for a retry after a failure. Resolves once that
/// is committed; a state that never loaded `dreamos.bus` resolves at once.
pub fn settle_thread(
    lua: &Lua,
    thread: &Thread,
    failure: Option<&str>,
) -> futures_util::future::LocalBoxFuture<'static, ()> {
    let Ok(h) = holds(lua) else {
        return Box::pin(async {});
    };
    let address = thread.to_pointer() as usize;
    let mut keys = Vec::new();
    {
        let mut last = h.last.borrow_mut();
        for by_thread in last.values_mut() {
            if let Some(l) = by_thread.remove(&address) {
                keys.push(l.key);
            }
        }
        last.retain(|_, by_thread| !by_thread.is_empty());
    }
    let held: Vec<Held> = {
        let mut held = h.held.borrow_mut();
        keys.iter().filter_map(|k| held.remove(k)).collect()
    };
    if held.is_empty() {
        return Box::pin(async {});
    }
    let failure = failure.map(|why| format!("the coroutine that received it failed: {why}"));
    Box::pin(async move {
        for Held { delivery, bus } in held {
            let result = match &failure {
                None => bus.ack_queued(&delivery).await,
                Some(why) => bus.nack(&delivery, why, true).await.map(|_| ()),
            };
            if let Err(e) = result {
                tracing::warn!(target: "dreamos::bus", message = delivery.message.id, "settling a message when its coroutine ended: {e}");
            }
        }
    })
}

/// A queued ack's commit.
type PendingAck = Pin<Box<dyn Future<Output = Result<(), BusError>>>>;

/// Lets a queued ack commit without the script waiting for it. One drain task per burst
/// (not per ack) awaits the commits in order and logs an ack that came too late to apply
/// (the message is then delivered again, as at-least-once allows). The task is counted
/// with `dreamos.spawn` tasks, so `dreamos run` does not exit before queued acks are on
/// disk.
fn ack_in_background(
    lua: &Lua,
    ack: impl Future<Output = Result<(), BusError>> + 'static,
) -> mlua::Result<()> {
    let h = holds(lua)?;
    h.pending_acks.borrow_mut().push_back(Box::pin(ack));
    if h.draining.replace(true) {
        return Ok(());
    }
    let running = crate::runtime::host(lua)?.spawned.start();
    let weak = lua.weak();
    tokio::task::spawn_local(async move {
        let _running = running;
        loop {
            let next = weak.try_upgrade().and_then(|lua| {
                lua.app_data_ref::<Holds>().and_then(|h| {
                    let next = h.pending_acks.borrow_mut().pop_front();
                    if next.is_none() {
                        h.draining.set(false);
                    }
                    next
                })
            });
            let Some(ack) = next else { return };
            if let Err(e) = ack.await {
                tracing::warn!(target: "dreamos::bus", "a pipelined ack did not apply: {e}");
            }
        }
    });
    Ok(())
}

/// `channel_value` is the script's own channel string, reused for `channel` (and `to`, unless
/// the message came through `broadcast`).
fn hold(
    lua: &Lua,
    bus: &Bus,
    mut d: Delivery,
    thread: Thread,
    channel: &str,
    channel_value: Value,
) -> mlua::Result<Table> {
    let m = &d.message;
    let payload = if m.payload.is_null() {
        Value::Nil
    } else {
        json_to_lua(lua, &m.payload)?
    };
    let headers = lua.create_table_with_capacity(0, m.headers.len())?;
    for (k, v) in &m.headers {
        headers.raw_set(k.as_str(), v.as_str())?;
    }
    let h = holds(lua)?;
    let to = if m.to == m.channel {
        channel_value.clone()
    } else {
        Value::String(lua.create_string(&m.to)?)
    };
    let from = {
        let mut last = h.last_from.borrow_mut();
        match &*last {
            Some((text, value)) if *text == m.from => value.clone(),
            _ => {
                let value = lua.create_string(&m.from)?;
                *last = Some((m.from.clone(), value.clone()));
                value
            }
        }
    };
    let priority = h.priorities.get(m.priority as usize).cloned();
    let msg: Table = h.constructor.call((
        m.id,
        from,
        to,
        channel_value,
        payload,
        priority,
        headers,
        m.correlation_id.as_deref(),
        m.reply_to.as_deref(),
        d.attempt,
        m.max_attempts,
        seconds(m.created_at),
        m.expires_at.map(seconds),
    ))?;
    let key = (m.id, d.attempt);
    d.message.payload = serde_json::Value::Null;
    h.held.borrow_mut().insert(
        key,
        Held {
            delivery: d,
            bus: bus.clone(),
        },
    );
    let address = thread.to_pointer() as usize;
    let mut last = h.last.borrow_mut();
    match last.get_mut(channel) {
        Some(by_thread) => {
            by_thread.insert(
                address,
                Last {
                    _thread: thread,
                    key,
                },
            );
        }
        None => {
            last.insert(
                channel.to_string(),
                HashMap::from([(
                    address,
                    Last {
                        _thread: thread,
                        key,
                    },
                )]),
            );
        }
    }
    drop(last);
    // Swept by count of receives, not of holds: a script that settles everything holds
    // nothing, but coroutines that each receive once and end leave `last` entries (pinning
    // the dead coroutines) until a sweep drops those whose message is settled.
    h.since_sweep.set(h.since_sweep.get() + 1);
    if h.since_sweep.get() >= h.sweep_interval.get() {
        sweep(&h, bus.now());
    }
    Ok(msg)
}

/// Forgets holds whose visibility deadline passed (abandoned by a coroutine that failed or
/// a script that moved on), and the bookkeeping of settled and forgotten messages.
fn sweep(h: &Holds, now: crate::bus::Millis) {
    let mut held = h.held.borrow_mut();
    held.retain(|_, hold| hold.delivery.deadline > now);
    let mut last = h.last.borrow_mut();
    for by_thread in last.values_mut() {
        by_thread.retain(|_, l| held.contains_key(&l.key));
    }
    last.retain(|_, by_thread| !by_thread.is_empty());
    let survivors = held.len() + last.values().map(HashMap::len).sum::<usize>();
    h.since_sweep.set(0);
    h.sweep_interval.set(survivors.max(MIN_SWEEP_INTERVAL));
}

/// The (id, attempt) a message table names, or a misuse error naming `func`.
fn key_of(lua: &Lua, func: &str, msg: &Value) -> mlua::Result<(MessageId, u32)> {
    let key = match msg {
        Value::Table(t) => match (t.raw_get::<Value>("id")?, t.raw_get::<Value>("attempt")?) {
            (Value::Integer(id), Value::Integer(attempt)) => {
                u32::try_from(attempt).ok().map(|a| (id, a))
            }
            _ => None,
        },
        _ => None,
    };
    key.ok_or_else(|| {
        let got = match msg {
            Value::Table(_) => "another table",
            other => type_name(other),
        };
        // Methods are easy to call with '.' by mistake; say how to call them.
        let hint = match func.strip_prefix("msg:") {
            Some(method) => format!(" (call it as msg:{method})"),
            None => String::new(),
        };
        misuse(
            lua,
            format!("{func}: expected a message from bus.recv, got {got}{hint}"),
        )
    })
}

/// Takes the hold of a message table out (settling it), or returns the `nil, err` to give
/// when this script no longer holds it.
fn take_hold(lua: &Lua, func: &str, msg: &Value) -> mlua::Result<Result<Held, MultiValue>> {
    let key = key_of(lua, func, msg)?;
    match holds(lua)?.held.borrow_mut().remove(&key) {
        Some(held) => Ok(Ok(held)),
        None => Ok(Err(not_held(lua, key)?)),
    }
}

fn not_held(lua: &Lua, (id, attempt): (MessageId, u32)) -> mlua::Result<MultiValue> {
    fail(
        lua,
        "stale_delivery",
        format!(
            "message #{id} attempt {attempt} is not held by this script: it was already acked \
             or nacked, or its visibility timeout passed (then it is delivered again)"
        ),
    )
}

fn true_value() -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Boolean(true)]))
}

async fn ack(lua: Lua, (msg, opts): (Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "msg:ack";
    let mut wait = true;
    if let Some(t) = options(&lua, F, opts)? {
        check_options(&lua, F, &t, &["wait"])?;
        wait = t.get::<Option<bool>>("wait")?.unwrap_or(true);
    }
    let held = match take_hold(&lua, F, &msg)? {
        Ok(held) => held,
        Err(not_held) => return Ok(not_held),
    };
    let pending = held.bus.ack_queued(&held.delivery);
    if !wait {
        ack_in_background(&lua, pending)?;
        return true_value();
    }
    match pending.await {
        Ok(()) => true_value(),
        Err(e) => {
            // A store failure may pass: hold it again so the script can retry the ack.
            if e.kind() != "stale_delivery" {
                restore(&lua, held)?;
            }
            failure(&lua, F, e)
        }
    }
}

fn restore(lua: &Lua, held: Held) -> mlua::Result<()> {
    let key = (held.delivery.message.id, held.delivery.attempt);
    holds(lua)?.held.borrow_mut().insert(key, held);
    Ok(())
}

async fn nack(lua: Lua, (msg, error, opts): (Value, Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "msg:nack";
    let error = match &error {
        Value::Nil => "rejected by the consumer".to_string(),
        Value::String(s) => s.to_string_lossy(),
        other => other.to_string()?,
    };
    let mut retry = true;
    if let Some(t) = options(&lua, F, opts)? {
        check_options(&lua, F, &t, &["retry"])?;
        retry = t.get::<Option<bool>>("retry")?.unwrap_or(true);
    }
    let held = match take_hold(&lua, F, &msg)? {
        Ok(held) => held,
        Err(not_held) => return Ok(not_held),
    };
    match held.bus.nack(&held.delivery, &error, retry).await {
        Ok(status) => Ok(MultiValue::from_iter([Value::String(
            lua.create_string(status.as_str())?,
        )])),
        Err(e) => {
            if e.kind() != "stale_delivery" {
                restore(&lua, held)?;
            }
            failure(&lua, F, e)
        }
    }
}

async fn extend(lua: Lua, (msg, more): (Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "msg:extend";
    let key = key_of(&lua, F, &msg)?;
    let more = match more {
        Value::Nil => return Err(misuse(&lua, format!("{F}: a duration is required"))),
        v => duration(&lua, F, "duration", &v)?,
    };
    let found = holds(&lua)?
        .held
        .borrow()
        .get(&key)
        .map(|h| (h.bus.clone(), h.delivery.clone()));
    let Some((bus, delivery)) = found else {
        return not_held(&lua, key);
    };
    match bus.extend(&delivery, more).await {
        Ok(deadline) => {
            if let Some(h) = holds(&lua)?.held.borrow_mut().get_mut(&key) {
                h.delivery.deadline = deadline;
            }
            true_value()
        }
        Err(e) => failure(&lua, F, e),
    }
}

/// What `bus.reply` needs of a request, read from the message table.
pub(super) fn request_of(lua: &Lua, func: &str, msg: &Value) -> mlua::Result<crate::bus::Message> {
    let (id, _) = key_of(lua, func, msg)?;
    let Value::Table(t) = msg else {
        return Err(misuse(
            lua,
            format!("{func}: expected a message from bus.recv"),
        ));
    };
    let text = |key: &str| -> mlua::Result<Option<String>> {
        Ok(t.raw_get::<Option<mlua::LuaString>>(key)?
            .map(|s| s.to_string_lossy()))
    };
    let priority = text("priority")?
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let expires_at = t
        .raw_get::<Option<f64>>("expires_at")?
        .map(|s| (s * 1000.0) as crate::bus::Millis);
    Ok(crate::bus::Message {
        id,
        from: text("from")?.unwrap_or_default(),
        to: text("to")?.unwrap_or_default(),
        channel: text("channel")?.unwrap_or_default(),
        payload: serde_json::Value::Null,
        priority,
        headers: Default::default(),
        correlation_id: text("correlation_id")?,
        reply_to: text("reply_to")?,
        created_at: 0,
        expires_at,
        max_attempts: 0,
        backoff: None,
    })
}
