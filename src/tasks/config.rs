//! `[tasks]` in dreamos.toml. Every key is optional; the defaults below are what a fresh
//! install runs with. Durations are strings such as `"30s"` or `"5m"` (or seconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// How long a claim holds a task without a heartbeat or progress before it goes back
    /// to `ready` (per claim: `lease = ...`). Default `"1m"`.
    #[serde(with = "crate::units::serde::duration")]
    pub lease: Duration,
    /// Claims a task gets before a failure or a lapsed lease makes it `failed` (per task:
    /// `max_attempts = ...`). Default 3.
    pub max_attempts: u32,
    /// Largest payload or result (serialized JSON) a task may carry. Default `"1MiB"`.
    #[serde(with = "crate::units::serde::bytes")]
    pub max_payload: u64,
    /// Transitions kept in the events table that `task watch` and `task show` read; older
    /// ones are pruned. Tasks themselves are never pruned. Default 100000.
    pub event_retention: u64,
    /// A waiting `claim` also re-checks the database this often, to see tasks that
    /// another process added (this process's own adds wake it at once). Default `"1s"`.
    #[serde(with = "crate::units::serde::duration")]
    pub claim_recheck: Duration,
    /// How often `dreamos task watch` looks for new events written by other processes
    /// where it cannot be woken by the database file changing (inotify, Linux).
    /// Default `"250ms"`.
    #[serde(with = "crate::units::serde::duration")]
    pub watch_interval: Duration,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            lease: Duration::from_secs(60),
            max_attempts: 3,
            max_payload: 1024 * 1024,
            event_retention: 100_000,
            claim_recheck: Duration::from_secs(1),
            watch_interval: Duration::from_millis(250),
        }
    }
}

impl TasksConfig {
    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |key: &str, why: &str| Err(format!("tasks.{key}: {why}"));
        if self.lease < Duration::from_millis(10) {
            return fail("lease", "must be at least 10ms");
        }
        if self.max_attempts == 0 {
            return fail("max_attempts", "must be at least 1");
        }
        if self.max_payload == 0 {
            return fail("max_payload", "must be at least 1 byte");
        }
        if self.event_retention == 0 {
            return fail("event_retention", "must be at least 1");
        }
        if self.claim_recheck < Duration::from_millis(10) {
            return fail("claim_recheck", "must be at least 10ms");
        }
        if self.watch_interval < Duration::from_millis(10) {
            return fail("watch_interval", "must be at least 10ms");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_defaults_and_round_trips() {
        let c: TasksConfig = toml::from_str("").expect("parse");
        assert_eq!(c, TasksConfig::default());
        assert!(c.validate().is_ok());
        let text = toml::to_string(&c).expect("serialize");
        assert!(text.contains("lease = \"1m\""), "{text}");
        assert!(text.contains("max_payload = \"1MiB\""), "{text}");
        assert_eq!(toml::from_str::<TasksConfig>(&text).expect("parse back"), c);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = toml::from_str::<TasksConfig>("leese = \"1m\"").expect_err("unknown key");
        assert!(err.to_string().contains("leese"), "{err}");
        let c: TasksConfig = toml::from_str("lease = \"5ms\"").expect("parse");
        assert_eq!(
            c.validate().unwrap_err(),
            "tasks.lease: must be at least 10ms"
        );
    }
}
