//! `dreamos schedule ...`: list, history, add, rm, pause, resume, run now, and `next` to
//! preview a cron expression's fire times while writing it.
//!
//! Every subcommand but `next` works straight on the store (the daemon need not run).
//! Changes are on disk when the command returns; a running daemon picks them up within a
//! fraction of a second (it polls the store's schedule change counter, see
//! `scheduler::sync`), so add, rm, pause and resume need no restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono_tz::Tz;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::scheduler::records::StoredSchedule;
use crate::scheduler::runner::ScriptRunner;
use crate::scheduler::trigger::{self, format_time};
use crate::scheduler::{MissedPolicy, OverlapPolicy, ScheduleDef, ScheduleInfo};
use crate::store::{Millis, SharedStore};
use crate::units::parse_duration;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule (stored and configured): expression, zone, next three times, last outcome.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// A schedule's runs: scheduled time, start, end, outcome, error.
    History {
        name: String,
        /// Newest runs shown.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Add (or replace) a schedule, e.g. `add report --cron '0 9 * * MON-FRI' --tz Europe/Berlin --script report.lua`.
    Add(AddArgs),
    /// Remove a schedule and its history.
    Rm { name: String },
    /// Stop a schedule firing (it stays listed).
    Pause { name: String },
    /// Let a paused schedule fire again (resets its failure count).
    Resume { name: String },
    /// Run a schedule now, in this process, recorded in its history as a manual run.
    Run { name: String },
    /// Benchmark: many schedules firing every second; start lateness and CPU.
    Bench(BenchArgs),
    /// Preview the fire times of a cron expression, e.g. `next '0 9 * * MON-FRI' --tz Europe/Berlin`.
    Next {
        /// The expression: 5 fields from minutes, 6 from seconds, names, @hourly/@daily...
        expr: String,
        /// IANA time zone (default: scheduler.timezone).
        #[arg(long)]
        tz: Option<String>,
        /// Count from this time (RFC 3339, or local 'YYYY-MM-DD HH:MM'); default now.
        #[arg(long)]
        from: Option<String>,
        /// How many fire times.
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    /// Cron expression.
    #[arg(long, group = "when")]
    pub cron: Option<String>,
    /// Fixed interval such as 15m.
    #[arg(long, group = "when", value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// One time: RFC 3339, or local 'YYYY-MM-DD HH:MM' in --tz.
    #[arg(long, group = "when")]
    pub at: Option<String>,
    /// IANA time zone (default: scheduler.timezone).
    #[arg(long)]
    pub tz: Option<String>,
    /// Script run at each fire (must exist).
    #[arg(long, group = "what")]
    pub script: Option<PathBuf>,
    /// Agent that gets a message at each fire.
    #[arg(long, group = "what")]
    pub agent: Option<String>,
    /// The message for --agent, as JSON.
    #[arg(long, requires = "agent")]
    pub message: Option<String>,
    /// skip, run_once or run_all.
    #[arg(long, value_parser = policy::<MissedPolicy>)]
    pub missed: Option<MissedPolicy>,
    /// How far back run_all catches up.
    #[arg(long, value_parser = parse_duration)]
    pub catchup_window: Option<Duration>,
    /// skip, queue or allow.
    #[arg(long, value_parser = policy::<OverlapPolicy>)]
    pub overlap: Option<OverlapPolicy>,
    /// Start each run up to this much late.
    #[arg(long, value_parser = parse_duration)]
    pub jitter: Option<Duration>,
    /// Pause after this many consecutive failures (0 = never).
    #[arg(long, default_value_t = 0)]
    pub max_failures: u32,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Schedules registered.
    #[arg(long, default_value_t = 10_000)]
    pub schedules: usize,
    /// How long they fire every second.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Use `every 1s` schedules whose phases spread over the second as they are
    /// registered, instead of `* * * * * *` (all due in the same millisecond).
    #[arg(long)]
    pub spread: bool,
    /// How long the idle CPU is measured (schedules registered, none due).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub idle: Duration,
}

/// `dreamos bench scheduler` and `dreamos schedule bench`: on a temporary database.
pub fn bench(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let dir = tempfile_dir()?;
    let opts = crate::scheduler::bench::BenchOptions {
        schedules: args.schedules,
        duration: args.duration,
        idle: args.idle,
        spread: args.spread,
        db: dir.join("bench.db"),
    };
    println!(
        "registering {} schedules; firing every second for {} ...",
        opts.schedules,
        crate::units::format_duration(opts.duration)
    );
    let report = crate::scheduler::bench::run_blocking(opts);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", report.map_err(anyhow::Error::msg)?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// A fresh directory under the system temp dir for the benchmark's database.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dreamos-bench-scheduler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn policy<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("'{s}' is not a valid policy"))
}

pub fn run(config: Arc<Config>, cmd: ScheduleCommand) -> anyhow::Result<std::process::ExitCode> {
    if let ScheduleCommand::Next {
        expr,
        tz,
        from,
        count,
    } = &cmd
    {
        next(&config, expr, tz.as_deref(), from.as_deref(), *count)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if let ScheduleCommand::Bench(args) = cmd {
        return bench(args);
    }
    let cfg = config.clone();
    super::with_store(&config, move |store| async move {
        on_store(cfg, cmd, store).await
    })
}

fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

fn next(
    config: &Config,
    expr: &str,
    tz: Option<&str>,
    from: Option<&str>,
    n: usize,
) -> anyhow::Result<()> {
    let tz =
        trigger::parse_tz(tz.unwrap_or(&config.scheduler.timezone)).map_err(anyhow::Error::msg)?;
    let t = trigger::parse_cron(expr, tz).map_err(anyhow::Error::msg)?;
    let from = match from {
        Some(text) => trigger::parse_time(text, tz).map_err(anyhow::Error::msg)?,
        None => now(),
    };
    for at in t.upcoming(from, n.clamp(1, 1000)) {
        println!("{}", format_time(at, tz));
    }
    Ok(())
}

async fn on_store(
    config: Arc<Config>,
    cmd: ScheduleCommand,
    store: SharedStore,
) -> anyhow::Result<()> {
    let keep = config.scheduler.history_keep;
    match cmd {
        ScheduleCommand::List { json } => list(&config, &*store, json).await,
        ScheduleCommand::History { name, limit, json } => {
            if find(&config, &*store, &name).await?.is_none() {
                bail!("no schedule named '{name}' (see dreamos schedule list)");
            }
            let runs = store.schedule_runs(name.clone(), limit).await?;
            if json {
                for r in &runs {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(());
            }
            if runs.is_empty() {
                println!("{name}: no runs yet");
            }
            for r in runs {
                let time =
                    |t: Option<Millis>| t.map_or("-".to_string(), |t| format_time(t, Tz::UTC));
                let took = match (r.started, r.ended) {
                    (Some(s), Some(e)) => format!("{}ms", e - s),
                    _ => "-".into(),
                };
                println!(
                    "{}  {:<9} {:<8} started {}  ended {}  ({took}){}",
                    format_time(r.scheduled, Tz::UTC),
                    r.kind,
                    r.outcome,
                    time(r.started),
                    time(r.ended),
                    r.error
                        .map(|e| format!("\n    error: {}", e.replace('\n', "\n    ")))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        ScheduleCommand::Add(args) => add(&config, &*store, args).await,
        ScheduleCommand::Rm { name } => {
            if !store.delete_schedule(name.clone()).await? {
                bail!("no schedule named '{name}' in the store (see dreamos schedule list)");
            }
            if config.schedules.iter().any(|d| d.name == name) {
                println!(
                    "removed {name}; it is in dreamos.toml, so the daemon adds it back at start"
                );
            } else {
                println!("removed {name}");
            }
            Ok(())
        }
        ScheduleCommand::Pause { name } => pause(&config, &*store, &name, true).await,
        ScheduleCommand::Resume { name } => pause(&config, &*store, &name, false).await,
        ScheduleCommand::Run { name } => {
            let stored = find(&config, &*store, &name)
                .await?
                .ok_or_else(|| anyhow!("no schedule named '{name}' (see dreamos schedule list)"))?;
            stored
                .def
                .check_script(|p| config.resolve(p))
                .map_err(anyhow::Error::msg)?;
            if stored.last_fire.is_none() && stored.next_fire.is_none() {
                // A configured schedule the daemon has not stored yet: store it so the run
                // has a history to go in.
                store.put_schedule(stored.clone(), now()).await?;
            }
            let bus = crate::bus::Bus::new(store.clone(), config.bus.clone()).ok();
            let runner = ScriptRunner::new(config.clone(), bus);
            let result = crate::scheduler::daemon::run_by_hand(
                &*store,
                &runner,
                &stored.def,
                stored.failures,
                keep,
            )
            .await?;
            match result {
                Ok(()) => {
                    println!("{name}: ok");
                    Ok(())
                }
                Err(e) => bail!("{name}: run failed: {e}"),
            }
        }
        ScheduleCommand::Next { .. } | ScheduleCommand::Bench(_) => Ok(()),
    }
}

/// A stored schedule, else a configured one not stored yet.
async fn find(
    config: &Config,
    store: &dyn crate::store::Store,
    name: &str,
) -> anyhow::Result<Option<StoredSchedule>> {
    if let Some(s) = store.get_schedule(name.to_string()).await? {
        return Ok(Some(s));
    }
    Ok(config
        .schedules
        .iter()
        .find(|d| d.name == name)
        .map(|d| StoredSchedule::new(d.clone(), "config")))
}

async fn add(config: &Config, store: &dyn crate::store::Store, a: AddArgs) -> anyhow::Result<()> {
    let mut def = ScheduleDef::new(a.name.clone());
    def.cron = a.cron;
    def.every = a.every;
    def.at = a.at;
    def.timezone = a.tz;
    def.script = a.script;
    def.agent = a.agent;
    if let Some(m) = a.message {
        def.message =
            Some(serde_json::from_str(&m).map_err(|e| anyhow!("--message is not JSON: {e}"))?);
    }
    def.missed = a.missed.unwrap_or_default();
    if let Some(w) = a.catchup_window {
        def.catchup_window = w;
    }
    def.overlap = a.overlap.unwrap_or_default();
    def.jitter = a.jitter.unwrap_or_default();
    def.max_failures = a.max_failures;
    if def.script.is_none() && def.agent.is_none() {
        bail!(
            "schedule '{}': give --script PATH or --agent NAME (what runs at each fire)",
            def.name
        );
    }
    let now = now();
    let trigger = def
        .compile(&config.scheduler.timezone, now)
        .map_err(anyhow::Error::msg)?;
    def.check_script(|p| config.resolve(p))
        .map_err(anyhow::Error::msg)?;
    let mut stored = StoredSchedule::new(def, "cli");
    stored.next_fire = trigger.next_after(now);
    if stored.next_fire.is_none() {
        bail!(
            "schedule '{}': {} is in the past",
            a.name,
            trigger.describe()
        );
    }
    if let Some(prev) = store.get_schedule(a.name.clone()).await? {
        // Keep the claimed fire time: other nodes compare against it.
        stored.last_fire = prev.last_fire;
    }
    store.put_schedule(stored.clone(), now).await?;
    let info = ScheduleInfo::new(&stored, &trigger, upcoming(&stored, &trigger), 0);
    println!(
        "added {}: {} ({}), next {}",
        info.name,
        info.expr,
        info.timezone,
        info.next.join(", ")
    );
    Ok(())
}

fn upcoming(s: &StoredSchedule, trigger: &trigger::Trigger) -> Vec<Millis> {
    match (s.paused || !s.def.enabled, s.next_fire) {
        (false, Some(first)) => {
            let mut v = vec![first];
            v.extend(trigger.upcoming(first, 2));
            v
        }
        _ => Vec::new(),
    }
}

async fn pause(
    config: &Config,
    store: &dyn crate::store::Store,
    name: &str,
    paused: bool,
) -> anyhow::Result<()> {
    let stored = store.get_schedule(name.to_string()).await?.ok_or_else(|| {
        anyhow!("no schedule named '{name}' in the store (see dreamos schedule list)")
    })?;
    let trigger = stored
        .def
        .compile(
            &config.scheduler.timezone,
            stored.next_fire.unwrap_or_else(now),
        )
        .map_err(anyhow::Error::msg)?;
    let next = if paused {
        stored.next_fire
    } else {
        trigger.next_after(now())
    };
    store.set_paused(name.to_string(), paused, next).await?;
    println!("{} {name}", if paused { "paused" } else { "resumed" });
    Ok(())
}

async fn list(config: &Config, store: &dyn crate::store::Store, json: bool) -> anyhow::Result<()> {
    let mut rows = store.list_schedules().await?;
    for def in &config.schedules {
        if !rows.iter().any(|r| r.def.name == def.name) {
            let mut s = StoredSchedule::new(def.clone(), "config");
            if let Ok(t) = def.compile(&config.scheduler.timezone, now()) {
                s.next_fire = t.next_after(now());
            }
            rows.push(s);
        }
    }
    rows.sort_by(|a, b| a.def.name.cmp(&b.def.name));
    if rows.is_empty() && !json {
        println!(
            "no schedules (add one with dreamos schedule add, or [[schedules]] in dreamos.toml)"
        );
    }
    for s in rows {
        let anchor = s.next_fire.unwrap_or_else(now);
        let trigger = match s.def.compile(&config.scheduler.timezone, anchor) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        let info = ScheduleInfo::new(&s, &trigger, upcoming(&s, &trigger), 0);
        if json {
            println!("{}", serde_json::to_string(&info)?);
            continue;
        }
        let state = if info.paused {
            "paused"
        } else if !info.enabled {
            "disabled"
        } else {
            "active"
        };
        println!(
            "{}  [{state}]  {}  ({})  {}  last: {}  source: {}",
            info.name,
            info.expr,
            info.timezone,
            info.action,
            info.last_outcome.as_deref().unwrap_or("-"),
            info.source
        );
        if !info.next.is_empty() {
            println!("    next: {}", info.next.join(", "));
        }
    }
    Ok(())
}
