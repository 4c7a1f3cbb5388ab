//! `dreamos.kv`: `get(key)`, `set(key, value)`, `delete(key)` — durable per-script state in
//! the embedded store. Values are anything JSON can hold. The store is opened on the first
//! call, so scripts that never use `kv` never touch the database.
//!
//! Keys are namespaced by the script's name, so two scripts cannot read each other's state
//! by accident; `set` returns after the value is committed to disk.

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::support::{fail, misuse, required_str};
use crate::runtime::host;
use crate::store::SharedStore;

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set(
        "get",
        lua.create_async_function(|lua, key: Value| async move {
            let key = required_str(&lua, "kv.get", "key", &key)?;
            let (store, ns) = match open(&lua).await? {
                Ok(v) => v,
                Err(e) => return fail(&lua, "store", e),
            };
            match store.kv_get(&ns, &key).await {
                Ok(Some(v)) => Ok(mlua::MultiValue::from_iter([to_lua(&lua, &v)?])),
                Ok(None) => Ok(mlua::MultiValue::from_iter([Value::Nil])),
                Err(e) => fail(&lua, "store", e.to_string()),
            }
        })?,
    )?;
    m.set(
        "set",
        lua.create_async_function(|lua, (key, value): (Value, Value)| async move {
            let key = required_str(&lua, "kv.set", "key", &key)?;
            if value.is_nil() {
                return Err(misuse(
                    &lua,
                    "kv.set: value is nil (use kv.delete to remove a key)",
                ));
            }
            let json: serde_json::Value = lua.from_value(value).map_err(|e| {
                misuse(&lua, format!("kv.set: value cannot be stored as JSON: {e}"))
            })?;
            let (store, ns) = match open(&lua).await? {
                Ok(v) => v,
                Err(e) => return fail(&lua, "store", e),
            };
            match store.kv_set(&ns, &key, json).await {
                Ok(()) => Ok(mlua::MultiValue::from_iter([Value::Boolean(true)])),
                Err(e) => fail(&lua, "store", e.to_string()),
            }
        })?,
    )?;
    m.set(
        "delete",
        lua.create_async_function(|lua, key: Value| async move {
            let key = required_str(&lua, "kv.delete", "key", &key)?;
            let (store, ns) = match open(&lua).await? {
                Ok(v) => v,
                Err(e) => return fail(&lua, "store", e),
            };
            match store.kv_delete(&ns, &key).await {
                Ok(existed) => Ok(mlua::MultiValue::from_iter([Value::Boolean(existed)])),
                Err(e) => fail(&lua, "store", e.to_string()),
            }
        })?,
    )?;
    Ok(m)
}

fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value_with(
        v,
        mlua::serde::SerializeOptions::new().serialize_none_to_null(true),
    )
}

/// The store and this script's namespace, opening the store on first use.
async fn open(lua: &Lua) -> mlua::Result<Result<(SharedStore, String), String>> {
    let ns = host(lua)?.script.trim_start_matches("./").to_string();
    Ok(crate::runtime::open_store(lua)
        .await?
        .map(|store| (store, ns)))
}
