//! Runs every script in `examples/` through the real binary, as the README's table
//! promises. A new example is picked up automatically; one that fails fails here.

mod fakes;

use std::path::Path;
use std::process::Command;

#[test]
fn every_example_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = fakes::http::FakeHttp::start();
    // llm.lua wants a local Ollama; here it talks to the fake instead.
    let llm = fakes::llm::FakeLlm::start();
    let mut examples: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .collect();
    examples.sort();
    assert!(
        examples.len() >= 5,
        "examples/ should hold the documented scripts"
    );
    let readme = std::fs::read_to_string(root.join("examples/README.md")).unwrap();
    let mut failures = Vec::new();
    for path in examples {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not listed in examples/README.md"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamos"));
        cmd.current_dir(dir.path())
            .env_remove("DREAMOS_CONFIG")
            .env("DREAMOS_LOG_CONSOLE", "off")
            .arg("run");
        if name == "http.lua" {
            cmd.args(["--allow", "net:127.0.0.1"]);
        }
        if name == "llm.lua" {
            cmd.env("DREAMOS_LLM_BASE_URL", llm.base_url());
        }
        cmd.arg(&path);
        if name == "http.lua" {
            cmd.arg(format!("{}/json", server.url()));
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!(
            "== {name}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let llm_answered = name != "llm.lua"
            || stdout.starts_with(
                "You said: In one sentence: what is Lua?\n[llama3.2, finish: stop, 13 tokens]",
            );
        if !out.status.success() || stdout.trim().is_empty() || !llm_answered {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "failing examples: {failures:?}");
}

#[test]
fn the_kv_example_counts_across_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for expected in ["1 time(s)", "2 time(s)"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dreamos"))
            .current_dir(dir.path())
            .env_remove("DREAMOS_CONFIG")
            .args(["run", "kv.lua"])
            .env(
                "DREAMOS_RUNTIME_SCRIPT_PATHS",
                format!("[\"{}\"]", root.join("examples").display()),
            )
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(expected),
            "{out:?}"
        );
    }
}
