//! The log filters as people type them — `--level warn --agent scout --text disk --since 1d`
//! on the command line, `?level=warn&agent=scout&text=disk&since=1d` from the dashboard —
//! parsed once, here, into a [`LogQuery`]. One struct serves both (clap and serde), so the
//! CLI and the dashboard cannot drift apart.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tracing::Level;

use super::search::{LogQuery, LogSource};

/// Filters as given; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
pub struct LogFilterArgs {
    /// Least severe level shown: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    #[serde(default)]
    pub level: Option<String>,
    /// Only lines of this agent (its `agent` field, or its script's file name).
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    pub agent: Option<String>,
    /// Case-insensitive text in the message or any field.
    #[arg(long, value_name = "TEXT")]
    #[serde(default)]
    pub text: Option<String>,
    /// Only lines newer than this: a duration back from now (`90m`, `1d`) or an RFC 3339
    /// time.
    #[arg(long, value_name = "WHEN")]
    #[serde(default)]
    pub since: Option<String>,
    /// Read the development log (devlog.jsonl) instead of the main log.
    #[arg(long)]
    #[serde(default)]
    pub devlog: bool,
}

impl LogFilterArgs {
    /// The query, or an error naming the argument that is wrong and what it accepts.
    pub fn query(&self, now: DateTime<Utc>) -> Result<LogQuery, String> {
        let blank = |s: &Option<String>| s.as_ref().filter(|v| !v.trim().is_empty()).cloned();
        let min_level = match blank(&self.level) {
            None => None,
            Some(l) => Some(parse_level(&l)?),
        };
        let since = match blank(&self.since) {
            None => None,
            Some(s) => Some(parse_since(&s, now)?),
        };
        Ok(LogQuery {
            source: if self.devlog {
                LogSource::DevLog
            } else {
                LogSource::Main
            },
            min_level,
            agent: blank(&self.agent),
            text: blank(&self.text),
            since,
            ..LogQuery::default()
        })
    }
}

fn parse_level(word: &str) -> Result<Level, String> {
    match word.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(Level::TRACE),
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" | "warning" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        _ => Err(format!(
            "level: '{word}' is not a level (use trace, debug, info, warn or error)"
        )),
    }
}

/// `1d`, `90m`, `2h30m` back from `now`, or an absolute RFC 3339 time.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let back = crate::units::parse_duration(text.trim()).map_err(|e| {
        format!("since: '{text}' is neither a duration back from now (1d, 90m) nor an RFC 3339 time: {e}")
    })?;
    let back =
        chrono::Duration::from_std(back).map_err(|_| format!("since: '{text}' is too long ago"))?;
    Ok(now - back)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(level: &str, since: &str) -> LogFilterArgs {
        LogFilterArgs {
            level: Some(level.into()),
            since: Some(since.into()),
            ..LogFilterArgs::default()
        }
    }

    #[test]
    fn durations_count_back_from_now_and_times_are_absolute() {
        let now: DateTime<Utc> = "2025-01-10T12:00:00Z".parse().expect("time");
        let q = args("warn", "1d").query(now).expect("query");
        assert_eq!(q.min_level, Some(Level::WARN));
        assert_eq!(q.since, Some("2025-01-09T12:00:00Z".parse().expect("time")));
        let q = args("", "2025-01-01T00:00:00Z").query(now).expect("query");
        assert_eq!(q.min_level, None);
        assert_eq!(q.since, Some("2025-01-01T00:00:00Z".parse().expect("time")));
    }

    #[test]
    fn mistakes_name_the_argument() {
        let now = Utc::now();
        let err = args("loud", "1d").query(now).expect_err("level");
        assert!(err.starts_with("level: 'loud'"), "{err}");
        let err = args("info", "yesterday").query(now).expect_err("since");
        assert!(err.starts_with("since: 'yesterday'"), "{err}");
    }
}
