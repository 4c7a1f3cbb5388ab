//! Dream.OS: a scriptable automation runtime. One binary, `dreamos`, hosts Lua 5.4 scripts.
//!
//! How the pieces fit (read top to bottom):
//! - [`config`]: `dreamos.toml` types, defaults, validation with `file:line` errors, env overrides.
//! - [`runtime`]: the script host — Lua state creation, sandbox and limits, module loader,
//!   the async driver that runs every script as a coroutine on tokio.
//! - [`lua`]: the Lua-facing layer, one file per `dreamos.<name>` module; thin bindings only.
//! - [`logging`]: tracing setup, rotating JSON-lines files, gzip archival and retention.
//! - [`store`]: persistence behind traits; SQLite (WAL, group commit) is the embedded default.
//! - [`agents`]: the supervisor — lifecycle, restart and idle policies, the `Agent` trait.
//! - [`bus`]: the durable message bus (plain Rust, no mlua).
//! - [`scheduler`]: cron, intervals and one-shot times with missed-run and overlap policies.
//! - [`tasks`]: the task store and its state machine (plain Rust, no mlua).
//! - [`server`]: the daemon's HTTP side — control API, dashboard, SSE, `/metrics`, its lock
//!   and token files.
//! - [`private_fs`]: 0700 directories and 0600 files for the database, tokens and logs.
//! - [`cli`]: one file per subcommand family; `main.rs` only parses and dispatches.
//! - [`social`]: the durable social outbox — accounts, scheduling, rate limits, metrics.
//! - [`clients`]: outside services in plain Rust — Discord, the social platforms, and an
//!   OpenAI-compatible LLM client (`clients::llm`, behind `dreamos.llm`).
//! - [`units`]: durations and byte sizes as users write them.

pub mod agents;
pub mod bus;
pub mod cli;
pub mod clients;
pub mod config;
pub mod logging;
pub mod lua;
pub mod private_fs;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod social;
pub mod store;
pub mod tasks;
pub mod units;
