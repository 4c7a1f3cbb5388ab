//! Logging: `tracing` everywhere, shown to people on stderr and kept as JSON lines on disk.
//!
//! [`init`] installs one global subscriber with two layers, each with its own level filter
//! ([`parse_filter`]): a console layer (stderr, `INFO script=hello.lua msg k=v`) and a file
//! layer writing `<dir>/dreamos.jsonl`. Lua's `log.info("msg", {k = v})` arrives as an
//! event on target `dreamos::script` with a `script` field and a `fields` field holding
//! the user fields as a JSON object string; both layers flatten that object.
//!
//! # Record shape (one JSON object per line)
//!
//! ```json
//! {"ts":"2025-01-02T03:04:05.678Z","level":"INFO","target":"dreamos::script",
//!  "message":"hi","script":"hello.lua","k":"v"}
//! ```
//! - `ts`: RFC 3339, UTC, milliseconds; `level`: `TRACE` `DEBUG` `INFO` `WARN` `ERROR`;
//!   `target`: the tracing target (`dreamos::script` for Lua); `message`: the text.
//! - `script`: present when the event came from a script.
//! - then every other event field in declaration order, with the keys of a `fields` JSON
//!   object flattened in, sorted by key (numbers, booleans, arrays, objects keep their
//!   JSON types). A
//!   user key that collides with one above is written as `fields.<key>`; a `fields` value
//!   that is not a JSON object is kept as the string `fields`.
//!
//! The development log ([`devlog`], `<dir>/devlog.jsonl`) uses the same shape with target
//! `dreamos::devlog` and a `category` field.
//!
//! # Files
//! `rotate.rs` appends each line with one write under a mutex and rotates by size under the
//! same mutex; `archive.rs` names the backups and archives, gzips, and sweeps by age
//! ([`sweep`]); [`search`](fn@search) reads everything back. Nothing touches the disk
//! before the first line is written, so `init` stays cheap for one-shot cron scripts.

mod archive;
mod devlog;
mod filter;
mod follow;
mod layers;
mod query;
mod record;
mod rotate;
mod search;
pub mod tap;
#[cfg(test)]
mod testdir;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use tracing_subscriber::layer::{Layer, SubscriberExt};

pub use archive::SweepReport;
pub use devlog::{devlog, DevlogError, DEVLOG_CATEGORIES};
pub use filter::parse_filter;
pub use follow::Follower;
pub use query::LogFilterArgs;
pub use rotate::RotatingFile;
pub use search::{search, LogQuery, LogSource};

/// The tracing log's file name inside the log directory.
pub const LOG_FILE: &str = "dreamos.jsonl";
/// The development log's file name inside the log directory.
pub const DEVLOG_FILE: &str = "devlog.jsonl";

/// How the console layer writes to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsoleFormat {
    /// Local time, coloured level (on a terminal), target or script, message, fields.
    #[default]
    Pretty,
    /// The same without the time, for output that a supervisor timestamps itself.
    Compact,
    /// Nothing on stderr.
    Off,
}

impl FromStr for ConsoleFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" => Ok(ConsoleFormat::Pretty),
            "compact" => Ok(ConsoleFormat::Compact),
            "off" => Ok(ConsoleFormat::Off),
            _ => Err(format!(
                "invalid console format '{s}': use pretty, compact or off"
            )),
        }
    }
}

/// Everything `init` needs; `config.rs` fills it from `[logging]` in `dreamos.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// Console filter, e.g. `"info"` or `"warn,dreamos=debug"` (see [`parse_filter`]).
    pub level: String,
    /// File filter, same syntax; usually more verbose than the console.
    pub file_level: String,
    /// Log directory; `None` writes no files (devlog entries then go to the console).
    pub dir: Option<PathBuf>,
    /// Rotate before a line would take the current file past this size (0: never).
    pub max_size: u64,
    /// Numbered backups kept uncompressed; one pushed past this is archived.
    pub keep: usize,
    /// Backups older than this (by their newest line) are archived.
    pub archive_after: Duration,
    /// Archives older than this are deleted; the only way a line ever leaves the disk.
    pub delete_after: Duration,
    pub console: ConsoleFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        LogSettings {
            level: "info".into(),
            file_level: "debug".into(),
            dir: Some(PathBuf::from("logs")),
            max_size: 10 * 1024 * 1024,
            keep: 5,
            archive_after: Duration::from_secs(7 * DAY),
            delete_after: Duration::from_secs(30 * DAY),
            console: ConsoleFormat::Pretty,
        }
    }
}

/// Returned by [`init`]; keep it alive for the life of the program. Dropping it flushes.
#[must_use = "dropping the guard at once flushes and forgets the file sinks"]
pub struct LogGuard {
    /// The file sinks, held so a flush on drop reaches them.
    sinks: Vec<Arc<RotatingFile>>,
}

impl LogGuard {
    /// Flushes stderr and the open log files. Lines are written unbuffered, one `write`
    /// each, so once a log call returns its line is the kernel's and survives a kill -9.
    pub fn flush(&self) {
        use std::io::Write;
        let _ = std::io::stderr().flush();
        for sink in &self.sinks {
            sink.flush();
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs the global subscriber. Validates the filters but creates no directory and
/// opens no file: the file log opens on its first line. A second call in the same process
/// returns an error and changes nothing.
pub fn init(settings: &LogSettings) -> anyhow::Result<LogGuard> {
    let console_filter = parse_filter(&settings.level)
        .map_err(|e| anyhow!(e))
        .context("logging.level")?;
    let file_filter = parse_filter(&settings.file_level)
        .map_err(|e| anyhow!(e))
        .context("logging.file_level")?;
    let console = (settings.console != ConsoleFormat::Off).then(|| {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        layers::ConsoleLayer {
            format: settings.console,
            ansi,
        }
        .with_filter(console_filter)
    });
    let sinks = settings.dir.as_ref().map(|dir| {
        (
            Arc::new(RotatingFile::new(dir, LOG_FILE, settings)),
            Arc::new(RotatingFile::new(dir, DEVLOG_FILE, settings)),
        )
    });
    let file = sinks.as_ref().map(|(main, _)| {
        layers::FileLayer {
            sink: Arc::clone(main),
        }
        .with_filter(file_filter)
    });
    let subscriber = tracing_subscriber::registry()
        .with(console)
        .with(file)
        .with(tap::ErrorTap.with_filter(tracing::level_filters::LevelFilter::ERROR));
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| anyhow!("logging is already initialised in this process (init runs once)"))?;
    let mut guard = LogGuard { sinks: Vec::new() };
    if let Some((main, dev)) = sinks {
        // Cannot already be set: only the call that installed the subscriber gets here.
        let _ = devlog::DEVLOG_SINK.set(Arc::clone(&dev));
        guard.sinks = vec![main, dev];
    }
    Ok(guard)
}

/// Archives backups past `keep` or older than `archive_after`, and deletes archives older
/// than `delete_after`, as of `now`, for both the tracing log and the devlog in `dir`.
/// Rotation runs this itself; the daemon may also call it on a timer, and tests pass a
/// `now` in the future instead of sleeping. Safe alongside writers in this process.
pub fn sweep(dir: &Path, settings: &LogSettings, now: SystemTime) -> anyhow::Result<SweepReport> {
    let retention = archive::Retention {
        keep: settings.keep,
        archive_after: settings.archive_after,
        delete_after: settings.delete_after,
    };
    let _lock = archive::dir_lock();
    let mut report = SweepReport::default();
    let mut first_error = None;
    for name in [LOG_FILE, DEVLOG_FILE] {
        if let Err(e) = archive::sweep_log(dir, name, retention, now, &mut report) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => Ok(report),
        Some(e) => Err(e).with_context(|| format!("sweeping logs in {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_configuration() {
        let s = LogSettings::default();
        assert_eq!((s.level.as_str(), s.file_level.as_str()), ("info", "debug"));
        assert_eq!(s.dir.as_deref(), Some(Path::new("logs")));
        assert_eq!((s.max_size, s.keep), (10 * 1024 * 1024, 5));
        assert_eq!(s.archive_after, Duration::from_secs(7 * 86_400));
        assert_eq!(s.delete_after, Duration::from_secs(30 * 86_400));
        assert_eq!(s.console, ConsoleFormat::Pretty);
        assert_eq!("Compact".parse(), Ok(ConsoleFormat::Compact));
        assert!("loud".parse::<ConsoleFormat>().is_err());
    }

    #[test]
    fn sweep_of_a_missing_directory_does_nothing() {
        let dir = testdir::TestDir::new();
        let report = sweep(
            &dir.join("absent"),
            &LogSettings::default(),
            SystemTime::now(),
        );
        assert_eq!(report.expect("sweep"), SweepReport::default());
    }
}
