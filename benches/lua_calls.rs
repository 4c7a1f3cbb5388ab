//! Cost of calling into Rust from Lua, per call: `cargo bench --bench lua_calls`.
//!
//! Each figure is the time of a Lua loop making N calls, minus the same loop empty, divided
//! by N; the best of several rounds is reported, since these machines are shared and noisy.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dreamos::config::Config;
use dreamos::runtime::{self, StateOptions};

const N: u64 = 2_000_000;
const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let lua = runtime::new_state(Arc::new(Config::default()), StateOptions::new("bench"))
            .expect("state");
        // An async Rust function that completes without suspending: the binding's own cost.
        let ready = lua
            .create_async_function(|_, x: i64| async move { Ok(black_box(x)) })
            .expect("fn");
        lua.globals().set("ready_async", ready).expect("set");
        let setup = "local json, time = require('dreamos.json'), require('dreamos.time')\n\
                     local function plain(x) return x end\n\
                     local small = {id = 7, name = 'scout', ok = true}\n";
        let cases = [
            ("plain Lua function call", "plain(i)"),
            ("sync Rust: time.now()", "time.now()"),
            ("sync Rust: json.encode(small table)", "json.encode(small)"),
            ("async Rust, ready at once", "ready_async(i)"),
            ("async Rust, suspending: time.sleep(0)", "time.sleep(0)"),
        ];
        let baseline = best(&lua, setup, "").await;
        println!("Lua -> Rust call costs ({N} calls per round, best of {ROUNDS}):");
        for (name, call) in cases {
            let total = best(&lua, setup, call).await;
            let per_call = total.saturating_sub(baseline).as_nanos() as f64 / N as f64;
            println!("  {name:<40} {per_call:>8.1} ns/call");
        }
        let before = lua.used_memory();
        run(&lua, setup, "time.sleep(0)").await;
        println!(
            "  Lua heap after {N} more time.sleep(0) calls: {} KiB (before: {} KiB)",
            lua.used_memory() / 1024,
            before / 1024
        );
    });
}

async fn best(lua: &mlua::Lua, setup: &str, call: &str) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        best = best.min(run(lua, setup, call).await);
    }
    best
}

async fn run(lua: &mlua::Lua, setup: &str, call: &str) -> Duration {
    let code = format!("{setup}for i = 1, {N} do {call} end");
    let start = Instant::now();
    runtime::run_chunk(lua, code.as_bytes(), "=bench", &[])
        .await
        .expect("bench chunk");
    start.elapsed()
}
