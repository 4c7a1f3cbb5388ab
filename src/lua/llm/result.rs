//! The table `llm.chat` returns: `{content, role, finish_reason, model, tool_calls, usage,
//! reasoning}`.

use mlua::{Lua, LuaSerdeExt, Table};

use crate::clients::llm::{ChatResult, ToolCall};

pub(super) fn table(lua: &Lua, r: &ChatResult) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("content", r.content.as_str())?;
    t.set("role", r.role.as_str())?;
    t.set("finish_reason", r.finish_reason.as_str())?;
    t.set("model", r.model.as_str())?;
    let calls = lua.create_table()?;
    for call in &r.tool_calls {
        calls.push(tool_call(lua, call)?)?;
    }
    t.set("tool_calls", calls)?;
    if let Some(u) = &r.usage {
        let usage = lua.create_table()?;
        usage.set("prompt_tokens", u.prompt_tokens)?;
        usage.set("completion_tokens", u.completion_tokens)?;
        usage.set("total_tokens", u.total_tokens)?;
        t.set("usage", usage)?;
    }
    if let Some(reasoning) = &r.reasoning {
        t.set("reasoning", reasoning.as_str())?;
    }
    Ok(t)
}

/// `{id, type, name, arguments, args}`: `args` is the decoded arguments when the model
/// wrote valid JSON, so scripts need not decode; `arguments` keeps the text either way.
fn tool_call(lua: &Lua, call: &ToolCall) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("id", call.id.as_str())?;
    t.set("type", call.kind.as_str())?;
    t.set("name", call.name.as_str())?;
    t.set("arguments", call.arguments.as_str())?;
    if let Ok(args) = serde_json::from_str::<serde_json::Value>(&call.arguments) {
        let value = lua.to_value_with(
            &args,
            mlua::serde::SerializeOptions::new()
                .serialize_none_to_null(true)
                .serialize_unit_to_null(true),
        )?;
        t.set("args", value)?;
    }
    Ok(t)
}
