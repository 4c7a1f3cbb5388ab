//! `[bus]` in dreamos.toml. Every key is optional; the defaults below are what a fresh
//! install runs with. Durations are strings such as `"30s"`, `"5m"`, `"7d"` (or a number of
//! seconds); sizes are strings such as `"1MiB"` (or a number of bytes).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// Largest payload (serialized JSON, plus headers) that `send` and `publish` accept.
    /// Default `"1MiB"`.
    #[serde(with = "crate::units::serde::bytes")]
    pub max_payload: u64,
    /// Deliveries a message gets before it goes to the dead-letter queue, unless `send`
    /// says otherwise. Default 5.
    pub max_attempts: u32,
    /// Delay before the first retry of a failed message; it doubles with each attempt
    /// (with jitter: the actual delay is between half and all of it). Default `"1s"`.
    #[serde(with = "crate::units::serde::duration")]
    pub backoff_base: Duration,
    /// Ceiling on that delay. Default `"5m"`.
    #[serde(with = "crate::units::serde::duration")]
    pub backoff_max: Duration,
    /// How long a consumer holds a message before it is given to someone else (the
    /// consumer is presumed dead). Default `"30s"`.
    #[serde(with = "crate::units::serde::duration")]
    pub visibility_timeout: Duration,
    /// Acknowledged (and expired) messages older than this are pruned from history.
    /// Pending and dead-letter messages are never pruned. Default `"7d"`.
    #[serde(with = "crate::units::serde::duration")]
    pub retention_age: Duration,
    /// At most this many acknowledged (and expired) messages are kept. Default 100000.
    pub retention_count: u64,
    /// How often the daemon applies retention. Default `"1m"`.
    #[serde(with = "crate::units::serde::duration")]
    pub retention_interval: Duration,
    /// Where `dreamos bus export` writes, relative to the working directory.
    /// Default `"data/message_history.json"`.
    pub export_path: PathBuf,
    /// Published messages a subscriber may have waiting; past that, newer ones are dropped
    /// for it (publish is best-effort) and counted as lagged. Default 1024.
    pub subscriber_buffer: usize,
    /// Most messages one receive claims ahead for a consumer that keeps up; slow consumers
    /// claim one at a time. Default 256.
    pub max_prefetch: usize,
    /// Records `history` returns when no limit is given. Default 100.
    pub history_limit: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            max_payload: 1024 * 1024,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            visibility_timeout: Duration::from_secs(30),
            retention_age: Duration::from_secs(7 * 86_400),
            retention_count: 100_000,
            retention_interval: Duration::from_secs(60),
            export_path: PathBuf::from("data/message_history.json"),
            subscriber_buffer: 1024,
            max_prefetch: 256,
            history_limit: 100,
        }
    }
}

impl BusConfig {
    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |key: &str, why: &str| Err(format!("bus.{key}: {why}"));
        if self.max_payload == 0 {
            return fail("max_payload", "must be at least 1 byte");
        }
        if self.max_attempts == 0 {
            return fail("max_attempts", "must be at least 1");
        }
        if self.backoff_base > self.backoff_max {
            return fail("backoff_base", "must not be longer than bus.backoff_max");
        }
        if self.visibility_timeout < Duration::from_millis(10) {
            return fail("visibility_timeout", "must be at least 10ms");
        }
        if self.retention_interval.is_zero() {
            return fail("retention_interval", "must be longer than 0s");
        }
        if self.subscriber_buffer == 0 || self.max_prefetch == 0 || self.history_limit == 0 {
            return fail(
                "subscriber_buffer/max_prefetch/history_limit",
                "must be at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_defaults() {
        let c: BusConfig = toml::from_str("").expect("parse");
        assert_eq!(c, BusConfig::default());
        assert!(c.validate().is_ok());
        assert_eq!(c.max_payload, 1_048_576);
    }

    #[test]
    fn durations_and_sizes_as_people_write_them() {
        let c: BusConfig = toml::from_str(
            "max_payload = \"64KiB\"\nvisibility_timeout = \"2m\"\nbackoff_base = 0.5\n\
             retention_age = \"1d\"\nexport_path = \"out/h.json\"",
        )
        .expect("parse");
        assert_eq!(c.max_payload, 64 * 1024);
        assert_eq!(c.visibility_timeout, Duration::from_secs(120));
        assert_eq!(c.backoff_base, Duration::from_millis(500));
        assert_eq!(c.retention_age, Duration::from_secs(86_400));
        assert_eq!(c.export_path, PathBuf::from("out/h.json"));
    }

    #[test]
    fn serializes_back_to_the_same_values_in_the_same_units() {
        let c = BusConfig {
            max_payload: 64 * 1024,
            backoff_base: Duration::from_millis(250),
            visibility_timeout: Duration::from_millis(1500),
            ..BusConfig::default()
        };
        let text = toml::to_string(&c).expect("serialize");
        assert!(text.contains("max_payload = \"64KiB\""), "{text}");
        assert!(text.contains("retention_age = \"7d\""), "{text}");
        assert!(text.contains("backoff_base = \"250ms\""), "{text}");
        assert!(text.contains("visibility_timeout = 1.5"), "{text}");
        assert_eq!(toml::from_str::<BusConfig>(&text).expect("parse back"), c);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = toml::from_str::<BusConfig>("max_attempt = 3").expect_err("unknown key");
        assert!(err.to_string().contains("max_attempt"), "{err}");
        let err = toml::from_str::<BusConfig>("backoff_max = \"soon\"").expect_err("bad duration");
        assert!(err.to_string().contains("\"1h30m\""), "{err}");
        let c = BusConfig {
            max_attempts: 0,
            ..BusConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err(),
            "bus.max_attempts: must be at least 1"
        );
    }
}
