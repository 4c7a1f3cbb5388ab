//! `dreamos bench tasks`: what a script author gets from the task store, measured through
//! the real `dreamos.tasks` module.
//!
//! 1. **Cycles.** `--workers` Lua states (as `dreamos serve` runs agents: one thread, one
//!    shared store) each run `--lanes` `dreamos.spawn` lanes that loop add → claim →
//!    complete. Every step is durable: it returns once its group commit is on disk. The
//!    figure is full cycles per second, plus the latency of `claim` as the script sees it.
//! 2. **Claim at a backlog.** The ready backlog is filled to 1,000 and then 1,000,000
//!    tasks (batched inserts straight into the store, 10,000 per transaction), and a Lua
//!    state with `--lanes` lanes claims from it, topping the backlog up between rounds.
//!    Flat numbers between the two are what the claim index is for: the best ready task
//!    is one seek away however many wait.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures_util::future::join_all;
use mlua::{Lua, Table, Value};
use tokio::time::Instant;

use crate::bus::Bus;
use crate::config::Config;
use crate::runtime::{self, StateOptions};
use crate::store::{AnyStore, StoreTarget};
use crate::tasks::{NewTask, Priority};

#[path = "bench_nodes.rs"]
mod nodes;

#[derive(Debug, Args)]
pub struct TaskBenchArgs {
    /// Full add -> claim -> complete cycles in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    pub cycles: usize,
    /// Lua states running workers.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Concurrent lanes (dreamos.spawn tasks) per worker.
    #[arg(long, default_value_t = 64)]
    pub lanes: usize,
    /// Ready backlogs to measure claim at (comma-separated); empty (`--backlogs ''`) skips
    /// the run.
    #[arg(long, default_value = "1000,1000000", value_parser = parse_backlogs)]
    pub backlogs: Backlogs,
    /// Claims measured at each backlog (in rounds of at most a quarter of it, each
    /// followed by a top-up, so the backlog stays near its size).
    #[arg(long, default_value_t = 5000)]
    pub claims: usize,
    /// Database to use: `sqlite:PATH` (or a plain path) or `postgres:URL` (default: a
    /// temporary SQLite file, deleted afterwards). The benchmark's tasks stay in it, so do
    /// not point it at a production store.
    #[arg(long, value_name = "BACKEND:WHERE", value_parser = StoreTarget::parse)]
    pub store: Option<StoreTarget>,
    /// Nodes sharing the cycles: this process and N-1 more `dreamos` processes on the same
    /// `--store` (PostgreSQL), each with `--workers` x `--lanes`, started together.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Set on the extra processes `--nodes` starts; not for direct use.
    #[arg(long, hide = true)]
    pub node_child: bool,
}

/// The `--backlogs` list; one value, so that an empty one parses (clap's value delimiter
/// would read `''` as one empty number).
#[derive(Debug, Clone)]
pub struct Backlogs(pub Vec<usize>);

fn parse_backlogs(text: &str) -> Result<Backlogs, String> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse()
                .map_err(|_| format!("'{n}' is not a number of tasks"))
        })
        .collect::<Result<_, _>>()
        .map(Backlogs)
}

pub fn run(config: Arc<Config>, args: TaskBenchArgs) -> anyhow::Result<ExitCode> {
    if args.cycles == 0 || args.workers == 0 || args.lanes == 0 || args.nodes == 0 {
        bail!("--cycles, --workers, --lanes and --nodes must be at least 1");
    }
    if args.nodes > 1 && !matches!(args.store, Some(StoreTarget::Postgres { .. })) {
        bail!(
            "--nodes {} needs a shared database: add --store postgres:URL",
            args.nodes
        );
    }
    let scratch = match &args.store {
        Some(_) => None,
        None => Some(Scratch::new()?),
    };
    let target = match (&args.store, &scratch) {
        (Some(target), _) => target.clone(),
        (None, Some(dir)) => StoreTarget::Sqlite(dir.0.join("bench.db")),
        (None, None) => bail!("no database to benchmark on"),
    };
    runtime::block_on(runs(config, args, &target))??;
    drop(scratch);
    Ok(ExitCode::SUCCESS)
}

async fn runs(
    config: Arc<Config>,
    args: TaskBenchArgs,
    target: &StoreTarget,
) -> anyhow::Result<()> {
    let store = target
        .open()
        .await
        .with_context(|| format!("cannot open the store ({})", target.describe()))?;
    let bus = Bus::new(store.bus(), config.bus.clone())?;
    let per_node = args.cycles.div_ceil(args.nodes);
    if args.node_child {
        return nodes::child(&config, &args, &store, &bus, per_node).await;
    }
    println!("store: {}", target.describe());
    println!(
        "durable add -> claim -> complete from Lua: {} cycles, {} node(s) x {} workers x {} lanes",
        per_node * args.nodes,
        args.nodes,
        args.workers,
        args.lanes
    );
    let run = Cycles::prepare(&config, &store, &bus, args.workers, args.lanes, per_node)?;
    let mut children = nodes::Children::start(args.nodes - 1).await?;
    let started = Instant::now();
    children.go().await?;
    let (mut latencies, _) = run.run().await?;
    latencies.extend(children.finish().await?);
    let elapsed = started.elapsed();
    let cycles = latencies.len();
    let stats = Stats::of(latencies);
    println!(
        "  {:>10.0} cycles/s   claim p50 {:.2} ms   p99 {:.2} ms   ({cycles} cycles in {:.2} s)",
        cycles as f64 / elapsed.as_secs_f64().max(1e-9),
        stats.p50,
        stats.p99,
        elapsed.as_secs_f64()
    );
    if args.backlogs.0.is_empty() || args.claims == 0 {
        return Ok(());
    }
    println!(
        "claim from Lua at a ready backlog: {} claims, {} lanes",
        args.claims, args.lanes
    );
    let mut ready = 0usize;
    let mut first: Option<Stats> = None;
    for &backlog in &args.backlogs.0 {
        let fill_started = Instant::now();
        let added = fill(&store, backlog.saturating_sub(ready)).await?;
        ready += added;
        let fill_time = fill_started.elapsed();
        if let StoreTarget::Sqlite(path) = target {
            settle(path).await?;
        }
        // Claims come in rounds of at most a quarter of the smallest backlog (the same at
        // every backlog, so the runs compare), each followed by a top-up, so every claim
        // sees between 3/4 of the backlog and all of it. The first round only warms up (the
        // writer may still be checkpointing the fill).
        let smallest = args.backlogs.0.iter().copied().min().unwrap_or(backlog);
        let round = args.claims.min(smallest / 4).max(1);
        let rounds = args.claims.div_ceil(round);
        let lua = state(&config, "bench-claimer", &store, &bus)?;
        let mut latencies = Vec::with_capacity(rounds * round);
        let mut busy = Duration::ZERO;
        for r in 0..=rounds {
            let script_args = [round.to_string(), args.lanes.to_string()];
            let started = Instant::now();
            let out =
                runtime::run_chunk(&lua, CLAIMS.as_bytes(), "=bench claimer", &script_args).await?;
            let elapsed = started.elapsed();
            let got = numbers(&out)?;
            ready -= got.len();
            if r > 0 {
                busy += elapsed;
                latencies.extend(got);
            }
            ready += fill(&store, backlog.saturating_sub(ready)).await?;
        }
        let claims = latencies.len();
        let stats = Stats::of(latencies);
        println!(
            "  backlog {backlog:>9}: {:>8.0} claims/s   p50 {:.2} ms   p99 {:.2} ms   \
             ({claims} claims; backlog filled at {:.0} tasks/s)",
            claims as f64 / busy.as_secs_f64().max(1e-9),
            stats.p50,
            stats.p99,
            added as f64 / fill_time.as_secs_f64().max(1e-9),
        );
        match &first {
            None => first = Some(stats),
            Some(base) => println!(
                "    vs backlog {}: p50 {:.2}x, p99 {:.2}x",
                args.backlogs.0[0],
                stats.p50 / base.p50.max(1e-9),
                stats.p99 / base.p99.max(1e-9)
            ),
        }
    }
    Ok(())
}

/// The cycles run of one node: Lua states ready to loop add -> claim -> complete.
pub(super) struct Cycles {
    states: Vec<Lua>,
    per_worker: usize,
    lanes: usize,
}

impl Cycles {
    pub(super) fn prepare(
        config: &Arc<Config>,
        store: &AnyStore,
        bus: &Bus,
        workers: usize,
        lanes: usize,
        cycles: usize,
    ) -> anyhow::Result<Cycles> {
        let mut states = Vec::new();
        for w in 0..workers {
            states.push(state(config, &format!("bench-worker-{w}"), store, bus)?);
        }
        Ok(Cycles {
            states,
            per_worker: cycles.div_ceil(workers),
            lanes,
        })
    }

    /// Runs every worker to the end; each claim's latency (seconds) and the time taken.
    pub(super) async fn run(&self) -> anyhow::Result<(Vec<f64>, Duration)> {
        let started = Instant::now();
        let mut runs = Vec::new();
        // Agent names differ per process, so each node's holders are told apart.
        let pid = std::process::id();
        for (w, lua) in self.states.iter().enumerate() {
            let script_args = [
                format!("worker-{pid}-{w}"),
                self.per_worker.to_string(),
                self.lanes.to_string(),
            ];
            runs.push(async move {
                runtime::run_chunk(lua, CYCLES.as_bytes(), "=bench worker", &script_args).await
            });
        }
        let mut latencies = Vec::new();
        for out in join_all(runs).await {
            latencies.extend(numbers(&out?)?);
        }
        Ok((latencies, started.elapsed()))
    }
}

/// A sandboxed state sharing the benchmark's store and bus (so their claims wake each
/// other, as agents in one daemon do).
fn state(config: &Arc<Config>, name: &str, store: &AnyStore, bus: &Bus) -> anyhow::Result<Lua> {
    let lua = runtime::new_state(
        config.clone(),
        StateOptions {
            timeout: Some(Duration::ZERO),
            ..StateOptions::new(name)
        },
    )?;
    let h = runtime::host(&lua).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A fresh state: both cells are empty, so setting them cannot fail.
    let _ = h.bus.set(bus.clone());
    drop(h);
    // The task service over this store and bus; scripts would otherwise open the
    // configured store (always SQLite, until commands are moved to `StoreTarget`).
    let tasks = crate::tasks::Tasks::new(store.tasks(), bus.clone(), config.tasks.clone())?;
    crate::lua::tasks::install(&lua, tasks);
    if let AnyStore::Sqlite(store) = store {
        let h = runtime::host(&lua).map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = h.store.set(store.clone());
    }
    Ok(lua)
}

/// Puts the fill behind us before claims are timed: SQLite copies the write-ahead log
/// into the database file (a checkpoint, which would otherwise land in the middle of the
/// claims as one long stall), and the OS writes its dirty pages (which would otherwise
/// slow the claims' fsyncs).
async fn settle(path: &Path) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        // SAFETY: sync(2) takes no arguments; it only starts and waits for writeback.
        unsafe { libc::sync() };
        Ok(())
    })
    .await??;
    Ok(())
}

/// Adds `n` ready tasks in transactions of 10,000; returns `n`.
async fn fill(store: &AnyStore, n: usize) -> anyhow::Result<usize> {
    const BATCH: usize = 10_000;
    let now = chrono::Utc::now().timestamp_millis();
    let mut left = n;
    while left > 0 {
        let count = left.min(BATCH);
        let batch: Vec<NewTask> = (0..count)
            .map(|i| NewTask {
                key: None,
                title: format!("backlog {i}"),
                description: None,
                priority: Priority::Normal,
                category: None,
                tags: Vec::new(),
                payload: None,
                assignee: None,
                max_attempts: 3,
                deadline: None,
                depends_on: Vec::new(),
            })
            .collect();
        if let Err(refused) = store.tasks().insert_tasks(batch, now).await? {
            bail!("backlog insert refused: {refused:?}");
        }
        left -= count;
    }
    Ok(n)
}

/// Lanes loop add -> claim -> complete; returns each claim's latency (seconds).
const CYCLES: &str = r#"
local tasks, dreamos, time = require("dreamos.tasks"), require("dreamos"), require("dreamos.time")
local agent, n, lanes = ...
n, lanes = tonumber(n), tonumber(lanes)
local latencies = {}
local handles = {}
for lane = 1, lanes do
  handles[lane] = dreamos.spawn(function()
    for _ = lane, n, lanes do
      local id, err = tasks.add({ title = "bench task", payload = { n = 1 } })
      if not id then error(tostring(err)) end
      local t0 = time.monotonic()
      local task, cerr = tasks.claim({ agent = agent, wait = "30s" })
      latencies[#latencies + 1] = time.monotonic() - t0
      if not task then error("claim found nothing: " .. tostring(cerr)) end
      local ok, derr = task:complete({ ok = true })
      if not ok then error(tostring(derr)) end
    end
  end)
end
for _, h in ipairs(handles) do h:join() end
return latencies
"#;

/// Lanes claim `n` tasks from the backlog; returns each claim's latency (seconds).
const CLAIMS: &str = r#"
local tasks, dreamos, time = require("dreamos.tasks"), require("dreamos"), require("dreamos.time")
local n, lanes = ...
n, lanes = tonumber(n), tonumber(lanes)
local latencies = {}
local handles = {}
for lane = 1, lanes do
  handles[lane] = dreamos.spawn(function()
    for _ = lane, n, lanes do
      local t0 = time.monotonic()
      local task, err = tasks.claim({ agent = "claimer", lease = "1h" })
      latencies[#latencies + 1] = time.monotonic() - t0
      if not task then error("claim found nothing: " .. tostring(err)) end
    end
  end)
end
for _, h in ipairs(handles) do h:join() end
return latencies
"#;

/// The numbers in the first returned value (a Lua array).
fn numbers(values: &mlua::MultiValue) -> anyhow::Result<Vec<f64>> {
    let Some(Value::Table(t)) = values.iter().next() else {
        bail!("the benchmark script returned no list of latencies");
    };
    let t: &Table = t;
    t.sequence_values::<f64>()
        .collect::<mlua::Result<Vec<f64>>>()
        .map_err(|e| anyhow::anyhow!("latencies: {e}"))
}

/// Percentiles in milliseconds.
struct Stats {
    p50: f64,
    p99: f64,
}

impl Stats {
    fn of(mut seconds: Vec<f64>) -> Stats {
        seconds.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let i = ((seconds.len() as f64 * q) as usize).min(seconds.len().saturating_sub(1));
            seconds.get(i).copied().unwrap_or(0.0) * 1000.0
        };
        Stats {
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }
}

/// A temporary directory for the benchmark database, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "dreamos-bench-tasks-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
