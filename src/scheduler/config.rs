//! `[scheduler]` and `[[schedules]]` in dreamos.toml.
//!
//! Cron expressions and time zones are checked when the configuration loads (every command
//! refuses a bad one, with the position of the error); scripts are checked when a scheduler
//! takes the schedules ([`check_scripts`]), so `dreamos run` keeps working while a
//! scheduled script is being written.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::def::ScheduleDef;
use super::trigger;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Zone of schedules that name none (IANA name). Default `"UTC"`.
    pub timezone: String,
    /// Runs kept in each schedule's history. Default 100.
    pub history_keep: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            timezone: "UTC".into(),
            history_keep: 100,
        }
    }
}

impl SchedulerConfig {
    pub fn settings(&self) -> super::Settings {
        super::Settings {
            default_tz: self.timezone.clone(),
            history_keep: self.history_keep.max(1),
            lead: true,
        }
    }
}

/// Checks `[scheduler]` and every `[[schedules]]` entry: known zone, valid trigger, unique
/// names. Returns the key and message of the first problem.
pub fn validate(
    config: &SchedulerConfig,
    schedules: &[ScheduleDef],
) -> Result<(), (String, String)> {
    trigger::parse_tz(&config.timezone).map_err(|m| ("scheduler.timezone".to_string(), m))?;
    let mut seen = HashSet::new();
    for (i, def) in schedules.iter().enumerate() {
        let key = format!("schedules[{i}]");
        if !seen.insert(def.name.as_str()) {
            return Err((key, format!("schedule '{}' is defined twice", def.name)));
        }
        def.compile(&config.timezone, 0).map_err(|m| (key, m))?;
    }
    Ok(())
}

/// Refuses configured schedules whose script does not exist.
pub fn check_scripts(config: &crate::config::Config) -> Result<(), String> {
    for def in &config.schedules {
        def.check_script(|p| config.resolve(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("dreamos.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn schedules_load_from_toml() {
        let c = parse(
            "[scheduler]\ntimezone = 'Europe/Berlin'\n\n[[schedules]]\nname = 'a'\ncron = '@daily'\n\
             script = 'a.lua'\n\n[[schedules]]\nname = 'b'\nevery = '15m'\nagent = 'scout'\nmissed = 'skip'\n",
        )
        .unwrap();
        assert_eq!(c.schedules.len(), 2);
        assert_eq!(c.scheduler.timezone, "Europe/Berlin");
        assert_eq!(c.schedules[1].missed, crate::scheduler::MissedPolicy::Skip);
        let e = super::check_scripts(&c).unwrap_err();
        assert!(e.contains("script a.lua does not exist"), "{e}");
        let shipped = parse(include_str!("../../dreamos.toml")).unwrap();
        assert_eq!(shipped.scheduler, super::SchedulerConfig::default());
        assert!(shipped.schedules.is_empty());
    }

    #[test]
    fn bad_schedules_are_refused_at_load() {
        let e = parse("[[schedules]]\nname = 'a'\ncron = '0 9 * * FUNDAY'\nscript = 'a.lua'\n")
            .unwrap_err();
        assert!(
            e.contains("schedules[0]") && e.contains("position 9"),
            "{e}"
        );
        let e = parse("[[schedules]]\nname = 'a'\ncron = '@daily'\ntimezone = 'Europe/Berln'\n")
            .unwrap_err();
        assert!(e.contains("did you mean 'Europe/Berlin'"), "{e}");
        let e = parse(
            "[[schedules]]\nname = 'a'\nevery = '1m'\n[[schedules]]\nname = 'a'\nevery = '1m'\n",
        )
        .unwrap_err();
        assert!(e.contains("defined twice"), "{e}");
        let e = parse("[scheduler]\ntimezone = 'Nowhere'\n").unwrap_err();
        assert!(e.contains("scheduler.timezone"), "{e}");
    }
}
