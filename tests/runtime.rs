//! Runtime properties a user relies on, checked through the library with a paused clock
//! (no real waiting): concurrency of `dreamos.spawn`, flat memory over many async calls.

use std::sync::Arc;
use std::time::Duration;

use dreamos::config::Config;
use dreamos::runtime::{self, StateOptions};

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_thousand_sleeping_tasks_take_one_second_not_a_thousand() {
    let rt = paused_runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let lua = runtime::new_state(Arc::new(Config::default()), StateOptions::new("t")).unwrap();
        let start = tokio::time::Instant::now();
        let code = r#"
            local dreamos, time = require("dreamos"), require("dreamos.time")
            local hs = {}
            for i = 1, 1000 do hs[i] = dreamos.spawn(function() time.sleep(1) return i end) end
            local sum = 0
            for _, h in ipairs(hs) do sum = sum + h:join() end
            return sum
        "#;
        let out = runtime::run_chunk(&lua, code.as_bytes(), "=t", &[])
            .await
            .unwrap();
        let sum: i64 = out.into_iter().next().and_then(|v| v.as_i64()).unwrap();
        assert_eq!(sum, 500_500);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
            "virtual time passed: {elapsed:?}"
        );
    });
}

#[test]
fn memory_stays_flat_over_a_million_async_calls() {
    let rt = paused_runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let lua = runtime::new_state(Arc::new(Config::default()), StateOptions::new("t")).unwrap();
        let warm = r#"local time = require("dreamos.time") for _ = 1, 10000 do time.sleep(0) end"#;
        runtime::run_chunk(&lua, warm.as_bytes(), "=warm", &[])
            .await
            .unwrap();
        let before = lua.used_memory();
        let code =
            r#"local time = require("dreamos.time") for _ = 1, 1000000 do time.sleep(0) end"#;
        runtime::run_chunk(&lua, code.as_bytes(), "=t", &[])
            .await
            .unwrap();
        let after = lua.used_memory();
        assert!(
            after < before + 4 * 1024 * 1024,
            "Lua heap grew from {before} to {after} bytes over a million calls"
        );
    });
}

#[test]
fn one_script_hitting_a_limit_leaves_the_others_running() {
    let rt = paused_runtime();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let config = Arc::new(Config::default());
        let bomb = runtime::new_state(
            config.clone(),
            StateOptions {
                memory_limit: Some(8 * 1024 * 1024),
                ..StateOptions::new("bomb.lua")
            },
        )
        .unwrap();
        let worker = runtime::new_state(config, StateOptions::new("worker.lua")).unwrap();
        let bombing = runtime::run_chunk(
            &bomb,
            b"local t = {} while true do t[#t + 1] = string.rep('x', 1024) .. #t end",
            "@bomb.lua",
            &[],
        );
        let working = runtime::run_chunk(
            &worker,
            b"local time = require('dreamos.time') local n = 0 for i = 1, 100 do time.sleep(0.01) n = n + i end return n",
            "@worker.lua",
            &[],
        );
        let (bombed, worked) = tokio::join!(bombing, working);
        let err = bombed.unwrap_err().to_string();
        assert!(err.contains("memory limit of 8 MiB exceeded"), "{err}");
        let n = worked.unwrap().into_iter().next().and_then(|v| v.as_i64());
        assert_eq!(n, Some(5050));
        // The state that hit its limit is still usable once the work that filled it is gone.
        bomb.gc_collect().unwrap();
        let again = runtime::run_chunk(&bomb, b"return 1 + 1", "=again", &[]).await.unwrap();
        assert_eq!(again.into_iter().next().and_then(|v| v.as_i64()), Some(2));
    });
}
