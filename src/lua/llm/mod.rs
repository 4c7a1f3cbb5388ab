//! `dreamos.llm`: `chat{model?, messages, stream?, temperature?, max_tokens?, stop?, tools?,
//! response_format?, seed?, timeout?}` and `models()`, against the OpenAI-compatible server
//! of `[llm]` (Ollama on 127.0.0.1 by default).
//!
//! The server is the operator's choice in `dreamos.toml`, like a social account, so no
//! `net:` grant is needed; scripts never see the API key. Failures of the world (the
//! server down, slow, refusing the key or the model) return `nil, err` with the kinds of
//! [`crate::clients::llm::ErrorKind`]; misuse (unknown option, no messages, no model)
//! raises. The work is in [`crate::clients::llm`]; [`request`] checks and converts the
//! arguments, [`result`] builds the tables scripts get.

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::support::{duration, misuse, world_error};
use crate::clients::llm::{LlmClient, LlmError, Settings};
use crate::runtime::host;

mod request;
mod result;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("chat", lua.create_async_function(chat)?)?;
    m.set("models", lua.create_async_function(models)?)?;
    Ok(m)
}

async fn chat(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    let Value::Table(opts) = opts else {
        return Err(misuse(
            &lua,
            "llm.chat: expected a table {messages = {...}, model = ...}",
        ));
    };
    let default_model = host(&lua)?.config.llm.model.clone();
    let (req, stream) = request::parse(&lua, &opts, &default_model)?;
    let client = match client(&lua)? {
        Ok(c) => c,
        Err(e) => return failed(&lua, e),
    };
    let Some(callback) = stream else {
        return match client.chat(&req).await {
            Ok(r) => Ok(MultiValue::from_iter([Value::Table(result::table(
                &lua, &r,
            )?)])),
            Err(e) => failed(&lua, e),
        };
    };
    let mut stream = match client.chat_stream(&req).await {
        Ok(s) => s,
        Err(e) => return failed(&lua, e),
    };
    loop {
        match stream.next_text().await {
            Ok(Some(text)) => deliver(&callback, text).await?,
            Ok(None) => break,
            Err(e) => return failed(&lua, e),
        }
    }
    let r = stream.finish();
    Ok(MultiValue::from_iter([Value::Table(result::table(
        &lua, &r,
    )?)]))
}

/// Hands one piece of text to the script's `stream` function. It may itself suspend (print
/// to a socket, publish on the bus); its error stops the call and is raised, since it is a
/// bug in the script rather than a failure of the server.
async fn deliver(callback: &Function, text: String) -> mlua::Result<()> {
    callback.call_async::<()>(text).await
}

async fn models(lua: Lua, opts: Value) -> mlua::Result<MultiValue> {
    let opts = match opts {
        Value::Nil => None,
        Value::Table(t) => Some(t),
        other => {
            return Err(misuse(
                &lua,
                format!(
                    "llm.models: expected nothing or a table {{timeout = ...}}, got a {}",
                    other.type_name()
                ),
            ))
        }
    };
    let mut timeout = None;
    if let Some(opts) = &opts {
        super::support::check_options(&lua, "llm.models", opts, &["timeout"])?;
        match opts.get::<Value>("timeout")? {
            Value::Nil => {}
            v => timeout = Some(duration(&lua, "llm.models", "timeout", &v)?),
        }
    }
    let client = match client(&lua)? {
        Ok(c) => c,
        Err(e) => return failed(&lua, e),
    };
    match client.models(timeout).await {
        Ok(ids) => Ok(MultiValue::from_iter([Value::Table(
            lua.create_sequence_from(ids)?,
        )])),
        Err(e) => failed(&lua, e),
    }
}

/// This state's client, built on first use. A key variable that is missing is reported
/// (as `nil, err`) on each call rather than cached, so setting it fixes the next call.
fn client(lua: &Lua) -> mlua::Result<Result<LlmClient, LlmError>> {
    let h = host(lua)?;
    if let Some(client) = h.llm.get() {
        return Ok(Ok(client.clone()));
    }
    let settings = match Settings::from_config(&h.config.llm) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let client = LlmClient::new(settings);
    let _ = h.llm.set(client.clone());
    Ok(Ok(client))
}

/// `nil, err`, where err also carries `status` and `retry_after` (seconds) when known.
fn failed(lua: &Lua, e: LlmError) -> mlua::Result<MultiValue> {
    let err = world_error(lua, e.kind.as_str(), &e.message)?;
    if let Some(status) = e.status {
        err.set("status", status)?;
    }
    if let Some(after) = e.retry_after {
        err.set("retry_after", after.as_secs_f64())?;
    }
    Ok(MultiValue::from_iter([Value::Nil, Value::Table(err)]))
}
