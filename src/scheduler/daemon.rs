//! Starting the scheduler of a long-running process (`dreamos serve`) and running one
//! schedule by hand (`dreamos schedule run`).

use std::rc::Rc;
use std::sync::Arc;

use super::records::{RunEnd, RunKind, RunStart};
use super::runner::ScriptRunner;
use super::{Runner, ScheduleDef, Scheduler, SchedulerError};
use crate::config::Config;
use crate::store::ScheduleStore;

/// Builds the daemon's scheduler: refuses the configuration if a configured script does
/// not exist (now, not at 3 a.m.), loads what the store holds (schedules added with
/// `dreamos schedule add` and the last configuration, with their next fire times, so
/// runs missed while down are caught up by policy), then applies `[[schedules]]`: new and
/// changed entries are added, configured rows no longer in the file are removed.
///
/// The caller runs the returned scheduler with `scheduler.run(shutdown)` on a `LocalSet`.
pub async fn start(
    config: Arc<Config>,
    store: Arc<dyn ScheduleStore>,
    bus: Option<crate::bus::Bus>,
) -> Result<Scheduler, SchedulerError> {
    super::config::check_scripts(&config)?;
    let runner = ScriptRunner::new(config.clone(), bus.clone());
    let scheduler = Scheduler::new(
        store.clone(),
        Rc::new(runner),
        bus,
        config.scheduler.settings(),
    );
    scheduler.load().await?;
    for def in &config.schedules {
        scheduler.add(def.clone(), "config").await?;
    }
    let configured: Vec<&str> = config.schedules.iter().map(|d| d.name.as_str()).collect();
    for info in scheduler.list() {
        if info.source == "config" && !configured.contains(&info.name.as_str()) {
            scheduler.remove(&info.name).await?;
        }
    }
    Ok(scheduler)
}

/// Runs `def` once now with `runner`, recorded in its history as a manual run (the
/// consecutive-failure count is kept as it was).
pub async fn run_by_hand(
    store: &dyn ScheduleStore,
    runner: &dyn Runner,
    def: &ScheduleDef,
    failures: u32,
    keep: u64,
) -> Result<Result<(), String>, SchedulerError> {
    let now = || chrono::Utc::now().timestamp_millis();
    let started = now();
    let start = RunStart {
        schedule: def.name.clone(),
        kind: RunKind::Manual,
        scheduled: started,
        started,
        outcome: "running",
        error: None,
    };
    let ids = store
        .start_runs(super::leader::node_id(), vec![start])
        .await?;
    // A manual start is never refused.
    let id = ids.first().copied().flatten().unwrap_or_default();
    let result = runner.run(def, started).await;
    let end = RunEnd {
        id,
        schedule: def.name.clone(),
        ended: now(),
        outcome: if result.is_ok() { "ok" } else { "failed" },
        error: result.clone().err(),
        failures,
        pause: false,
        keep,
    };
    store.finish_runs(vec![end]).await?;
    Ok(result)
}
