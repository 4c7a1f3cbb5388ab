//! What a schedule is, as written in `[[schedules]]`, given to `dreamos schedule add` or
//! built by `dreamos.cron`: the trigger, what to run, and the policies. [`ScheduleDef`] is
//! also what the store keeps (as JSON), so a restart rebuilds every schedule from data
//! without re-running any script's setup code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::trigger::{self, Trigger};
use crate::store::Millis;
use crate::units::serde as units;

/// Runs that came due while the process was down or busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Drop them, with one log line saying how many.
    Skip,
    /// One catch-up run for the lot (the latest one).
    #[default]
    RunOnce,
    /// Every missed run within `catchup_window`, oldest first, one after another.
    RunAll,
}

/// A fire time that arrives while the previous run is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Drop the new run (recorded in history as `skipped`).
    #[default]
    Skip,
    /// Start it when the previous one ends.
    Queue,
    /// Start it now, beside the previous one.
    Allow,
}

/// One schedule. Exactly one of `cron`, `every`, `at`; at most one of `script`, `agent`
/// (a schedule made by a Lua function handler has neither).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// Unique; how the CLI and the history name it.
    pub name: String,
    /// Cron expression (5 fields from minutes, 6 from seconds, names, `@daily`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Fixed interval such as `"15m"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "units::opt_duration"
    )]
    pub every: Option<Duration>,
    /// One instant: RFC 3339, or local time in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// IANA zone for `cron` and local `at` times; default `[scheduler] timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Script run in its own sandboxed state at each fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<PathBuf>,
    /// Agent that receives `message` on its inbox at each fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Payload sent to `agent` (default `{"schedule": name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<serde_json::Value>,
    #[serde(default)]
    pub missed: MissedPolicy,
    /// How far back `run_all` catches up. Default one day.
    #[serde(default = "default_catchup", with = "units::duration")]
    pub catchup_window: Duration,
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// Each run starts up to this much after its time (spreads a crowd of schedules).
    #[serde(default, with = "units::duration")]
    pub jitter: Duration,
    /// Pause the schedule after this many consecutive failures; 0 = never.
    #[serde(default)]
    pub max_failures: u32,
    /// A disabled schedule is kept (and listed) but does not fire.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_catchup() -> Duration {
    Duration::from_secs(86_400)
}

fn yes() -> bool {
    true
}

impl ScheduleDef {
    /// A schedule with default policies and no trigger or action yet.
    pub fn new(name: impl Into<String>) -> ScheduleDef {
        ScheduleDef {
            name: name.into(),
            cron: None,
            every: None,
            at: None,
            timezone: None,
            script: None,
            agent: None,
            message: None,
            missed: MissedPolicy::default(),
            catchup_window: default_catchup(),
            overlap: OverlapPolicy::default(),
            jitter: Duration::ZERO,
            max_failures: 0,
            enabled: true,
        }
    }

    /// Checks everything that can be checked before the first fire and builds the
    /// trigger. `default_tz` is `[scheduler] timezone`; `anchor` starts `every` intervals.
    /// Errors start with `schedule 'NAME': `.
    pub fn compile(&self, default_tz: &str, anchor: Millis) -> Result<Trigger, String> {
        let fail = |m: String| format!("schedule '{}': {m}", self.name);
        validate_name(&self.name).map_err(fail)?;
        let tz = trigger::parse_tz(self.timezone.as_deref().unwrap_or(default_tz)).map_err(fail)?;
        let trigger = match (&self.cron, self.every, &self.at) {
            (Some(expr), None, None) => trigger::parse_cron(expr, tz),
            (None, Some(d), None) => trigger::every(d, anchor),
            (None, None, Some(at)) => trigger::parse_time(at, tz).map(Trigger::At),
            (None, None, None) => Err("give one of cron, every or at".to_string()),
            _ => Err("give only one of cron, every or at".to_string()),
        }
        .map_err(fail)?;
        if self.script.is_some() && self.agent.is_some() {
            return Err(fail("give either script or agent, not both".into()));
        }
        if self.message.is_some() && self.agent.is_none() {
            return Err(fail(
                "message is sent to an agent: add agent = \"NAME\"".into(),
            ));
        }
        Ok(trigger)
    }

    /// Refuses a script that does not exist now, rather than at 3 a.m. `resolve` maps the
    /// path as written to where it is looked for.
    pub fn check_script(&self, resolve: impl Fn(&Path) -> PathBuf) -> Result<(), String> {
        if let Some(script) = &self.script {
            let path = resolve(script);
            if !path.is_file() {
                return Err(format!(
                    "schedule '{}': script {} does not exist (looked at {})",
                    self.name,
                    script.display(),
                    path.display()
                ));
            }
        }
        Ok(())
    }

    /// What a fire does, for listings.
    pub fn action(&self) -> String {
        match (&self.script, &self.agent) {
            (Some(s), _) => format!("script {}", s.display()),
            (None, Some(a)) => format!("message to agent {a}"),
            (None, None) => "Lua function".into(),
        }
    }
}

/// Names appear in CLI arguments, log lines and bus payloads: keep them plain.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name '{name}': use 1-128 letters, digits, '-', '_', '.', ':' or '/'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_entry_with_defaults() {
        let def: ScheduleDef = toml::from_str(
            "name = 'report'\ncron = '0 9 * * MON-FRI'\ntimezone = 'Europe/Berlin'\nscript = 'r.lua'",
        )
        .unwrap();
        assert_eq!(def.missed, MissedPolicy::RunOnce);
        assert_eq!(def.overlap, OverlapPolicy::Skip);
        assert!(def.enabled);
        assert!(def.compile("UTC", 0).is_ok());
        let json = serde_json::to_string(&def).unwrap();
        let back: ScheduleDef = serde_json::from_str(&json).unwrap();
        assert_eq!(back, def);
    }

    #[test]
    fn refuses_what_cannot_work() {
        let mut def = ScheduleDef::new("x");
        assert!(def
            .compile("UTC", 0)
            .unwrap_err()
            .contains("give one of cron"));
        def.cron = Some("* * * * *".into());
        def.every = Some(Duration::from_secs(5));
        assert!(def.compile("UTC", 0).unwrap_err().contains("only one"));
        def.every = None;
        def.timezone = Some("Mars/Olympus".into());
        assert!(def
            .compile("UTC", 0)
            .unwrap_err()
            .starts_with("schedule 'x': unknown time zone"));
        def.timezone = None;
        def.script = Some("nope.lua".into());
        let e = def.check_script(|p| p.to_path_buf()).unwrap_err();
        assert!(e.contains("script nope.lua does not exist"), "{e}");
        assert!(toml::from_str::<ScheduleDef>("name='a'\ncron='* * * * *'\nmised='skip'").is_err());
    }
}
