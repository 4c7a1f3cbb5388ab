//! How a run executes in the daemon and the CLI: a script runs in a fresh sandboxed Lua
//! state on a blocking-pool thread with its own current-thread runtime, so a slow or
//! CPU-heavy script never holds up the firing loop; an agent schedule sends its message to
//! the agent's durable inbox.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::def::ScheduleDef;
use super::engine::Runner;
use super::trigger::format_time;
use crate::config::Config;
use crate::store::Millis;

/// Runs `script` and `agent` schedules; function-handler schedules belong to a script's
/// own runner (`lua/cron.rs`).
pub struct ScriptRunner {
    config: Arc<Config>,
    /// For agent messages; `None` where no bus runs (agent schedules then fail).
    bus: Option<crate::bus::Bus>,
}

impl ScriptRunner {
    pub fn new(config: Arc<Config>, bus: Option<crate::bus::Bus>) -> ScriptRunner {
        ScriptRunner { config, bus }
    }
}

impl Runner for ScriptRunner {
    fn run(
        &self,
        def: &ScheduleDef,
        scheduled: Millis,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let name = def.name.clone();
        if let Some(script) = &def.script {
            let config = self.config.clone();
            let script = script.clone();
            return Box::pin(run_script(config, script, name, scheduled));
        }
        if let Some(agent) = &def.agent {
            let bus = self.bus.clone();
            let to = format!("agent:{agent}");
            let payload = def
                .message
                .clone()
                .unwrap_or_else(|| serde_json::json!({ "schedule": name, "scheduled": scheduled }));
            return Box::pin(async move {
                let bus = bus.ok_or("no message bus in this process to reach the agent")?;
                let from = format!("schedule:{name}");
                bus.send(&from, &to, &payload, Default::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("send to {to}: {e}"))
            });
        }
        Box::pin(async move {
            Err(format!(
                "schedule '{name}' has a Lua function handler, which only the script that made it can run"
            ))
        })
    }
}

/// Runs `script` (as written in the schedule) in its own state on the blocking pool. The
/// script gets the schedule's name and the fire time (RFC 3339) as `arg[1]`, `arg[2]`.
pub async fn run_script(
    config: Arc<Config>,
    script: PathBuf,
    name: String,
    scheduled: Millis,
) -> Result<(), String> {
    let job = move || -> Result<(), String> {
        let path = config.resolve(&script);
        let opts = crate::runtime::StateOptions::new(script.display().to_string());
        let lua = crate::runtime::new_state(config.clone(), opts).map_err(|e| e.to_string())?;
        let args = vec![name, format_time(scheduled, chrono_tz::Tz::UTC)];
        let outcome = crate::runtime::block_on(crate::runtime::run_file(&lua, &path, &args))
            .map_err(|e| format!("cannot start a runtime for the run: {e}"))?;
        outcome.map_err(|e| e.to_string())
    };
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| format!("the run panicked: {e}"))?
}
