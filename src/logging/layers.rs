//! The two tracing layers `init` installs: JSON lines to the rotating file, readable
//! lines to stderr. Each renders a [`Record`] and writes it in one call, so lines from
//! different threads never interleave mid-line.

use std::io::{self, Write};
use std::sync::Arc;

use chrono::{Local, SecondsFormat, Utc};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::record::Record;
use super::rotate::RotatingFile;
use super::ConsoleFormat;

/// Writes every event it is given to the file log as one JSON line.
pub(crate) struct FileLayer {
    pub sink: Arc<RotatingFile>,
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        // Failures are reported once by the sink; logging never fails the caller.
        let _ = self
            .sink
            .write_line(&Record::from_event(event).json_line(&ts));
    }
}

/// Writes every event it is given to stderr for people to read.
pub(crate) struct ConsoleLayer {
    /// `Pretty` adds the local time; `Compact` leaves it to whatever captures stderr.
    pub format: ConsoleFormat,
    /// Colours only when stderr is a terminal and `NO_COLOR` is unset, decided once.
    pub ansi: bool,
}

impl<S: Subscriber> Layer<S> for ConsoleLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let time = match self.format {
            ConsoleFormat::Pretty => Some(Local::now().format("%H:%M:%S%.3f").to_string()),
            ConsoleFormat::Compact | ConsoleFormat::Off => None,
        };
        let line = Record::from_event(event).console_line(time.as_deref(), self.ansi);
        // A closed stderr must not turn a log call into a panic.
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}
