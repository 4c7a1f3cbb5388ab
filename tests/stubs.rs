//! Every function a Rust-backed module registers has a LuaCATS stub in `stdlib/meta/`, and
//! `dreamos init` ships every stub file. A new function without a stub fails here.

use std::path::Path;
use std::sync::Arc;

use dreamos::config::Config;
use dreamos::runtime::{self, StateOptions};
use mlua::{Table, Value};

fn meta_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib/meta")
}

#[test]
fn every_registered_function_has_a_stub() {
    let lua = runtime::new_state(Arc::new(Config::default()), StateOptions::new("stubs")).unwrap();
    let mut missing = Vec::new();
    for (name, _) in dreamos::lua::MODULES {
        let short = name.rsplit('.').next().unwrap_or(name);
        let file = meta_dir().join(format!("{short}.lua"));
        let stub = std::fs::read_to_string(&file).unwrap_or_default();
        if !stub.starts_with("---@meta") {
            missing.push(format!("{}: no ---@meta stub file", file.display()));
            continue;
        }
        let require: mlua::Function = lua.globals().get("require").unwrap();
        let module: Table = require.call(*name).unwrap();
        for pair in module.pairs::<Value, Value>() {
            let (key, value) = pair.unwrap();
            if let (Value::String(key), Value::Function(_)) = (key, value) {
                let key = key.to_string_lossy();
                let declared = format!("function {short}.{key}(");
                if !stub.contains(&declared) {
                    missing.push(format!(
                        "{name}.{key}: no `{declared}` in {}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "functions without stubs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn init_ships_every_stub_file() {
    let shipped: Vec<&str> = dreamos::cli::init::META.iter().map(|(n, _)| *n).collect();
    for entry in std::fs::read_dir(meta_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            shipped.contains(&name.as_str()),
            "{name} is not in cli::init::META"
        );
    }
}
