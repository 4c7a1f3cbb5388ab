//! `dreamos bench ...`: benchmarks a user can run on their own machine, like
//! `redis-benchmark` or `nats bench`.
//!
//! `bench bus` measures what a script author gets, not what the Rust core can do alone: a
//! sender script and a consumer script, each in its own Lua state, on one thread (as
//! `dreamos serve` runs agents), talking through the real `dreamos.bus` module over one
//! shared bus on a real database.
//!
//! - The sender keeps `--window` sends in flight with `dreamos.spawn` lanes.
//! - The consumer is the idiomatic loop `while ... do local msg = bus.recv(c) ... end`:
//!   reading the payload is the handler, and asking for the next message acks the previous
//!   one (pipelined: it commits with the next batch). A consumer script counts as done when
//!   `run_chunk` returns, which is after its pipelined acks are on disk, so the rate is
//!   durable send -> handler -> durable ack.
//! - Latency is what a sender sees as delivery confirmation: for one message in
//!   `--sample-every`, its lane waits on `receipt:wait()` and records the time from calling
//!   `send` to hearing "acked" (the ack committed). Sampling keeps the measuring from
//!   costing more than what is measured; the other lanes keep sending meanwhile.
//!
//! A second run paces the sender at half the measured rate (latency under load, not at
//! saturation), and a third measures `publish` -> subscriber handler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use mlua::{Lua, Table, Value};

use crate::bus::{Bus, BusConfig};
use crate::config::Config;
use crate::runtime::{self, StateOptions};
use crate::store::{AnyStore, StoreTarget};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable send -> handler -> ack between two Lua scripts, and the publish path.
    Bus(BusBenchArgs),
    /// Durable add -> claim -> complete cycles from Lua workers, and claim at a backlog.
    Tasks(crate::cli::task::bench::TaskBenchArgs),
    /// Schedules firing every second: start lateness p50/p99/max and CPU, firing and idle.
    Scheduler(crate::cli::schedule::BenchArgs),
    /// N supervised Lua agents: start time, resident memory per agent, message round trip.
    Agents(crate::cli::bench_agents::AgentBenchArgs),
}

#[derive(Debug, Args)]
pub struct BusBenchArgs {
    /// Durable messages per run.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Database to use: `sqlite:PATH` (or a plain path) or `postgres:URL` (default: a
    /// temporary SQLite file, deleted afterwards). The benchmark's messages stay in its
    /// history, so do not point it at a production store.
    #[arg(long, value_name = "BACKEND:WHERE", value_parser = StoreTarget::parse)]
    pub store: Option<StoreTarget>,
    /// Sends in flight at once (sender tasks in the sender script).
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Worker tasks in the consumer script, each a recv loop.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Measure the latency of one message in this many.
    #[arg(long, default_value_t = 16)]
    pub sample_every: usize,
    /// Size of the padding string in each payload.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Rate of the paced run, messages per second (default: half the full-speed rate).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Messages for the publish run; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub publish: usize,
    /// Node processes running the full-speed run at once against the store, each with its
    /// own sender, consumer, bus and connections on a channel of its own (as that many
    /// `dreamos serve` nodes); reports each and the total. Each sends --messages / N.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Set by a --nodes run for the node processes it starts: begin at this time (seconds
    /// since the epoch), run at full speed once and print the result as one line.
    #[arg(long, hide = true, value_name = "EPOCH_SECONDS")]
    pub node_start_at: Option<f64>,
}

pub fn run(config: Arc<Config>, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Bus(args) => bus(config, args),
        BenchCommand::Tasks(args) => crate::cli::task::bench::run(config, args),
        BenchCommand::Scheduler(args) => crate::cli::schedule::bench(args),
        BenchCommand::Agents(args) => crate::cli::bench_agents::run(config, args),
    }
}

/// The numbers of one durable run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Durable {
    /// When the sender started and the consumer's last ack committed (s since the epoch).
    pub started: f64,
    pub done_at: f64,
    pub messages: usize,
    /// Messages whose latency was measured.
    pub samples: usize,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

fn bus(config: Arc<Config>, args: BusBenchArgs) -> anyhow::Result<ExitCode> {
    if args.messages == 0 || args.window == 0 || args.consumers == 0 || args.sample_every == 0 {
        bail!("--messages, --window, --consumers and --sample-every must be at least 1");
    }
    if let Some(start_at) = args.node_start_at {
        return runtime::block_on(crate::cli::bench_nodes::node(config, args, start_at))?;
    }
    let scratch = match &args.store {
        Some(_) => None,
        None => Some(Scratch::new()?),
    };
    let target = match (&args.store, &scratch) {
        (Some(target), _) => target.clone(),
        (None, Some(s)) => StoreTarget::Sqlite(s.0.join("bench.db")),
        (None, None) => bail!("no database to benchmark on"),
    };
    if args.nodes > 1 {
        crate::cli::bench_nodes::run(&config, &args, &target)?;
        drop(scratch);
        return Ok(ExitCode::SUCCESS);
    }
    runtime::block_on(bus_runs(config, args, &target))??;
    drop(scratch);
    Ok(ExitCode::SUCCESS)
}

async fn bus_runs(
    config: Arc<Config>,
    args: BusBenchArgs,
    target: &StoreTarget,
) -> anyhow::Result<()> {
    let store = target
        .open()
        .await
        .with_context(|| format!("cannot open the store ({})", target.describe()))?;
    // Subscribers may hold a whole run: the publish number is delivered messages, never
    // a publisher outrunning readers that drop what they cannot hold.
    let bus_config = BusConfig {
        subscriber_buffer: args.publish.max(1024),
        ..config.bus.clone()
    };
    let bus = Bus::new(store.bus(), bus_config)?;
    println!("store: {}", target.describe());
    println!(
        "durable send -> handler -> ack between two Lua scripts: {} messages, {}-byte payloads, \
         {} sends in flight, {} consumer loop(s); latency = send -> receipt says acked, 1 in {}",
        args.messages, args.payload_bytes, args.window, args.consumers, args.sample_every
    );
    let full = durable(&config, &store, &bus, &args, 0, "full").await?;
    print_durable("  full speed", &full);
    let rate = args.rate.unwrap_or((full.per_sec / 2.0) as u64).max(1);
    let paced = durable(&config, &store, &bus, &args, rate, "paced").await?;
    print_durable(&format!("  at {rate}/s"), &paced);
    if args.publish > 0 {
        let (per_sec, received) = publish(&config, &store, &bus, args.publish).await?;
        println!(
            "publish -> subscriber handler between two Lua scripts: {} messages\n  {:>10.0} msg/s \
             ({received} delivered)",
            args.publish, per_sec
        );
    }
    Ok(())
}

pub(crate) fn print_durable(label: &str, d: &Durable) {
    println!(
        "{label:<16} {:>10.0} msg/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   \
         ({} messages, {} latencies)",
        d.per_sec,
        ms(d.p50),
        ms(d.p99),
        ms(d.max),
        d.messages,
        d.samples
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A sandboxed state sharing the benchmark's store and bus.
pub(crate) fn state(
    config: &Arc<Config>,
    name: &str,
    store: &AnyStore,
    bus: &Bus,
) -> anyhow::Result<Lua> {
    let lua = runtime::new_state(
        config.clone(),
        StateOptions {
            timeout: Some(Duration::ZERO),
            ..StateOptions::new(name)
        },
    )?;
    let h = runtime::host(&lua).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Fresh state: both cells are empty, so these cannot fail. On PostgreSQL the store
    // cell stays empty: the bus is set, and it is all these scripts use.
    if let AnyStore::Sqlite(store) = store {
        let _ = h.store.set(store.clone());
    }
    let _ = h.bus.set(bus.clone());
    drop(h);
    Ok(lua)
}

const SENDER: &str = r#"
local bus, dreamos, time = require("dreamos.bus"), require("dreamos"), require("dreamos.time")
local channel, n, lanes, pad_bytes, rate, every = ...
n, lanes, rate, every = tonumber(n), tonumber(lanes), tonumber(rate), tonumber(every)
local pad = string.rep("x", tonumber(pad_bytes))
local latencies = {}
local started = time.now()
local handles = {}
for lane = 1, lanes do
  handles[lane] = dreamos.spawn(function()
    for i = lane, n, lanes do
      if rate > 0 then
        local wait = started + (i - 1) / rate - time.now()
        if wait > 0 then time.sleep(wait) end
      end
      local t0 = time.now()
      local receipt, err = bus.send(channel, { i = i, pad = pad })
      if not receipt then error(tostring(err)) end
      if i % every == 0 then
        local outcome, werr = receipt:wait(120)
        if outcome ~= "acked" then error("message " .. i .. ": " .. tostring(outcome or werr)) end
        latencies[#latencies + 1] = time.now() - t0
      end
    end
  end)
end
for _, h in ipairs(handles) do h:join() end
return { started = started, latencies = latencies }
"#;

const CONSUMER: &str = r#"
local bus, dreamos = require("dreamos.bus"), require("dreamos")
local channel, n, workers = ...
n, workers = tonumber(n), tonumber(workers)
local count, sum = 0, 0
local handles = {}
for w = 1, workers do
  handles[w] = dreamos.spawn(function()
    local held
    while count < n do
      held = bus.recv(channel, 0.02)     -- acks the previous message (pipelined)
      if held then
        sum = sum + held.payload.i       -- the handler: read the payload
        count = count + 1
      end
    end
    if held then held:ack { wait = false } end
  end)
end
for _, h in ipairs(handles) do h:join() end
-- The script ends here, but `dreamos run` (and this benchmark) waits until every pipelined
-- ack has committed before it counts the consumer as done.
return { count = count }
"#;

/// One durable run on a fresh channel; `rate` 0 = as fast as it goes.
pub(crate) async fn durable(
    config: &Arc<Config>,
    store: &AnyStore,
    bus: &Bus,
    args: &BusBenchArgs,
    rate: u64,
    run: &str,
) -> anyhow::Result<Durable> {
    let channel = format!("bench.{run}-{}", std::process::id());
    let (sender, consumer) = (
        state(config, "bench-sender", store, bus)?,
        state(config, "bench-consumer", store, bus)?,
    );
    let n = args.messages.to_string();
    let consumer_args = [channel.clone(), n.clone(), args.consumers.to_string()];
    let sender_args = [
        channel,
        n,
        args.window.to_string(),
        args.payload_bytes.to_string(),
        rate.to_string(),
        args.sample_every.to_string(),
    ];
    let consuming = async {
        let result = runtime::run_chunk(
            &consumer,
            CONSUMER.as_bytes(),
            "=bench consumer",
            &consumer_args,
        )
        .await;
        // run_chunk returns once the consumer's pipelined acks are on disk.
        (result, epoch_seconds())
    };
    let ((consumed, done_at), sent) = tokio::join!(
        consuming,
        runtime::run_chunk(&sender, SENDER.as_bytes(), "=bench sender", &sender_args),
    );
    let sent = first_table(&sent?)?;
    let started: f64 = field(&sent, "started")?;
    let count: usize = field(&first_table(&consumed?)?, "count")?;
    let mut latencies: Vec<f64> = field::<Table>(&sent, "latencies")?
        .sequence_values()
        .collect::<mlua::Result<_>>()
        .map_err(|e| anyhow::anyhow!("latencies: {e}"))?;
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        Duration::from_secs_f64(latencies.get(i).copied().unwrap_or(0.0).max(0.0))
    };
    Ok(Durable {
        started,
        done_at,
        messages: count,
        samples: latencies.len(),
        per_sec: count as f64 / (done_at - started).max(1e-9),
        p50: pick(0.50),
        p99: pick(0.99),
        max: pick(1.0),
    })
}

const SUBSCRIBER: &str = r#"
local bus, time = require("dreamos.bus"), require("dreamos.time")
local topic, n, done = ...
n = tonumber(n)
local result = { count = 0 }
local handle = bus.subscribe(topic, function(msg)
  result.count = result.count + 1
  if result.count == n then
    result.done_at = time.now()
    bus.send(done, true)
  end
end)
local signal, err = bus.recv(done, 300)    -- the handler says when the last one arrived
handle:cancel()
if not signal then error("publish run did not finish: " .. tostring(err)) end
signal:ack()
return result
"#;

const PUBLISHER: &str = r#"
local bus, time = require("dreamos.bus"), require("dreamos.time")
local topic, n = ...
n = tonumber(n)
local started = time.now()
for i = 1, n do
  bus.publish(topic, { i = i })
  -- Let the subscriber run: on one thread, a publisher that never yields starves it.
  if i % 100 == 0 then time.sleep(0) end
end
return { started = started }
"#;

/// Publishes `n` messages from one script to a subscriber in another; returns delivered
/// messages per second and how many arrived.
async fn publish(
    config: &Arc<Config>,
    store: &AnyStore,
    bus: &Bus,
    n: usize,
) -> anyhow::Result<(f64, u64)> {
    let topic = format!("bench.events-{}", std::process::id());
    let done = format!("bench.done-{}", std::process::id());
    let subscriber = state(config, "bench-subscriber", store, bus)?;
    let publisher = state(config, "bench-publisher", store, bus)?;
    let n_text = n.to_string();
    let subscriber_args = [topic.clone(), n_text.clone(), done];
    let publisher_args = [topic, n_text];
    // The subscriber's chunk runs first and subscribes before its first suspension, so
    // nothing is published before anyone listens.
    let (subscribed, published) = tokio::join!(
        runtime::run_chunk(
            &subscriber,
            SUBSCRIBER.as_bytes(),
            "=bench subscriber",
            &subscriber_args
        ),
        runtime::run_chunk(
            &publisher,
            PUBLISHER.as_bytes(),
            "=bench publisher",
            &publisher_args
        ),
    );
    let started: f64 = field(&first_table(&published?)?, "started")?;
    let result = first_table(&subscribed?)?;
    let done_at: f64 = field(&result, "done_at")?;
    let count: u64 = field(&result, "count")?;
    Ok((count as f64 / (done_at - started).max(1e-9), count))
}

fn first_table(values: &mlua::MultiValue) -> anyhow::Result<Table> {
    match values.iter().next() {
        Some(Value::Table(t)) => Ok(t.clone()),
        _ => bail!("a benchmark script returned no result table"),
    }
}

/// Now as `time.now()` gives it in scripts: seconds since the epoch.
fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A field of a result table (mlua errors are not `Send`, so they become text here).
fn field<T: mlua::FromLua>(t: &Table, key: &str) -> anyhow::Result<T> {
    t.get(key)
        .map_err(|e| anyhow::anyhow!("benchmark result '{key}': {e}"))
}

/// A temporary directory for the default database, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("dreamos-bench-{}-{nanos}", std::process::id()));
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
