//! `dreamos bench agents`: how many Lua agents one process holds, how fast they start, what
//! each costs in memory, and the round trip of a message through one of them.
//!
//! Every agent is a real supervised Lua agent — its own sandboxed state with the script
//! loaded, a runner task, a durable inbox on the bus, transitions recorded in the store —
//! so the numbers are what `dreamos serve` pays per agent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::agents::{AgentState, Recorder, Supervision, Supervisor};
use crate::bus::{Bus, SendOptions};
use crate::config::Config;
use crate::lua::agent::script::LogRing;
use crate::lua::agent::ScriptAgent;
use crate::store::{AgentStore, BusStore};

#[derive(Debug, Args)]
pub struct AgentBenchArgs {
    /// Agents to start.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Request/reply round trips, spread over the agents.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Database to use (default: a temporary one, deleted afterwards).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

/// Each agent answers a request with its payload.
const ECHO: &str = r#"
return require("dreamos.agent").define {
  idle_timeout = 0,
  on_message = function(self, msg) self:reply(msg, msg.payload) end,
}
"#;

pub fn run(config: Arc<Config>, args: AgentBenchArgs) -> anyhow::Result<ExitCode> {
    if args.agents == 0 {
        anyhow::bail!("--agents must be at least 1");
    }
    crate::runtime::prefer_small_pages();
    let scratch =
        Scratch(std::env::temp_dir().join(format!("dreamos-bench-agents-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let db = args
        .store
        .clone()
        .unwrap_or_else(|| scratch.0.join("bench.db"));
    crate::runtime::block_on(bench(config, args, db))?
}

/// The default database's directory, removed when the benchmark ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn bench(config: Arc<Config>, args: AgentBenchArgs, db: PathBuf) -> anyhow::Result<ExitCode> {
    let store = crate::store::open_sqlite(&db).await?;
    let bus = Bus::new(store.clone() as Arc<dyn BusStore>, config.bus.clone())?;
    let supervisor = Supervisor::new(Recorder::new(
        Some(store.clone() as Arc<dyn AgentStore>),
        Some(bus.clone()),
    ));
    let spec = Supervision {
        idle_timeout: None,
        resume_after: None,
        ..Supervision::default()
    };
    let source: Arc<str> = ECHO.into();
    let rss_before = resident_bytes();
    let started = Instant::now();
    for i in 0..args.agents {
        let name = format!("a{i}");
        let agent = ScriptAgent {
            name: name.clone(),
            script: PathBuf::from("bench-agent.lua"),
            config: config.clone(),
            bus: Some(bus.clone()),
            store: Some(store.clone()),
            allow: Vec::new(),
            memory_limit: None,
            control: None,
            stall: None,
            logs: LogRing::default(),
            source: Some(source.clone()),
            tasks: None,
        };
        supervisor.add(&name, spec.clone(), agent.factory())?;
        supervisor.start(&name, "bench")?;
    }
    loop {
        let states = supervisor.states();
        if states.contains(&AgentState::Failed) {
            let list = supervisor.list();
            if let Some(bad) = list.iter().find(|s| s.state == AgentState::Failed) {
                anyhow::bail!("agent {} failed: {}", bad.name, bad.reason);
            }
        }
        if states.iter().all(|s| *s == AgentState::Running) {
            break;
        }
        // Polling reads every status; rarely enough that it does not slow the start-up.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start_time = started.elapsed();
    let rss_after = resident_bytes();
    let per_agent = rss_after.saturating_sub(rss_before) / args.agents as u64;

    let mut latencies = Vec::with_capacity(args.messages);
    for i in 0..args.messages {
        let to = format!("agent:a{}", i % args.agents);
        let t = Instant::now();
        bus.request(
            "bench",
            &to,
            &json!({ "i": i }),
            Duration::from_secs(30),
            SendOptions::default(),
        )
        .await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!("agents:            {}", args.agents);
    println!(
        "start all:         {:.2?} ({:.0} agents/s)",
        start_time,
        args.agents as f64 / start_time.as_secs_f64()
    );
    println!(
        "resident memory:   {} before, {} with the agents, {} per agent",
        crate::units::format_bytes(rss_before),
        crate::units::format_bytes(rss_after),
        crate::units::format_bytes(per_agent)
    );
    if !latencies.is_empty() {
        println!(
            "round trip:        {} requests, p50 {:.2?}, p99 {:.2?}, max {:.2?} (request -> agent handler -> durable reply)",
            latencies.len(),
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or_default()
        );
    }
    let stopping = Instant::now();
    supervisor.shutdown("bench over").await;
    println!("stop all:          {:.2?}", stopping.elapsed());
    Ok(ExitCode::SUCCESS)
}

/// VmRSS of this process (Linux), 0 where unknown.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
