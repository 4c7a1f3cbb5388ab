//! `llm.chat`'s argument table: checked the way every module checks its options (misuse
//! raises, naming `llm.chat`, the option and the fix) and turned into a [`ChatRequest`].

use mlua::{Function, Lua, Table, Value};
use serde_json::{Map, Value as Json};

use crate::clients::llm::ChatRequest;
use crate::lua::support::{check_options, duration, misuse, type_name};

const F: &str = "llm.chat";

const OPTIONS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "temperature",
    "max_tokens",
    "stop",
    "tools",
    "response_format",
    "seed",
    "timeout",
];

const MESSAGE_KEYS: &[&str] = &["role", "content", "name", "tool_calls", "tool_call_id"];

/// The request, and the `stream` function when there is one.
pub(super) fn parse(
    lua: &Lua,
    opts: &Table,
    default_model: &str,
) -> mlua::Result<(ChatRequest, Option<Function>)> {
    check_options(lua, F, opts, OPTIONS)?;
    let model = match opts.get::<Value>("model")? {
        Value::Nil => default_model.to_string(),
        Value::String(s) => s.to_str()?.trim().to_string(),
        other => {
            return Err(misuse(
                lua,
                format!("{F}: model must be a string, got {}", type_name(&other)),
            ))
        }
    };
    if model.is_empty() {
        return Err(misuse(
            lua,
            format!(
                "{F}: model is required (pass model = \"llama3.1\", or set a default with \
                 model = \"...\" in [llm] of dreamos.toml)"
            ),
        ));
    }
    let messages = messages(lua, opts.get("messages")?)?;
    let stream = match opts.get::<Value>("stream")? {
        Value::Nil | Value::Boolean(false) => None,
        Value::Function(f) => Some(f),
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{F}: stream must be a function called with each piece of text, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let mut options = Map::new();
    if let Some(t) = number(lua, opts, "temperature", false)? {
        options.insert("temperature".into(), t);
    }
    if let Some(n) = number(lua, opts, "max_tokens", true)? {
        options.insert("max_tokens".into(), n);
    }
    if let Some(n) = number(lua, opts, "seed", true)? {
        options.insert("seed".into(), n);
    }
    match opts.get::<Value>("stop")? {
        Value::Nil => {}
        v @ (Value::String(_) | Value::Table(_)) => {
            options.insert("stop".into(), to_json(lua, "stop", &v)?);
        }
        other => {
            return Err(wrong_type(
                lua,
                "stop",
                "a string or a list of strings",
                &other,
            ))
        }
    }
    match opts.get::<Value>("tools")? {
        Value::Nil => {}
        Value::Table(t) if t.is_empty() => {}
        v @ Value::Table(_) => {
            options.insert("tools".into(), to_json(lua, "tools", &v)?);
        }
        other => return Err(wrong_type(lua, "tools", "a list of tool tables", &other)),
    }
    match opts.get::<Value>("response_format")? {
        Value::Nil => {}
        // `response_format = "json_object"` is shorthand for {type = "json_object"}.
        Value::String(s) => {
            options.insert(
                "response_format".into(),
                serde_json::json!({"type": s.to_str()?.to_string()}),
            );
        }
        v @ Value::Table(_) => {
            options.insert(
                "response_format".into(),
                to_json(lua, "response_format", &v)?,
            );
        }
        other => {
            return Err(wrong_type(
                lua,
                "response_format",
                "a table or a string",
                &other,
            ))
        }
    }
    let timeout = match opts.get::<Value>("timeout")? {
        Value::Nil => None,
        v => Some(duration(lua, F, "timeout", &v)?),
    };
    let req = ChatRequest {
        model,
        messages,
        options,
        timeout,
    };
    Ok((req, stream))
}

/// `messages`: a non-empty list of `{role, content}` tables (content a string or a list of
/// parts; `tool_calls`, `tool_call_id` and `name` allowed). A server would refuse an empty
/// list with a 400; saying so here points at the script's line instead.
fn messages(lua: &Lua, value: Value) -> mlua::Result<Vec<Json>> {
    let list = match value {
        Value::Table(t) => t,
        Value::Nil => {
            return Err(misuse(
                lua,
                format!(
                    "{F}: messages is required: a list such as {{{{role = \"user\", content = \
                     \"Hello\"}}}}"
                ),
            ))
        }
        other => {
            return Err(wrong_type(
                lua,
                "messages",
                "a list of {role, content} tables",
                &other,
            ))
        }
    };
    let len = list.raw_len();
    if len == 0 {
        return Err(misuse(
            lua,
            format!(
                "{F}: messages is empty: give at least one {{role = \"user\", content = \"...\"}}"
            ),
        ));
    }
    let mut out = Vec::with_capacity(len);
    for i in 1..=len {
        let place = format!("messages[{i}]");
        let msg = match list.raw_get::<Value>(i)? {
            Value::Table(t) => t,
            other => return Err(wrong_type(lua, &place, "a {role, content} table", &other)),
        };
        check_options(lua, &format!("{F}: {place}"), &msg, MESSAGE_KEYS)?;
        match msg.get::<Value>("role")? {
            Value::String(_) => {}
            Value::Nil => {
                return Err(misuse(
                    lua,
                    format!("{F}: {place}.role is required (\"system\", \"user\", \"assistant\" or \"tool\")"),
                ))
            }
            other => return Err(wrong_type(lua, &format!("{place}.role"), "a string", &other)),
        }
        let has_calls = msg.contains_key("tool_calls")?;
        match msg.get::<Value>("content")? {
            Value::String(_) | Value::Table(_) => {}
            Value::Nil if has_calls => {}
            Value::Nil => {
                return Err(misuse(
                    lua,
                    format!("{F}: {place}.content is required (a string, or a list of parts)"),
                ))
            }
            other => {
                return Err(wrong_type(
                    lua,
                    &format!("{place}.content"),
                    "a string or a list of parts",
                    &other,
                ))
            }
        }
        let mut json = to_json(lua, &place, &Value::Table(msg))?;
        if let Some(Json::Array(calls)) = json.get_mut("tool_calls") {
            for call in calls.iter_mut() {
                to_wire_call(call);
            }
        }
        out.push(json);
    }
    Ok(out)
}

/// Lets a script send back the `tool_calls` of a result as they came (`{id, type, name,
/// arguments, args}`) by rebuilding the wire shape `{id, type, function = {name,
/// arguments}}`; calls already in that shape pass unchanged.
fn to_wire_call(call: &mut Json) {
    let Json::Object(obj) = call else { return };
    if obj.contains_key("function") {
        return;
    }
    let name = obj.remove("name").unwrap_or(Json::Null);
    let arguments = match (obj.remove("arguments"), obj.remove("args")) {
        (Some(Json::String(s)), _) => Json::String(s),
        (_, Some(args)) => Json::String(args.to_string()),
        _ => Json::String("{}".into()),
    };
    obj.entry("type")
        .or_insert_with(|| Json::String("function".into()));
    obj.insert(
        "function".into(),
        serde_json::json!({"name": name, "arguments": arguments}),
    );
}

fn number(lua: &Lua, opts: &Table, key: &str, integer: bool) -> mlua::Result<Option<Json>> {
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Integer(n) => Ok(Some(Json::from(n))),
        Value::Number(n) if !integer && n.is_finite() => Ok(Some(Json::from(n))),
        Value::Number(n) if integer && n.fract() == 0.0 && n.is_finite() => {
            Ok(Some(Json::from(n as i64)))
        }
        other => Err(wrong_type(
            lua,
            key,
            if integer { "an integer" } else { "a number" },
            &other,
        )),
    }
}

fn to_json(lua: &Lua, what: &str, value: &Value) -> mlua::Result<Json> {
    use mlua::LuaSerdeExt;
    lua.from_value(value.clone()).map_err(|e| {
        let why = crate::lua::bus::explain_conversion(&e);
        misuse(lua, format!("{F}: {what}: {why}"))
    })
}

fn wrong_type(lua: &Lua, what: &str, expected: &str, got: &Value) -> mlua::Error {
    misuse(
        lua,
        format!("{F}: {what} must be {expected}, got {}", type_name(got)),
    )
}
