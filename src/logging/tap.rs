//! A tap on error-level events, for whoever wants to hear about them as they happen (the
//! Discord bot's alerts). Nothing listens by default and then the tap costs one atomic load
//! per error event. The bot's own target (`dreamos::discord`) is not tapped, so a failure to
//! post an alert cannot become an alert about itself.

use std::sync::{Mutex, OnceLock};

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One error-level event.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    pub target: String,
    pub message: String,
    /// The agent or script it came from, when the event says.
    pub source: Option<String>,
}

static LISTENER: OnceLock<Mutex<Option<mpsc::UnboundedSender<ErrorEvent>>>> = OnceLock::new();

/// Starts listening (replacing an earlier listener); events arrive until the receiver drops.
pub fn listen() -> mpsc::UnboundedReceiver<ErrorEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut slot) = LISTENER.get_or_init(|| Mutex::new(None)).lock() {
        *slot = Some(tx);
    }
    rx
}

/// Targets never tapped.
const QUIET: &[&str] = &[
    "dreamos::discord",
    "serenity",
    "tungstenite",
    "hyper",
    "reqwest",
];

#[derive(Default)]
struct Fields {
    message: String,
    source: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "agent" | "script" | "schedule" => self.source = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "agent" | "script" | "schedule" => {
                self.source = Some(text.trim_matches('"').to_string())
            }
            _ => {}
        }
    }
}

pub struct ErrorTap;

impl<S: Subscriber> Layer<S> for ErrorTap {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || QUIET.iter().any(|q| meta.target().starts_with(q)) {
            return;
        }
        let Some(slot) = LISTENER.get() else { return };
        let Ok(mut slot) = slot.lock() else { return };
        let Some(tx) = slot.as_ref() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let sent = tx.send(ErrorEvent {
            target: meta.target().to_string(),
            message: fields.message,
            source: fields.source,
        });
        if sent.is_err() {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn error_events_reach_the_listener_and_others_do_not() {
        let mut rx = listen();
        let subscriber = tracing_subscriber::registry()
            .with(ErrorTap.with_filter(tracing::level_filters::LevelFilter::ERROR));
        tracing::subscriber::with_default(subscriber, || {
            let script = "agents/worker.lua";
            tracing::error!(target: "dreamos::script", script = %script, "{}", "disk full");
            tracing::warn!(target: "dreamos::script", "only a warning");
            tracing::error!(target: "dreamos::discord", "cannot post");
        });
        let got = rx.try_recv().expect("the error event");
        assert_eq!(got.message, "disk full");
        assert_eq!(got.source.as_deref(), Some("agents/worker.lua"));
        assert!(
            rx.try_recv().is_err(),
            "a warning or the bot's own error was tapped"
        );
    }
}
