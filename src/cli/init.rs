//! `dreamos init`: editor support for a project. Writes the LuaCATS stubs of every
//! Rust-backed module to `.dreamos/meta/` and a `.luarc.json` that points
//! lua-language-server at them (Lua 5.4, the `dreamos` globals the REPL defines).

use std::path::Path;
use std::process::ExitCode;

/// The stub files, embedded so `init` works from an installed binary.
pub const META: &[(&str, &str)] = &[
    ("agent.lua", include_str!("../../stdlib/meta/agent.lua")),
    ("cron.lua", include_str!("../../stdlib/meta/cron.lua")),
    ("discord.lua", include_str!("../../stdlib/meta/discord.lua")),
    ("bus.lua", include_str!("../../stdlib/meta/bus.lua")),
    ("dreamos.lua", include_str!("../../stdlib/meta/dreamos.lua")),
    ("exec.lua", include_str!("../../stdlib/meta/exec.lua")),
    ("fs.lua", include_str!("../../stdlib/meta/fs.lua")),
    ("http.lua", include_str!("../../stdlib/meta/http.lua")),
    ("json.lua", include_str!("../../stdlib/meta/json.lua")),
    ("kv.lua", include_str!("../../stdlib/meta/kv.lua")),
    ("llm.lua", include_str!("../../stdlib/meta/llm.lua")),
    ("log.lua", include_str!("../../stdlib/meta/log.lua")),
    ("social.lua", include_str!("../../stdlib/meta/social.lua")),
    ("tasks.lua", include_str!("../../stdlib/meta/tasks.lua")),
    ("time.lua", include_str!("../../stdlib/meta/time.lua")),
];

pub fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    let meta = dir.join(".dreamos").join("meta");
    std::fs::create_dir_all(&meta)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", meta.display()))?;
    for (name, text) in META {
        let path = meta.join(name);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let luarc = dir.join(".luarc.json");
    let settings = serde_json::json!({
        "$schema": "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
        "runtime.version": "Lua 5.4",
        "workspace.library": [".dreamos/meta"],
        "workspace.checkThirdParty": false,
        "diagnostics.globals": ["arg"],
    });
    if luarc.exists() {
        println!(
            "{} exists; left unchanged (add \".dreamos/meta\" to workspace.library)",
            luarc.display()
        );
    } else {
        std::fs::write(&luarc, serde_json::to_string_pretty(&settings)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", luarc.display()))?;
        println!("wrote {}", luarc.display());
    }
    println!("wrote {} stub files to {}", META.len(), meta.display());
    Ok(ExitCode::SUCCESS)
}
