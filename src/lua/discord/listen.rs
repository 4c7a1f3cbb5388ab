//! `discord.on_message(pattern, fn)`: a listener task per call, matching in the defining
//! state with Lua's own `string.match`, holding the state only weakly (see the module docs).

use std::time::Duration;

use mlua::{Function, Lua, MultiValue, RegistryKey, Table, Value, WeakLua};
use tokio::sync::mpsc;

use super::{lease, unavailable, Leases};
use crate::clients::discord::extra::{Registry, SeenMessage};
use crate::lua::support::{misuse, required_str, type_name};
use crate::runtime::driver::Metered;
use crate::runtime::host;

pub(super) fn on_message(
    lua: &Lua,
    (pattern, handler): (Value, Value),
) -> mlua::Result<MultiValue> {
    const F: &str = "discord.on_message";
    let pattern = required_str(lua, F, "pattern", &pattern)?;
    let Value::Function(handler) = handler else {
        return Err(misuse(
            lua,
            format!(
                "{F}: handler must be a function, got {}",
                type_name(&handler)
            ),
        ));
    };
    // A bad pattern fails here, where the script can see it, not on the first message.
    let matcher: Function = lua.globals().get::<Table>("string")?.get("match")?;
    matcher
        .call::<Value>(("", pattern.as_str()))
        .map_err(|e| misuse(lua, format!("{F}: bad pattern '{pattern}': {e}")))?;
    let Some(registry) = Registry::current() else {
        return unavailable(lua);
    };
    lease(lua, &registry)?;
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let leases = lua
            .app_data_ref::<Leases>()
            .ok_or_else(|| misuse(lua, format!("{F}: no lease")))?;
        registry.add_listener(&leases.0, &pattern, tx);
    }
    let keys = (
        lua.create_registry_value(handler)?,
        lua.create_registry_value(matcher)?,
    );
    tokio::task::spawn_local(serve_messages(lua.weak(), keys, pattern, rx));
    Ok(MultiValue::from_iter([Value::Boolean(true)]))
}

async fn serve_messages(
    weak: WeakLua,
    (handler, matcher): (RegistryKey, RegistryKey),
    pattern: String,
    mut rx: mpsc::UnboundedReceiver<SeenMessage>,
) {
    const SLOW: Duration = Duration::from_secs(60);
    while let Some(seen) = rx.recv().await {
        let Some(lua) = weak.try_upgrade() else {
            return;
        };
        let result: mlua::Result<()> = async {
            let matcher: Function = lua.registry_value(&matcher)?;
            let captures: MultiValue = matcher.call((seen.content.as_str(), pattern.as_str()))?;
            if captures.front().is_none_or(Value::is_nil) {
                return Ok(());
            }
            let msg = lua.create_table()?;
            msg.set("channel", seen.channel.to_string())?;
            msg.set("content", seen.content.as_str())?;
            let user = lua.create_table()?;
            user.set("id", seen.user.to_string())?;
            user.set("name", seen.user_name.as_str())?;
            msg.set("user", user)?;
            msg.set("captures", lua.create_sequence_from(captures)?)?;
            let handler: Function = lua.registry_value(&handler)?;
            let meter = host(&lua)?.meter.clone();
            let run = Metered::new(meter, handler.call_async::<()>(msg));
            match tokio::time::timeout(SLOW, run).await {
                Ok(r) => r,
                Err(_) => Err(mlua::Error::runtime("the handler ran for more than 60 s")),
            }
        }
        .await;
        if let Err(e) = result {
            let script = host(&lua).map(|h| h.script.clone()).unwrap_or_default();
            tracing::warn!(target: "dreamos::script", script = %script, "discord.on_message('{pattern}') handler failed: {e}");
        }
    }
}
