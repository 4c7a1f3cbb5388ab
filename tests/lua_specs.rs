//! Runs every `tests/lua/*_spec.lua` through the real binary, each in a fresh temporary
//! directory, and fails with the spec's own output when any `it` fails.
//!
//! A spec's first line may be `-- allow: GRANT, GRANT` to run with those grants;
//! `http_spec.lua` receives the URL of a local fake HTTP server as `arg[1]`.

mod fakes;

use std::path::{Path, PathBuf};
use std::process::Command;

fn specs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/lua exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_spec.lua"))
        .collect();
    files.sort();
    files
}

fn grants_of(spec: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(spec).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    match first.strip_prefix("-- allow:") {
        Some(list) => list
            .split(',')
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect(),
        None => Vec::new(),
    }
}

#[test]
fn every_lua_spec_passes() {
    let server = fakes::http::FakeHttp::start();
    let mut failures = Vec::new();
    let all = specs();
    assert!(
        all.len() >= 5,
        "expected the Lua specs in tests/lua, found {}",
        all.len()
    );
    for spec in all {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamos"));
        cmd.current_dir(dir.path())
            .env_remove("DREAMOS_CONFIG")
            .env("DREAMOS_LOG_CONSOLE", "off")
            .arg("run");
        for g in grants_of(&spec) {
            cmd.arg("--allow").arg(g);
        }
        cmd.arg(&spec);
        if spec.ends_with("http_spec.lua") {
            cmd.arg(server.url());
        }
        let out = cmd.output().expect("run dreamos");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("== {}\n{stdout}{stderr}", spec.display());
        if !out.status.success() {
            failures.push(format!("{}:\n{stdout}{stderr}", spec.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "failing specs:\n{}",
        failures.join("\n")
    );
}
