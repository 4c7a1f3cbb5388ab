//! The script host: creates sandboxed Lua states and runs scripts in them as coroutines on
//! tokio.
//!
//! - [`sandbox`] trims the standard library, installs the prelude and the limit hook.
//! - [`grants`] holds the capabilities (`fs:`, `net:`, `exec`, `env:`) checked by modules.
//! - [`loader`] finds modules: built-in Rust and Lua modules first, then the script paths.
//! - [`driver`] runs a chunk to completion, counts the instruction budget per resume and
//!   turns failures into [`ScriptError`]s that point at `file:line` with a traceback.
//!
//! Everything a module needs about the script it serves lives in [`Host`], stored as the
//! state's app data; the store and HTTP client inside it are created on first use, so a
//! script that does not touch them pays nothing at start-up.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Lua, LuaOptions, StdLib};

use crate::config::{Config, Limits};

pub mod driver;
pub mod grants;
pub mod loader;
pub mod sandbox;

pub use driver::{run_chunk, run_file, ScriptError};
pub use grants::{Grant, Grants};

/// Per-state context shared by every module of that state.
pub struct Host {
    /// The loaded configuration (read-only; `dreamos.config` exposes it to Lua).
    pub config: Arc<Config>,
    /// The script's name as the user gave it (a path, or `(command line)`); used in logs
    /// and in denial messages.
    pub script: String,
    /// Effective limits after per-script overrides.
    pub limits: Limits,
    /// Capabilities, checked by `fs`, `http` and `exec` before any effect.
    pub grants: Grants,
    /// Counters the limit hook and the driver share.
    pub meter: Rc<Meter>,
    /// The HTTP client, built on the first request (it loads TLS roots, which costs ms).
    pub http: OnceCell<reqwest::Client>,
    /// The `dreamos.llm` client, built on the first call (it reads the API key then).
    pub llm: OnceCell<crate::clients::llm::LlmClient>,
    /// The configured store (`[store]`), opened on the first call that needs it; the
    /// daemon sets it before it creates agent states, so they all share one.
    pub store: tokio::sync::OnceCell<crate::store::SharedStore>,
    /// The message bus, created over `store` on the first `dreamos.bus` call. Whoever runs
    /// several states in one process (the bus benchmark, an agent supervisor) sets one bus
    /// in all of them first, so they wake each other instead of polling the store.
    pub bus: tokio::sync::OnceCell<crate::bus::Bus>,
    /// Tasks started with `dreamos.spawn` that have not finished; `run` waits for them.
    pub spawned: Rc<driver::SpawnTracker>,
}

/// What the instruction hook needs, kept apart from [`Host`] so the hook closure and the
/// driver can hold it without borrowing the Lua state.
pub struct Meter {
    /// Instructions run since the script last suspended.
    pub used: Cell<u64>,
    /// `sandbox.instruction_limit`; 0 means unlimited.
    pub limit: u64,
    /// Wall-clock deadline for the whole run (`sandbox.timeout`).
    pub deadline: Cell<Option<Instant>>,
    /// `sandbox.timeout`, for messages; zero means none.
    pub timeout: Duration,
    /// Set from a signal handler (Ctrl-C in the REPL) to stop the running statement.
    pub interrupt: Arc<AtomicBool>,
}

impl Meter {
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }
}

/// Options for a new state beyond the configuration.
pub struct StateOptions {
    /// The script name for limits, grants and chunk names.
    pub script: String,
    /// Shared interrupt flag; a fresh one if `None`.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Extra grants from the command line (`dreamos run --allow ...`).
    pub extra_allow: Vec<String>,
    /// Replaces the configured memory limit (`--memory`).
    pub memory_limit: Option<u64>,
    /// Replaces the configured timeout (`--timeout`).
    pub timeout: Option<Duration>,
    /// Open `math`, `utf8`, `os` and `io` on first use (agent states: thousands of them).
    pub lazy_libs: bool,
}

impl StateOptions {
    pub fn new(script: impl Into<String>) -> Self {
        StateOptions {
            script: script.into(),
            interrupt: None,
            extra_allow: Vec::new(),
            memory_limit: None,
            timeout: None,
            lazy_libs: false,
        }
    }
}

/// Creates a sandboxed Lua state for one script.
pub fn new_state(config: Arc<Config>, opts: StateOptions) -> Result<Lua, ScriptError> {
    let mut limits = config.limits_for(Some(&opts.script));
    limits.allow.extend(opts.extra_allow.iter().cloned());
    if let Some(m) = opts.memory_limit {
        limits.memory_limit = m;
    }
    if let Some(t) = opts.timeout {
        limits.timeout = t;
    }
    let grants =
        Grants::new(&limits.allow, &config.base_dir(), &opts.script).map_err(ScriptError::setup)?;
    let meter = Rc::new(Meter {
        used: Cell::new(0),
        limit: limits.instruction_limit,
        deadline: Cell::new(None),
        timeout: limits.timeout,
        interrupt: opts.interrupt.unwrap_or_default(),
    });
    // SAFETY: the debug library is loaded only so the sandbox can keep `debug.traceback`
    // and drop the rest before any user code runs (see sandbox::trim).
    let mut libs = StdLib::COROUTINE | StdLib::TABLE | StdLib::STRING | StdLib::PACKAGE;
    if !opts.lazy_libs {
        libs |= sandbox::lazy_libs();
    }
    let lua = unsafe { Lua::unsafe_new_with(libs | StdLib::DEBUG, LuaOptions::new()) };
    // Generational GC: with Lua 5.4.9 the incremental collector frees finalizable objects
    // only in full cycles, so every async call's garbage piles up; generational keeps the
    // heap flat and the calls faster.
    lua.gc_set_mode(mlua::state::GcMode::Generational(
        mlua::state::GcGenParams::default(),
    ));
    let setup = |e: mlua::Error| ScriptError::setup(e.to_string());
    sandbox::trim(&lua).map_err(setup)?;
    sandbox::install_prelude(&lua).map_err(setup)?;
    if opts.lazy_libs {
        sandbox::install_lazy_libs(&lua).map_err(setup)?;
    }
    sandbox::install_hook(&lua, meter.clone()).map_err(setup)?;
    lua.set_app_data(Host {
        config: config.clone(),
        script: opts.script,
        limits: limits.clone(),
        grants,
        meter,
        http: OnceCell::new(),
        llm: OnceCell::new(),
        store: tokio::sync::OnceCell::new(),
        bus: tokio::sync::OnceCell::new(),
        spawned: Rc::default(),
    });
    loader::install(&lua, &config).map_err(setup)?;
    crate::lua::register(&lua).map_err(setup)?;
    if limits.memory_limit > 0 {
        lua.set_memory_limit(limits.memory_limit as usize)
            .map_err(setup)?;
    }
    Ok(lua)
}

/// Asks Linux not to back this process with transparent huge pages. The allocator advises
/// its arenas for them, and the first touch of a 2 MiB page zeroes all of it: starting
/// 10,000 agents — each a few dozen KiB of small allocations — spent about a third of its
/// time in the kernel clearing huge pages (measured with `perf`; 40% faster without). Called
/// by the daemon and `bench agents` before they create states; a no-op elsewhere.
pub fn prefer_small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// The [`Host`] of a state created by [`new_state`].
pub fn host(lua: &Lua) -> mlua::Result<mlua::AppDataRef<'_, Host>> {
    lua.app_data_ref::<Host>()
        .ok_or_else(|| mlua::Error::runtime("this Lua state was not created by dreamos"))
}

/// This state's store, opening the configured one (`[store]`) on first use. The inner
/// `Err` is a failure of the world, for `nil, err`: it names the backend and database.
pub async fn open_store(lua: &Lua) -> mlua::Result<Result<crate::store::SharedStore, String>> {
    let (existing, config) = {
        let h = host(lua)?;
        (h.store.get().cloned(), h.config.clone())
    };
    if let Some(store) = existing {
        return Ok(Ok(store));
    }
    let opened = match crate::store::open_configured(&config).await {
        Ok(store) => store,
        Err(e) => return Ok(Err(e)),
    };
    let h = host(lua)?;
    Ok(Ok(h.store.get_or_init(|| async { opened }).await.clone()))
}

/// Runs `fut` on a single-threaded tokio runtime with a `LocalSet`, which is what every
/// Lua state needs (states are not `Send`; `dreamos.spawn` uses `spawn_local`). Tasks still
/// running when `fut` returns are dropped with the runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    Ok(local.block_on(&rt, fut))
}
