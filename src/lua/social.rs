//! `dreamos.social`: `post{...}`, `get(id)`, `list(opts?)`, `delete(id)`, `metrics(id)`,
//! `accounts()`, `limits(platform)`, `length(platform, text)`.
//!
//! `post` validates the text against the platform's limit and stores the post in the
//! durable outbox; `dreamos serve` sends it when it is due (the script does not wait for
//! the platform). Misuse (unknown account or option, a media file the script may not read)
//! raises; the world's answers (too long, duplicate, missing credentials, platform errors)
//! return `nil, err`.

use std::sync::Arc;

use mlua::{Lua, LuaSerdeExt, Table, Value};

mod post;

use super::support::{check_options, fail, misuse, required_str, type_name};
use crate::clients::social::{text, Platform};
use crate::runtime::host;
use crate::social::{limits, platform_connect, view, Outbox, PostFilter, Status};
use crate::store::{Millis, SocialStore};

pub(super) const POST_OPTIONS: &[&str] = &[
    "account",
    "text",
    "media",
    "link",
    "subreddit",
    "title",
    "at",
    "idempotency_key",
    "reply_to",
    "extra",
    "dry_run",
];

pub(super) fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "post",
        lua.create_async_function(|lua, opts: Value| async move { post::post(&lua, opts).await })?,
    )?;
    m.set(
        "get",
        lua.create_async_function(|lua, id: Value| async move {
            let id = post_id(&lua, "social.get", &id)?;
            let outbox = match outbox(&lua).await? {
                Ok(o) => o,
                Err(e) => return fail(&lua, "store", e),
            };
            match outbox.store().get_post(id).await {
                Ok(Some(p)) => Ok(mlua::MultiValue::from_iter([to_lua(
                    &lua,
                    &view::record_json(&p),
                )?])),
                Ok(None) => Ok(mlua::MultiValue::from_iter([Value::Nil])),
                Err(e) => fail(&lua, "store", e.to_string()),
            }
        })?,
    )?;
    m.set(
        "list",
        lua.create_async_function(
            |lua, opts: Option<Table>| async move { list(&lua, opts).await },
        )?,
    )?;
    m.set(
        "delete",
        lua.create_async_function(|lua, id: Value| async move {
            let id = post_id(&lua, "social.delete", &id)?;
            let outbox = match outbox(&lua).await? {
                Ok(o) => o,
                Err(e) => return fail(&lua, "store", e),
            };
            match outbox.delete(id, now()).await {
                Ok(_) => Ok(mlua::MultiValue::from_iter([Value::Boolean(true)])),
                Err(e) => fail(&lua, e.kind(), e.to_string()),
            }
        })?,
    )?;
    m.set(
        "metrics",
        lua.create_async_function(|lua, id: Value| async move {
            let id = post_id(&lua, "social.metrics", &id)?;
            let outbox = match outbox(&lua).await? {
                Ok(o) => o,
                Err(e) => return fail(&lua, "store", e),
            };
            match outbox.metrics_now(id, now()).await {
                Ok(m) => Ok(mlua::MultiValue::from_iter([to_lua(
                    &lua,
                    &serde_json::to_value(m).unwrap_or_default(),
                )?])),
                Err(e) => fail(&lua, e.kind(), e.to_string()),
            }
        })?,
    )?;
    m.set("accounts", lua.create_function(accounts)?)?;
    m.set(
        "limits",
        lua.create_function(|lua, platform: Value| {
            let p = platform_arg(lua, "social.limits", &platform)?;
            to_lua(
                lua,
                &serde_json::to_value(limits::platform_limits(p)).unwrap_or_default(),
            )
        })?,
    )?;
    m.set(
        "length",
        lua.create_function(|lua, (platform, s): (Value, Value)| {
            let p = platform_arg(lua, "social.length", &platform)?;
            let s = required_str(lua, "social.length", "text", &s)?;
            Ok(text::length(p, &s))
        })?,
    )?;
    Ok(m)
}

async fn list(lua: &Lua, opts: Option<Table>) -> mlua::Result<mlua::MultiValue> {
    const F: &str = "social.list";
    let mut filter = PostFilter {
        limit: Some(100),
        ..Default::default()
    };
    if let Some(opts) = &opts {
        check_options(lua, F, opts, &["account", "status", "limit"])?;
        filter.account = opts.get("account")?;
        if let Some(s) = opts.get::<Option<String>>("status")? {
            let status = Status::parse(&s).ok_or_else(|| {
                let names: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
                misuse(
                    lua,
                    format!("{F}: unknown status '{s}' (one of {})", names.join(", ")),
                )
            })?;
            filter.statuses = vec![status];
        }
        if let Some(n) = opts.get::<Option<usize>>("limit")? {
            filter.limit = Some(n);
        }
    }
    let outbox = match outbox(lua).await? {
        Ok(o) => o,
        Err(e) => return fail(lua, "store", e),
    };
    match outbox.store().list_posts(filter).await {
        Ok(posts) => {
            let rows: Vec<serde_json::Value> = posts.iter().map(view::record_json).collect();
            Ok(mlua::MultiValue::from_iter([to_lua(
                lua,
                &serde_json::Value::Array(rows),
            )?]))
        }
        Err(e) => fail(lua, "store", e.to_string()),
    }
}

fn accounts(lua: &Lua, (): ()) -> mlua::Result<Table> {
    let config = host(lua)?.config.clone();
    let out = lua.create_table()?;
    for (name, a) in &config.social.accounts {
        let t = lua.create_table()?;
        t.set("name", name.as_str())?;
        t.set("platform", a.platform.name())?;
        t.set("dry_run", a.dry_run)?;
        t.set("daily_max", a.daily_max)?;
        t.set("hourly_max", a.hourly_max)?;
        t.set("min_gap", a.min_gap.as_secs_f64())?;
        out.push(t)?;
    }
    Ok(out)
}

fn platform_arg(lua: &Lua, func: &str, v: &Value) -> mlua::Result<Platform> {
    let name = required_str(lua, func, "platform", v)?;
    Platform::parse(&name).ok_or_else(|| {
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
        misuse(
            lua,
            format!(
                "{func}: unknown platform '{name}' (one of {})",
                names.join(", ")
            ),
        )
    })
}

pub(super) fn post_id(lua: &Lua, func: &str, v: &Value) -> mlua::Result<i64> {
    match v {
        Value::Integer(n) => Ok(*n),
        Value::Number(n) if n.fract() == 0.0 => Ok(*n as i64),
        Value::Table(t) => t
            .get::<i64>("id")
            .map_err(|_| misuse(lua, format!("{func}: id: a post record needs its id"))),
        other => Err(misuse(
            lua,
            format!(
                "{func}: id must be a post id (number), got {}",
                type_name(other)
            ),
        )),
    }
}

pub(super) fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value(v)
}

/// This state's outbox over the embedded store, made on first use.
pub(super) async fn outbox(lua: &Lua) -> mlua::Result<Result<Arc<Outbox>, String>> {
    if let Some(o) = lua.app_data_ref::<Arc<Outbox>>() {
        return Ok(Ok(o.clone()));
    }
    let (config, bus) = {
        let h = host(lua)?;
        (h.config.clone(), h.bus.get().cloned())
    };
    let store = match crate::runtime::open_store(lua).await? {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    let outbox = Arc::new(Outbox::new(
        store as Arc<dyn SocialStore>,
        config,
        platform_connect(),
        bus,
    ));
    lua.set_app_data(outbox.clone());
    Ok(Ok(outbox))
}
