//! Module lookup for `require`.
//!
//! Order: `package.loaded`, then `package.preload` (the Rust-backed `dreamos.*` modules and
//! the Lua-written ones in `stdlib/dreamos/`), then the configured script paths. Files are
//! always loaded in text mode and named by their path, so errors point at `file:line`.
//!
//! The Lua-written stdlib is embedded in release builds; debug builds read it from the
//! source tree when it is there, so it can be edited without recompiling (as yazi does).

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, Table, Value};

use crate::config::Config;

/// The Lua-written modules, by module name.
pub const EMBEDDED: &[(&str, &str)] = &[
    // The agent SDK. The Rust `dreamos.agent` (src/lua/agent.rs) comes first in
    // `package.preload` and runs this chunk with its native functions.
    (
        "dreamos.agent",
        include_str!("../../stdlib/dreamos/agent.lua"),
    ),
    (
        "dreamos.inspect",
        include_str!("../../stdlib/dreamos/inspect.lua"),
    ),
    (
        "dreamos.test",
        include_str!("../../stdlib/dreamos/test.lua"),
    ),
    (
        "dreamos.strategy",
        include_str!("../../stdlib/dreamos/strategy.lua"),
    ),
];

/// The `package.preload` loader of an embedded Lua module, if `name` is one (made on
/// demand by `crate::lua::register`).
pub fn embedded_loader(lua: &Lua, name: &str) -> mlua::Result<Option<Function>> {
    let Some((name, source)) = EMBEDDED.iter().find(|(n, _)| *n == name).copied() else {
        return Ok(None);
    };
    let loader = lua.create_function(move |lua, ()| {
        let (text, chunk_name) = embedded_source(name, source);
        load_compiled(lua, text.as_bytes(), &chunk_name)?.call::<Value>(())
    })?;
    Ok(Some(loader))
}

pub fn install(lua: &Lua, config: &Config) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let roots: Vec<PathBuf> = config
        .runtime
        .script_paths
        .iter()
        .map(|p| config.resolve(p))
        .collect();
    package.set(
        "path",
        roots
            .iter()
            .flat_map(|r| {
                [
                    format!("{}/?.lua", r.display()),
                    format!("{}/?/init.lua", r.display()),
                ]
            })
            .collect::<Vec<_>>()
            .join(";"),
    )?;
    let searchers: Table = package.get("searchers")?;
    let preload_searcher: Function = searchers.get(1)?;
    let file_searcher =
        lua.create_function(move |lua, name: String| match find_module(&roots, &name) {
            Some(path) => {
                let loader = load_text_file(lua, &path)?;
                Ok((
                    Value::Function(loader),
                    Value::String(lua.create_string(path.display().to_string())?),
                ))
            }
            None => {
                let tried: Vec<String> = candidates(&roots, &name)
                    .map(|p| format!("\n\tno file '{}'", p.display()))
                    .collect();
                Ok((
                    Value::String(lua.create_string(tried.concat())?),
                    Value::Nil,
                ))
            }
        })?;
    let fresh = lua.create_table()?;
    fresh.set(1, preload_searcher)?;
    fresh.set(2, file_searcher)?;
    package.set("searchers", fresh)?;
    Ok(())
}

/// Compiles `text` named `chunk_name` into a function of `lua`, reusing the bytecode of
/// the last compilation of the same text in this process.
///
/// Every agent state runs the same prelude, SDK and (often) script: parsing them once and
/// loading the dumped chunk afterwards makes a state's start-up several times cheaper. The
/// bytecode is our own, dumped by this process from text it compiled — the sandbox's rule
/// that scripts may load text only is about code a script hands to `load`.
pub fn load_compiled(lua: &Lua, text: &[u8], chunk_name: &str) -> mlua::Result<Function> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Cache = Mutex<HashMap<String, (Arc<[u8]>, Arc<[u8]>)>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let cached = cache.lock().ok().and_then(|c| {
        c.get(chunk_name)
            .filter(|(source, _)| **source == *text)
            .map(|(_, bytecode)| bytecode.clone())
    });
    if let Some(bytecode) = cached {
        return lua
            .load(&bytecode[..])
            .set_name(chunk_name)
            .set_mode(ChunkMode::Binary)
            .into_function();
    }
    let func = lua
        .load(text)
        .set_name(chunk_name)
        .set_mode(ChunkMode::Text)
        .into_function()?;
    if let Ok(mut c) = cache.lock() {
        c.insert(
            chunk_name.to_string(),
            (Arc::from(text), Arc::from(func.dump(false))),
        );
    }
    Ok(func)
}

/// Loads a Lua file in text mode, named `@path` so messages read `path:line:`.
pub fn load_text_file(lua: &Lua, path: &Path) -> mlua::Result<Function> {
    let source = std::fs::read(path)
        .map_err(|e| mlua::Error::runtime(format!("cannot read {}: {e}", path.display())))?;
    lua.load(source)
        .set_name(format!("@{}", path.display()))
        .set_mode(ChunkMode::Text)
        .into_function()
}

fn candidates<'a>(roots: &'a [PathBuf], name: &str) -> impl Iterator<Item = PathBuf> + 'a {
    let rel = name.replace('.', "/");
    roots.iter().flat_map(move |root| {
        [
            root.join(format!("{rel}.lua")),
            root.join(&rel).join("init.lua"),
        ]
    })
}

fn find_module(roots: &[PathBuf], name: &str) -> Option<PathBuf> {
    candidates(roots, name).find(|p| p.is_file())
}

/// Debug builds prefer the file in the source tree (edit without recompiling).
pub(crate) fn embedded_source(
    name: &str,
    source: &'static str,
) -> (std::borrow::Cow<'static, str>, String) {
    let rel = format!("stdlib/{}.lua", name.replace('.', "/"));
    if cfg!(debug_assertions) {
        let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join(&rel);
        if let Ok(text) = std::fs::read_to_string(&on_disk) {
            return (text.into(), format!("@{rel}"));
        }
    }
    (source.into(), format!("@{rel}"))
}
