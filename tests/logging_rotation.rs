//! The file log under load, end to end through the global subscriber: many threads log
//! Lua-shaped events while the file rotates every few kilobytes, and every line must be
//! found exactly once across the current file, the numbered backups and the `.gz`
//! archives — before and after the retention sweep archives the rest.
//!
//! `init` installs a process-wide subscriber, so this file holds one test.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flate2::read::MultiGzDecoder;
use serde_json::Value;
use tracing::Level;

use dreamos::logging::{self, ConsoleFormat, LogQuery, LogSettings, LogSource};

const THREADS: usize = 16;
const LINES: usize = 2_000;
const DAY: Duration = Duration::from_secs(86_400);

/// Every record of the tracing log in `dir`, read from all three kinds of file, and how
/// many of each kind there were.
fn read_all(dir: &Path) -> (Vec<Value>, HashMap<&'static str, usize>) {
    let mut records = Vec::new();
    let mut kinds = HashMap::new();
    for entry in fs::read_dir(dir).expect("read log dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(rest) = name.strip_prefix(logging::LOG_FILE) else {
            continue;
        };
        let kind = match rest {
            "" => "current",
            r if r.ends_with(".gz") => "archive",
            r if r[1..].bytes().all(|b| b.is_ascii_digit()) => "backup",
            other => panic!("unexpected file {name} ({other})"),
        };
        *kinds.entry(kind).or_insert(0) += 1;
        let mut text = String::new();
        let file = File::open(&path).expect("open log file");
        if kind == "archive" {
            MultiGzDecoder::new(file)
                .read_to_string(&mut text)
                .expect("gunzip");
        } else {
            (&file).read_to_string(&mut text).expect("read");
        }
        for line in text.lines() {
            records.push(serde_json::from_str(line).expect("every line is a JSON object"));
        }
    }
    (records, kinds)
}

/// Asserts that worker `t`'s line `i` appears exactly once for every `t`, `i`.
fn assert_each_line_once(records: &[Value]) {
    let mut seen = vec![0u32; THREADS * LINES];
    for record in records {
        let (t, i) = (record["thread"].as_u64(), record["i"].as_u64());
        let (Some(t), Some(i)) = (t, i) else {
            panic!("unexpected record {record}")
        };
        seen[t as usize * LINES + i as usize] += 1;
    }
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 1)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "lines not seen exactly once (index, count): {wrong:?}"
    );
    assert_eq!(records.len(), THREADS * LINES);
}

struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn many_threads_lose_no_line_through_rotation_archival_and_retention() {
    let scratch = ScratchDir(
        std::env::temp_dir().join(format!("dreamos-logging-rotation-{}", std::process::id())),
    );
    let dir = scratch.0.join("logs");
    let settings = LogSettings {
        level: "off".into(),
        file_level: "info".into(),
        dir: Some(dir.clone()),
        max_size: 16 * 1024,
        keep: 3,
        console: ConsoleFormat::Off,
        ..LogSettings::default()
    };
    let guard = logging::init(&settings).expect("init");
    assert!(!dir.exists(), "init must not create the log directory");
    assert!(
        logging::init(&settings).is_err(),
        "a second init is an error, not a panic"
    );

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let name = format!("worker{t}.lua");
                for i in 0..LINES {
                    // Exactly the shape of the event the Lua binding sends.
                    let fields = format!(r#"{{"thread":{t},"i":{i},"note":"line {i} of {t}"}}"#);
                    tracing::event!(target: "dreamos::script", Level::INFO,
                        script = %name, fields = %fields, "{}", format!("t{t}-{i}"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread");
    }
    guard.flush();

    let (records, kinds) = read_all(&dir);
    assert_each_line_once(&records);
    assert_eq!(kinds.get("current"), Some(&1));
    assert_eq!(kinds.get("backup"), Some(&settings.keep), "{kinds:?}");
    assert!(kinds.get("archive").is_some_and(|n| *n > 10), "{kinds:?}");

    let sample = &records[0];
    let ts = sample["ts"].as_str().expect("ts");
    assert!(
        ts.len() == 24 && ts.ends_with('Z'),
        "RFC 3339 UTC with millis: {ts}"
    );
    assert_eq!(sample["level"], "INFO");
    assert_eq!(sample["target"], "dreamos::script");
    assert!(sample["script"]
        .as_str()
        .is_some_and(|s| s.starts_with("worker")));

    let query = LogQuery {
        script: Some("worker3.".into()),
        text: Some("line 17 of 3".into()),
        ..LogQuery::default()
    };
    let found = logging::search(&dir, &query).expect("search");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["message"], "t3-17");

    // Eight days on, every backup is past archive_after: all lines now live in archives.
    let now = SystemTime::now();
    let report = logging::sweep(&dir, &settings, now + 8 * DAY).expect("sweep");
    assert_eq!(report.archived.len(), settings.keep);
    let (records, kinds) = read_all(&dir);
    assert_each_line_once(&records);
    assert_eq!(kinds.get("backup"), None);

    // Past delete_after the archives go; the current file is never touched by a sweep.
    let report = logging::sweep(&dir, &settings, now + 31 * DAY).expect("sweep");
    assert!(!report.deleted.is_empty());
    let (_, kinds) = read_all(&dir);
    assert_eq!(kinds, HashMap::from([("current", 1)]));

    logging::devlog("research", "rotation holds", Some("test.lua")).expect("devlog");
    let devlog = LogQuery {
        source: LogSource::DevLog,
        ..LogQuery::default()
    };
    let entries = logging::search(&dir, &devlog).expect("search devlog");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["category"], "research");
    assert!(logging::devlog("gossip", "x", None).is_err());
}
