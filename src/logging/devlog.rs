//! The development log: a diary of what agents and people did, by category, kept apart
//! from the tracing log in `<dir>/devlog.jsonl` under the same rotation and retention.
//!
//! A record has the tracing log's shape, so the same search serves both:
//! `{"ts", "level": "INFO", "target": "dreamos::devlog", "message": <text>,
//!   "category": ..., "script": ...}` (`script` only when given).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::rotate::RotatingFile;

/// The categories a devlog entry may have, in the order error messages list them.
pub const DEVLOG_CATEGORIES: [&str; 5] = [
    "development",
    "research",
    "collaboration",
    "system",
    "tasks",
];

/// Set once by `init` when a log directory is configured.
pub(crate) static DEVLOG_SINK: OnceLock<Arc<RotatingFile>> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum DevlogError {
    /// Misuse: the Lua binding raises this as an error. Messages leave naming the
    /// function to the caller (`log.devlog: unknown category ...`).
    #[error("unknown category '{given}'{hint} (valid: {})", DEVLOG_CATEGORIES.join(", "))]
    UnknownCategory { given: String, hint: String },
    /// A failure of the world (disk full, permissions): the binding returns `nil, err`.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Appends an entry to the development log. Without a configured log directory (or before
/// `init`) the entry goes to the tracing log instead, so it is seen rather than dropped.
pub fn devlog(category: &str, text: &str, script: Option<&str>) -> Result<(), DevlogError> {
    check_category(category)?;
    match DEVLOG_SINK.get() {
        Some(sink) => write_devlog(sink, category, text, script),
        None => {
            tracing::info!(target: "dreamos::devlog", category, script, "{}", text);
            Ok(())
        }
    }
}

fn check_category(category: &str) -> Result<(), DevlogError> {
    if DEVLOG_CATEGORIES.contains(&category) {
        return Ok(());
    }
    let closest = DEVLOG_CATEGORIES
        .iter()
        .map(|c| (strsim::levenshtein(&category.to_lowercase(), c), *c))
        .min();
    let hint = match closest {
        Some((distance, c)) if distance <= 3 => format!(" (did you mean '{c}'?)"),
        _ => String::new(),
    };
    Err(DevlogError::UnknownCategory {
        given: category.to_owned(),
        hint,
    })
}

pub(crate) fn write_devlog(
    sink: &RotatingFile,
    category: &str,
    text: &str,
    script: Option<&str>,
) -> Result<(), DevlogError> {
    check_category(category)?;
    let mut record = Map::new();
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    record.insert("ts".into(), json!(ts));
    record.insert("level".into(), json!("INFO"));
    record.insert("target".into(), json!("dreamos::devlog"));
    record.insert("message".into(), json!(text));
    record.insert("category".into(), json!(category));
    if let Some(script) = script {
        record.insert("script".into(), json!(script));
    }
    let line = Value::Object(record).to_string() + "\n";
    sink.write_line(&line).map_err(|source| DevlogError::Write {
        path: sink.path(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::testdir::TestDir;
    use crate::logging::{search, LogQuery, LogSettings, LogSource, DEVLOG_FILE};

    #[test]
    fn entries_land_in_devlog_jsonl_and_are_searchable() {
        let dir = TestDir::new();
        let sink = RotatingFile::new(dir.path(), DEVLOG_FILE, &LogSettings::default());
        write_devlog(&sink, "research", "read the paper", Some("scout.lua")).expect("write");
        write_devlog(&sink, "tasks", "planned", None).expect("write");
        let query = LogQuery {
            source: LogSource::DevLog,
            category: Some("research".into()),
            ..LogQuery::default()
        };
        let found = search(dir.path(), &query).expect("search");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["message"], "read the paper");
        assert_eq!(found[0]["script"], "scout.lua");
        let all = std::fs::read_to_string(sink.path()).expect("read");
        assert_eq!(all.lines().count(), 2);
        assert!(!all.contains("\"script\":null"));
    }

    #[test]
    fn unknown_categories_are_refused_with_the_valid_list() {
        let err = devlog("reserch", "x", None).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "unknown category 'reserch' (did you mean 'research'?) (valid: \
             development, research, collaboration, system, tasks)"
        );
        let err = devlog("zzzzzzzzzzzzz", "x", None).expect_err("unknown");
        assert!(err
            .to_string()
            .starts_with("unknown category 'zzzzzzzzzzzzz' (valid: "));
    }
}
