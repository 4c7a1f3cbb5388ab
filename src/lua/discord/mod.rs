//! `dreamos.discord`: `command{...}`, `send(channel, text_or_embed)`, `on_message(pattern, fn)`.
//!
//! Works inside `dreamos serve` with `[discord]` configured (the bot runs on the same thread
//! as every agent); elsewhere each function returns `nil, err` with kind `unavailable`.
//!
//! What a script adds belongs to its Lua state: a lease kept in the state's app data is
//! dropped with the state, which removes the script's commands and listeners and makes the
//! bot register the remaining commands again. The tasks that call handlers hold the state
//! only weakly, so they never keep a stopped agent's state alive.

mod listen;

use mlua::{Function, Lua, LuaSerdeExt, MultiValue, RegistryKey, Table, Value, WeakLua};
use serde_json::json;
use tokio::sync::mpsc;

use super::bus::json_to_lua;
use super::support::{check_options, duration, fail, misuse, required_str, type_name};
use crate::clients::discord::commands::{option_type, valid_name};
use crate::clients::discord::config::{Rule, Snowflake};
use crate::clients::discord::extra::{Call, Lease, Registry};
use crate::clients::discord::perms::Policy;
use crate::clients::discord::reply::Reply;
use crate::runtime::driver::Metered;
use crate::runtime::host;

/// The leases of one state (dropped with it).
pub(super) struct Leases(#[allow(dead_code)] Lease);

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("command", lua.create_function(command)?)?;
    m.set("send", lua.create_function(send)?)?;
    m.set("on_message", lua.create_function(listen::on_message)?)?;
    Ok(m)
}

pub(super) fn unavailable(lua: &Lua) -> mlua::Result<MultiValue> {
    fail(
        lua,
        "unavailable",
        "the Discord bot is not running here (configure [discord] and use dreamos serve)",
    )
}

/// This state's lease, made on first use.
pub(super) fn lease(lua: &Lua, registry: &Registry) -> mlua::Result<()> {
    if lua.app_data_ref::<Leases>().is_none() {
        lua.set_app_data(Leases(registry.lease()));
    }
    Ok(())
}

fn ids(lua: &Lua, func: &str, what: &str, value: Value) -> mlua::Result<Vec<Snowflake>> {
    let Value::Table(t) = value else {
        return match value {
            Value::Nil => Ok(Vec::new()),
            other => Err(misuse(
                lua,
                format!(
                    "{func}: {what} must be a list of ids, got {}",
                    type_name(&other)
                ),
            )),
        };
    };
    let mut out = Vec::new();
    for v in t.sequence_values::<Value>() {
        let v = v?;
        let text = match &v {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(n) => n.to_string(),
            other => {
                return Err(misuse(
                    lua,
                    format!(
                        "{func}: {what} must hold ids as strings, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        match text.parse::<u64>() {
            Ok(n) if n > 0 => out.push(Snowflake(n)),
            _ => {
                return Err(misuse(
                    lua,
                    format!("{func}: {what}: '{text}' is not a Discord id"),
                ))
            }
        }
    }
    Ok(out)
}

fn policy(lua: &Lua, name: &str, value: Value) -> mlua::Result<Policy> {
    const F: &str = "discord.command";
    let t = match value {
        Value::Nil => {
            return Ok(Policy {
                source: format!("the permissions of /{name}"),
                ..Policy::default()
            })
        }
        Value::Table(t) => t,
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{F}: permissions must be a table, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    check_options(
        lua,
        F,
        &t,
        &["users", "roles", "channels", "admin", "cooldown"],
    )?;
    let cooldown = match t.get::<Value>("cooldown")? {
        Value::Nil => None,
        v => Some(duration(lua, F, "permissions.cooldown", &v)?),
    };
    Ok(Policy {
        rule: Rule {
            users: ids(lua, F, "permissions.users", t.get("users")?)?,
            roles: ids(lua, F, "permissions.roles", t.get("roles")?)?,
            channels: ids(lua, F, "permissions.channels", t.get("channels")?)?,
            cooldown,
        },
        admin_only: t.get::<Option<bool>>("admin")?.unwrap_or(false),
        source: format!("the permissions of /{name}"),
    })
}

/// Discord's option JSON from `{name=, type=, description=, required=}` entries.
fn options(lua: &Lua, value: Value) -> mlua::Result<Vec<serde_json::Value>> {
    const F: &str = "discord.command";
    let t = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(t) => t,
        other => {
            return Err(misuse(
                lua,
                format!("{F}: options must be a list, got {}", type_name(&other)),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, o) in t.sequence_values::<Table>().enumerate() {
        let o = o.map_err(|_| misuse(lua, format!("{F}: options[{}] must be a table", i + 1)))?;
        check_options(lua, F, &o, &["name", "type", "description", "required"])?;
        let name: String = o.get::<Option<String>>("name")?.unwrap_or_default();
        if !valid_name(&name) {
            return Err(misuse(
                lua,
                format!(
                    "{F}: options[{}].name '{name}' must be 1-32 lowercase letters, digits, - or _",
                    i + 1
                ),
            ));
        }
        let kind: String = o
            .get::<Option<String>>("type")?
            .unwrap_or_else(|| "string".into());
        let kind = option_type(&kind).ok_or_else(|| {
            misuse(lua, format!("{F}: options[{}].type '{kind}' is not one of string, integer, number, boolean, user, channel, role", i + 1))
        })?;
        let description = o
            .get::<Option<String>>("description")?
            .unwrap_or_else(|| name.clone());
        let required = o.get::<Option<bool>>("required")?.unwrap_or(false);
        out.push(
            json!({"type": kind, "name": name, "description": description, "required": required}),
        );
    }
    Ok(out)
}

fn command(lua: &Lua, spec: Value) -> mlua::Result<MultiValue> {
    const F: &str = "discord.command";
    let Value::Table(spec) = spec else {
        return Err(misuse(
            lua,
            format!(
                "{F}: expected a table {{name=, description=, handler=}}, got {}",
                type_name(&spec)
            ),
        ));
    };
    check_options(
        lua,
        F,
        &spec,
        &[
            "name",
            "description",
            "options",
            "permissions",
            "handler",
            "defer",
        ],
    )?;
    let name = required_str(lua, F, "name", &spec.get("name")?)?;
    if !valid_name(&name) {
        return Err(misuse(
            lua,
            format!("{F}: name '{name}' must be 1-32 lowercase letters, digits, - or _"),
        ));
    }
    let description = spec
        .get::<Option<String>>("description")?
        .unwrap_or_else(|| name.clone());
    let Value::Function(handler) = spec.get::<Value>("handler")? else {
        return Err(misuse(lua, format!("{F}: handler must be a function")));
    };
    let definition = json!({
        "type": 1, "name": name, "description": description,
        "options": options(lua, spec.get("options")?)?,
    });
    let policy = policy(lua, &name, spec.get("permissions")?)?;
    let defer = spec.get::<Option<bool>>("defer")?.unwrap_or(false);
    let Some(registry) = Registry::current() else {
        return unavailable(lua);
    };
    lease(lua, &registry)?;
    let (calls, rx) = mpsc::unbounded_channel();
    let added = {
        let leases = lua
            .app_data_ref::<Leases>()
            .ok_or_else(|| misuse(lua, format!("{F}: no lease")))?;
        registry.add_command(&leases.0, &name, definition, policy, defer, calls)
    };
    if let Err(e) = added {
        return Err(misuse(lua, format!("{F}: {e}")));
    }
    let key = lua.create_registry_value(handler)?;
    tokio::task::spawn_local(serve_calls(lua.weak(), key, rx));
    Ok(MultiValue::from_iter([Value::Boolean(true)]))
}

/// `{user = {id, name}, channel, command, subcommand, options}` for the handler.
fn context(lua: &Lua, call: &Call) -> mlua::Result<Table> {
    let inv = &call.invocation;
    let t = lua.create_table()?;
    let user = lua.create_table()?;
    user.set("id", inv.caller.user.to_string())?;
    user.set("name", inv.user_name.as_str())?;
    user.set(
        "roles",
        inv.caller
            .roles
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
    )?;
    t.set("user", user)?;
    t.set("channel", inv.caller.channel.to_string())?;
    t.set("command", inv.name.as_str())?;
    t.set("subcommand", inv.subcommand.as_deref())?;
    let opts = lua.create_table()?;
    for (k, v) in &inv.options {
        opts.set(k.as_str(), json_to_lua(lua, v)?)?;
    }
    t.set("options", opts)?;
    Ok(t)
}

/// What a handler returned, as a reply: a string is text; a table with `content`,
/// `embed` or `ephemeral` sets those; any other table is an embed.
fn reply_from(lua: &Lua, value: Value) -> Result<Reply, String> {
    match value {
        Value::Nil => Ok(Reply::text("(no answer)")),
        Value::String(s) => Ok(Reply::text(s.to_string_lossy())),
        Value::Table(t) => {
            let plain = |k: &str| t.contains_key(k).unwrap_or(false);
            if plain("content") || plain("embed") || plain("ephemeral") {
                let embed = match t.get::<Value>("embed").map_err(|e| e.to_string())? {
                    Value::Nil => None,
                    v => Some(lua.from_value(v).map_err(|e| format!("embed: {e}"))?),
                };
                Ok(Reply {
                    text: t
                        .get::<Option<String>>("content")
                        .map_err(|e| e.to_string())?
                        .unwrap_or_default(),
                    embed,
                    ephemeral: t
                        .get::<Option<bool>>("ephemeral")
                        .map_err(|e| e.to_string())?
                        .unwrap_or(false),
                })
            } else {
                let embed = lua
                    .from_value(Value::Table(t))
                    .map_err(|e| format!("embed: {e}"))?;
                Ok(Reply::embed(embed))
            }
        }
        other => Ok(Reply::text(other.to_string().unwrap_or_default())),
    }
}

async fn serve_calls(weak: WeakLua, key: RegistryKey, mut rx: mpsc::UnboundedReceiver<Call>) {
    while let Some(call) = rx.recv().await {
        let Some(lua) = weak.try_upgrade() else {
            return;
        };
        let answer = async {
            let handler: Function = lua.registry_value(&key).map_err(|e| e.to_string())?;
            let meter = host(&lua).map_err(|e| e.to_string())?.meter.clone();
            let ctx = context(&lua, &call).map_err(|e| e.to_string())?;
            let value = Metered::new(meter, handler.call_async::<Value>(ctx))
                .await
                .map_err(|e| {
                    format!(
                        "the handler failed: {}",
                        crate::runtime::driver::error_message(&lua, &e)
                    )
                })?;
            reply_from(&lua, value)
        }
        .await;
        let _ = call.reply.send(answer);
    }
}

fn channel_id(lua: &Lua, func: &str, value: &Value) -> mlua::Result<u64> {
    let text = match value {
        Value::String(s) => s.to_string_lossy(),
        Value::Integer(n) => n.to_string(),
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{func}: channel must be a Discord id string, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| misuse(lua, format!("{func}: channel '{text}' is not a Discord id")))
}

fn send(lua: &Lua, (channel, message): (Value, Value)) -> mlua::Result<MultiValue> {
    const F: &str = "discord.send";
    let channel = channel_id(lua, F, &channel)?;
    let reply = match &message {
        Value::String(_) | Value::Table(_) => {
            reply_from(lua, message).map_err(|e| misuse(lua, format!("{F}: {e}")))?
        }
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{F}: expected text or an embed table, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    if reply.text.chars().count() > crate::clients::discord::reply::MESSAGE_LIMIT {
        return Err(misuse(
            lua,
            format!("{F}: text is longer than Discord's 2000 characters"),
        ));
    }
    let Some(registry) = Registry::current() else {
        return unavailable(lua);
    };
    let body =
        json!({"content": reply.text, "embeds": reply.embed.into_iter().collect::<Vec<_>>()});
    match registry.send(channel, body) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(e) => fail(lua, "unavailable", e),
    }
}
