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
pub mod log;
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
    ("dreamos.log", log::module),
    ("dreamos.tasks", tasks::module),
    ("dreamos.time", time::module),
];

/// Registers every module in `package.preload`.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let preload: Table = lua.globals().get::<Table>("package")?.get("preload")?;
    for (name, build) in MODULES {
        let build = *build;
        preload.set(*name, lua.create_function(move |lua, ()| build(lua))?)?;
    }
    Ok(())
}
