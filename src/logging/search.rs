//! Reading logs back: the query behind `/logs` and `dreamos logs`. It reads the current
//! file, the numbered backups and the `.gz` archives, so a search sees every line the
//! retention settings still keep.
//!
//! Lines that are not JSON objects (a line cut short by a full disk, say) are skipped
//! rather than failing the search. A search racing a rotation may miss the lines of the
//! one file that moved while it was listing; it takes no lock, so it never stalls writers.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use tracing::Level;

use super::archive::{self, LogFileKind};
use super::{DEVLOG_FILE, LOG_FILE};

/// Which log to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogSource {
    /// The tracing log, `dreamos.jsonl`.
    #[default]
    Main,
    /// The development log written by `devlog`, `devlog.jsonl`.
    DevLog,
}

impl LogSource {
    pub fn file_name(self) -> &'static str {
        match self {
            LogSource::Main => LOG_FILE,
            LogSource::DevLog => DEVLOG_FILE,
        }
    }
}

/// A filter over log records; every `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub source: LogSource,
    /// Least severe level wanted: `WARN` keeps warnings and errors.
    pub min_level: Option<Level>,
    /// Substring of the record's `target`.
    pub target: Option<String>,
    /// Substring of the record's `script`; records without a script do not match.
    pub script: Option<String>,
    /// An agent's name: the record's `agent` field equals it, or its `script`'s file stem
    /// does (`log.info` inside `scripts/agents/scout.lua` belongs to agent `scout`).
    pub agent: Option<String>,
    /// Exact devlog category.
    pub category: Option<String>,
    /// Case-insensitive substring of the message or of any user field's value.
    pub text: Option<String>,
    /// Inclusive bounds on `ts`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keep only the newest this many matches.
    pub limit: Option<usize>,
}

/// A file whose modification time (the time of its newest line) is this much older than
/// `since` is skipped unread; the margin covers file systems with coarse timestamps.
const MTIME_SLACK: Duration = Duration::from_secs(60);

/// Returns the matching records, oldest first (by `ts`), at most `limit` of the newest.
pub fn search(dir: &Path, query: &LogQuery) -> anyhow::Result<Vec<Value>> {
    let name = query.source.file_name();
    let files =
        archive::list(dir, name).with_context(|| format!("listing logs in {}", dir.display()))?;
    let needle = query.text.as_ref().map(|t| t.to_lowercase());
    let mut hits: Vec<(Option<DateTime<Utc>>, Value)> = Vec::new();
    for file in files {
        if file.kind == LogFileKind::Temp {
            continue;
        }
        if let Some(since) = query.since {
            if DateTime::<Utc>::from(file.modified + MTIME_SLACK) < since {
                continue;
            }
        }
        let reader: Box<dyn BufRead> = match File::open(&file.path) {
            Ok(f) if file.kind == LogFileKind::Archive => {
                Box::new(BufReader::new(MultiGzDecoder::new(f)))
            }
            Ok(f) => Box::new(BufReader::new(f)),
            // Rotated or swept away since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.path.display())),
        };
        for_each_record(reader, |record| {
            let ts = timestamp(&record);
            if matches(query, needle.as_deref(), &record, ts) {
                hits.push((ts, record));
            }
        });
    }
    // Stable: lines with the same millisecond keep their file order.
    hits.sort_by_key(|(ts, _)| *ts);
    if let Some(limit) = query.limit {
        let excess = hits.len().saturating_sub(limit);
        hits.drain(..excess);
    }
    Ok(hits.into_iter().map(|(_, record)| record).collect())
}

impl LogQuery {
    /// Whether one record passes every filter (the live tail of the dashboard and of
    /// `dreamos log tail --follow` use this; `limit` does not apply).
    pub fn matches(&self, record: &Value) -> bool {
        let needle = self.text.as_ref().map(|t| t.to_lowercase());
        matches(self, needle.as_deref(), record, timestamp(record))
    }
}

/// Calls `each` for every JSON-object line. A damaged tail (a truncated archive) ends the
/// file quietly: what was readable is still returned.
pub(super) fn for_each_record(mut reader: Box<dyn BufRead>, mut each: impl FnMut(Value)) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Ok(record @ Value::Object(_)) = serde_json::from_slice::<Value>(&buf) {
            each(record);
        }
    }
}

fn timestamp(record: &Value) -> Option<DateTime<Utc>> {
    let ts = record.get("ts")?.as_str()?;
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn matches(
    query: &LogQuery,
    needle: Option<&str>,
    record: &Value,
    ts: Option<DateTime<Utc>>,
) -> bool {
    let text = |key: &str| record.get(key).and_then(Value::as_str);
    let contains = |key: &str, want: &Option<String>| match want {
        None => true,
        Some(want) => text(key).is_some_and(|have| have.contains(want.as_str())),
    };
    if let Some(min) = query.min_level {
        // tracing orders levels by verbosity (TRACE greatest), so "at least as severe as
        // `min`" is "not more verbose than `min`".
        match text("level").and_then(|l| Level::from_str(l).ok()) {
            Some(level) if level <= min => {}
            _ => return false,
        }
    }
    if !contains("target", &query.target) || !contains("script", &query.script) {
        return false;
    }
    if let Some(agent) = &query.agent {
        let stem = text("script")
            .and_then(|s| Path::new(s).file_stem())
            .and_then(|s| s.to_str());
        if text("agent") != Some(agent.as_str()) && stem != Some(agent.as_str()) {
            return false;
        }
    }
    if let Some(category) = &query.category {
        if text("category") != Some(category.as_str()) {
            return false;
        }
    }
    if query
        .since
        .is_some_and(|since| ts.is_none_or(|ts| ts < since))
        || query
            .until
            .is_some_and(|until| ts.is_none_or(|ts| ts > until))
    {
        return false;
    }
    match needle {
        None => true,
        Some(needle) => record.as_object().is_some_and(|fields| {
            fields
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "ts" | "level" | "target"))
                .any(|(_, value)| match value {
                    Value::String(s) => s.to_lowercase().contains(needle),
                    other => other.to_string().to_lowercase().contains(needle),
                })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::archive::{archive_file, write_aged};
    use crate::logging::testdir::TestDir;
    use std::time::SystemTime;

    fn line(ts: &str, level: &str, target: &str, message: &str, extra: &str) -> String {
        format!(
            r#"{{"ts":"{ts}","level":"{level}","target":"{target}","message":"{message}"{extra}}}"#
        ) + "\n"
    }

    /// A log spread over an archive, a backup and the current file, plus junk lines.
    fn sample() -> TestDir {
        let dir = TestDir::new();
        let now = SystemTime::now();
        let old = line(
            "2025-01-01T00:00:00.000Z",
            "DEBUG",
            "dreamos::bus",
            "old debug",
            "",
        );
        write_aged(&dir.join("dreamos.jsonl.2"), old.as_bytes(), now).expect("write");
        archive_file(&dir.join("dreamos.jsonl.2"), dir.path(), "dreamos.jsonl").expect("gz");
        let mid = line(
            "2025-01-02T00:00:00.000Z",
            "WARN",
            "dreamos::script",
            "Disk nearly full",
            r#","script":"scout.lua","free_mb":12"#,
        );
        std::fs::write(dir.join("dreamos.jsonl.1"), mid + "not json\n").expect("write");
        let new = line(
            "2025-01-03T00:00:00.000Z",
            "ERROR",
            "dreamos::tasks",
            "lease lost",
            r#","task":"t-7""#,
        );
        let newest = line(
            "2025-01-03T00:00:01.000Z",
            "INFO",
            "dreamos::script",
            "hello",
            r#","script":"hello.lua""#,
        );
        std::fs::write(dir.join("dreamos.jsonl"), format!("{new}{newest}{{\"cut")).expect("write");
        dir
    }

    fn messages(dir: &TestDir, query: LogQuery) -> Vec<String> {
        search(dir.path(), &query)
            .expect("search")
            .iter()
            .map(|r| r["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn reads_archives_backups_and_current_in_time_order() {
        let dir = sample();
        assert_eq!(
            messages(&dir, LogQuery::default()),
            ["old debug", "Disk nearly full", "lease lost", "hello"]
        );
    }

    #[test]
    fn filters_by_level_target_script_and_text() {
        let dir = sample();
        let q = |f: fn(&mut LogQuery)| {
            let mut query = LogQuery::default();
            f(&mut query);
            messages(&dir, query)
        };
        assert_eq!(
            q(|q| q.min_level = Some(Level::WARN)),
            ["Disk nearly full", "lease lost"]
        );
        assert_eq!(q(|q| q.target = Some("tasks".into())), ["lease lost"]);
        assert_eq!(q(|q| q.script = Some("scout".into())), ["Disk nearly full"]);
        assert_eq!(q(|q| q.text = Some("disk".into())), ["Disk nearly full"]);
        assert_eq!(q(|q| q.text = Some("t-7".into())), ["lease lost"]);
        assert_eq!(q(|q| q.text = Some("12".into())), ["Disk nearly full"]);
        assert_eq!(q(|q| q.text = Some("dreamos".into())), Vec::<String>::new());
        assert_eq!(q(|q| q.agent = Some("scout".into())), ["Disk nearly full"]);
        assert_eq!(q(|q| q.agent = Some("scou".into())), Vec::<String>::new());
    }

    #[test]
    fn filters_by_time_and_keeps_the_newest_within_limit() {
        let dir = sample();
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().expect("time"));
        let mut query = LogQuery {
            since: at("2025-01-02T00:00:00Z"),
            ..LogQuery::default()
        };
        query.until = at("2025-01-03T00:00:00Z");
        assert_eq!(messages(&dir, query), ["Disk nearly full", "lease lost"]);
        let query = LogQuery {
            limit: Some(2),
            ..LogQuery::default()
        };
        assert_eq!(messages(&dir, query), ["lease lost", "hello"]);
    }

    #[test]
    fn a_missing_directory_is_an_empty_log() {
        let dir = TestDir::new();
        let query = LogQuery {
            source: LogSource::DevLog,
            ..LogQuery::default()
        };
        assert!(search(&dir.join("absent"), &query)
            .expect("search")
            .is_empty());
    }
}
