//! The Lua-facing layer: one file per `dreamos.<name>` module, each exporting `module(lua)`
//! that builds its table. [`MODULES`] is the one list; [`register`] puts every entry in
//! `package.preload`, so a module is built only when a script requires it.
//!
//! Modules here do argument checking, conversion and error shaping only; the work lives
//! in the domain folders (`bus/`, `tasks/`, `store/`, `clients/`, `logging/`).
//! Conventions (see [`support`]): misuse raises an error naming the function, the argument
//! and the fix, prefixed with the caller's `file:line`; expected failures of the world return
//! `nil, err` where `err` has `kind` and `message` and a readable `tostring`.

use mlua::{Lua, Table};

pub mod agent;
pub mod bus;
pub mod core;
pub mod cron;
pub mod discord;
pub mod exec;
pub mod fs;
pub mod http;
pub mod json;
mod json_encode;
pub mod kv;
pub mod llm;
pub mod log;
pub mod social;
pub mod support;
pub mod tasks;
pub mod time;

/// Builds one module's table.
pub type Builder = fn(&Lua) -> mlua::Result<Table>;

/// Every Rust-backed module, by the name scripts `require`.
pub const MODULES: &[(&str, Builder)] = &[
    ("dreamos", core::module),
    ("dreamos.cron", cron::module),
    ("dreamos.agent", agent::module),
    ("dreamos.discord", discord::module),
    ("dreamos.bus", bus::module),
    ("dreamos.exec", exec::module),
    ("dreamos.fs", fs::module),
    ("dreamos.http", http::module),
    ("dreamos.json", json::module),
    ("dreamos.kv", kv::module),
    ("dreamos.llm", llm::module),
    ("dreamos.log", log::module),
    ("dreamos.social", social::module),
    ("dreamos.tasks", tasks::module),
    ("dreamos.time", time::module),
];

/// Registers every module in `package.preload`: built-in Rust modules ([`MODULES`]) first,
/// then the Lua-written stdlib (`runtime::loader::EMBEDDED`). The entries are made when
/// `require` (or a script) first looks one up — a metatable on `preload` — since a state is
/// paid for by every agent of a swarm and most use two or three modules.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let preload: Table = lua.globals().get::<Table>("package")?.get("preload")?;
    let lazy = lua.create_table()?;
    lazy.set(
        "__index",
        lua.create_function(|lua, (preload, name): (Table, mlua::Value)| {
            let mlua::Value::String(text) = &name else {
                return Ok(mlua::Value::Nil);
            };
            let text = text.to_string_lossy();
            let loader = match MODULES.iter().find(|(n, _)| *n == text) {
                Some((_, build)) => {
                    let build = *build;
                    lua.create_function(move |lua, ()| build(lua))?
                }
                None => match crate::runtime::loader::embedded_loader(lua, &text)? {
                    Some(loader) => loader,
                    None => return Ok(mlua::Value::Nil),
                },
            };
            preload.raw_set(name, loader.clone())?;
            Ok(mlua::Value::Function(loader))
        })?,
    )?;
    preload.set_metatable(Some(lazy))
}
