//! `social.post{...}`: argument checking and conversion into a [`PostOrder`].

use mlua::{Lua, Value};

use super::{now, outbox, post_id, to_lua, POST_OPTIONS};
use crate::lua::support::{check_options, fail, misuse, required_str, type_name};
use crate::runtime::host;
use crate::social::{view, MediaSpec, OutboxError, PostContent, PostOrder, Queued};
use crate::store::Millis;

pub(super) async fn post(lua: &Lua, opts: Value) -> mlua::Result<mlua::MultiValue> {
    const F: &str = "social.post";
    let Value::Table(opts) = opts else {
        return Err(misuse(
            lua,
            format!(
                "{F}: expected a table {{account = ..., text = ...}}, got {}",
                type_name(&opts)
            ),
        ));
    };
    check_options(lua, F, &opts, POST_OPTIONS)?;
    let account = required_str(lua, F, "account", &opts.get("account")?)?;
    let text = required_str(lua, F, "text", &opts.get("text")?)?;
    let opt_str = |key: &str| -> mlua::Result<Option<String>> {
        match opts.get::<Value>(key)? {
            Value::Nil => Ok(None),
            v => required_str(lua, F, key, &v).map(Some),
        }
    };
    let mut content = PostContent {
        text,
        link: opt_str("link")?,
        subreddit: opt_str("subreddit")?,
        title: opt_str("title")?,
        ..Default::default()
    };
    content.media = media(lua, opts.get("media")?)?;
    if let Value::Table(extra) = opts.get::<Value>("extra")? {
        for pair in extra.pairs::<String, Value>() {
            let (k, v) = pair?;
            let v = match v {
                Value::String(s) => s.to_str()?.to_string(),
                Value::Integer(_) | Value::Number(_) | Value::Boolean(_) => v.to_string()?,
                other => {
                    return Err(misuse(
                        lua,
                        format!(
                            "{F}: extra.{k} must be a string, number or boolean, got {}",
                            type_name(&other)
                        ),
                    ))
                }
            };
            content.extra.insert(k, v);
        }
    }
    let (tz, source) = {
        let h = host(lua)?;
        (h.config.scheduler.timezone.clone(), h.script.clone())
    };
    let at = match opts.get::<Value>("at")? {
        Value::Nil => None,
        Value::Integer(n) => Some(n * 1000),
        Value::Number(n) => Some((n * 1000.0) as Millis),
        Value::String(s) => Some(
            view::parse_at(&s.to_str()?, &tz, now())
                .map_err(|e| misuse(lua, format!("{F}: at: {e}")))?,
        ),
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{F}: at must be epoch seconds or a time string, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let parent = match opts.get::<Value>("reply_to")? {
        Value::Nil => None,
        Value::Table(t) => Some(t.get::<i64>("id")?),
        v => Some(post_id(lua, F, &v)?),
    };
    let order = PostOrder {
        account,
        content,
        at,
        idempotency_key: opt_str("idempotency_key")?,
        parent,
        source,
        dry_run: opts.get::<Option<bool>>("dry_run")?.unwrap_or(false),
    };
    let outbox = match outbox(lua).await? {
        Ok(o) => o,
        Err(e) => return fail(lua, "store", e),
    };
    match outbox.enqueue(order, now()).await {
        Ok(Queued::Created(p)) | Ok(Queued::Existing(p)) => {
            Ok(mlua::MultiValue::from_iter([to_lua(
                lua,
                &view::record_json(&p),
            )?]))
        }
        Ok(Queued::DryRun { previews, note }) => Ok(mlua::MultiValue::from_iter([to_lua(
            lua,
            &view::preview_json(&previews, note.as_deref()),
        )?])),
        Err(e @ (OutboxError::UnknownAccount { .. } | OutboxError::Order(_))) => {
            Err(misuse(lua, format!("{F}: {e}")))
        }
        Err(OutboxError::Duplicate(p)) => {
            let err = crate::lua::support::world_error(
                lua,
                "duplicate",
                OutboxError::Duplicate(p.clone()).to_string(),
            )?;
            err.set("id", p.id)?;
            Ok(mlua::MultiValue::from_iter([Value::Nil, Value::Table(err)]))
        }
        Err(e) => fail(lua, e.kind(), e.to_string()),
    }
}

/// `media = "a.png"`, `{"a.png", "b.png"}` or `{{path = "a.png", url = ..., alt = ...}}`.
/// Each file must be readable under the script's `fs:` grants; it is stored by its full
/// path, so the daemon finds it however it was started.
fn media(lua: &Lua, value: Value) -> mlua::Result<Vec<MediaSpec>> {
    const F: &str = "social.post";
    let one = |v: Value| -> mlua::Result<MediaSpec> {
        let mut spec = match v {
            Value::String(s) => MediaSpec {
                path: s.to_str()?.to_string(),
                ..Default::default()
            },
            Value::Table(t) => MediaSpec {
                path: required_str(lua, F, "media.path", &t.get("path")?)?,
                url: t.get("url")?,
                alt: t.get("alt")?,
            },
            other => {
                return Err(misuse(
                    lua,
                    format!(
                        "{F}: media must be a path or {{path = ..., url = ...}}, got {}",
                        type_name(&other)
                    ),
                ))
            }
        };
        let full = host(lua)?
            .grants
            .check_fs(&spec.path)
            .map_err(|e| misuse(lua, format!("{F}: media: {e}")))?;
        if !full.is_file() {
            return Err(misuse(
                lua,
                format!("{F}: media: {} does not exist", spec.path),
            ));
        }
        spec.path = full.display().to_string();
        Ok(spec)
    };
    match value {
        Value::Nil => Ok(vec![]),
        Value::Table(t) if t.raw_len() > 0 => {
            t.sequence_values::<Value>().map(|v| one(v?)).collect()
        }
        other => Ok(vec![one(other)?]),
    }
}
