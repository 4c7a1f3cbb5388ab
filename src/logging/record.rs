//! One tracing event captured as plain data, then rendered for each sink: a JSON line for
//! the file log, a `key=value` line for the console.
//!
//! Capturing once into [`Record`] keeps the two sinks in agreement about what an event
//! says (which name wins, how the Lua `fields` object is flattened), so a line on the
//! console and the line in the file never disagree.

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level};

/// Keys every JSON record starts with. A user field with one of these names is renamed
/// to `fields.<name>` so it can never overwrite what the record itself says.
const RESERVED: [&str; 5] = ["ts", "level", "target", "message", "script"];

/// An event as data. Fields keep the order the event declared them, with the keys of a
/// flattened `fields` object in sorted order at its place: stable lines are easier to read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub level: Level,
    pub target: String,
    pub message: String,
    /// The script's name when the event came from Lua (`script = %name`).
    pub script: Option<String>,
    /// Every other field, including the keys of a flattened `fields` JSON object.
    pub fields: Vec<(String, Value)>,
}

impl Record {
    pub fn from_event(event: &Event<'_>) -> Record {
        let meta = event.metadata();
        let mut record = Record {
            level: *meta.level(),
            target: meta.target().to_owned(),
            message: String::new(),
            script: None,
            fields: Vec::new(),
        };
        event.record(&mut record);
        record
    }

    /// Stores one field. `message` and `script` have their own slots; `fields` is the
    /// JSON-object string the Lua binding passes and is flattened into the record.
    fn put(&mut self, name: &str, value: Value) {
        match name {
            "message" => self.message = plain_text(value),
            "script" => self.script = Some(plain_text(value)),
            "fields" => match value {
                Value::String(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => {
                        // Sorted, so the line does not depend on Lua's table order (or on
                        // whether serde_json preserves insertion order in this build).
                        let mut pairs: Vec<_> = map.into_iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(&b.0));
                        for (key, value) in pairs {
                            self.put_user(key, value);
                        }
                    }
                    // Not an object: keep what was given rather than drop it.
                    _ => self.put_user("fields".to_owned(), Value::String(text)),
                },
                other => self.put_user("fields".to_owned(), other),
            },
            _ => self.put_user(name.to_owned(), value),
        }
    }

    /// Adds a user field; a later value for the same key replaces the earlier one so the
    /// JSON line never carries a duplicate key.
    fn put_user(&mut self, key: String, value: Value) {
        let key = if RESERVED.contains(&key.as_str()) {
            format!("fields.{key}")
        } else {
            key
        };
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key, value)),
        }
    }

    /// The file-log line, newline included, so the writer can append it in one write.
    pub fn json_line(&self, ts: &str) -> String {
        let mut out = String::with_capacity(96 + self.message.len());
        out.push('{');
        push_pair(&mut out, "ts", &Value::String(ts.to_owned()));
        out.push(',');
        push_pair(&mut out, "level", &Value::String(self.level.to_string()));
        out.push(',');
        push_pair(&mut out, "target", &Value::String(self.target.clone()));
        out.push(',');
        push_pair(&mut out, "message", &Value::String(self.message.clone()));
        if let Some(script) = &self.script {
            out.push(',');
            push_pair(&mut out, "script", &Value::String(script.clone()));
        }
        for (key, value) in &self.fields {
            out.push(',');
            push_pair(&mut out, key, value);
        }
        out.push_str("}\n");
        out
    }

    /// The console line, newline included: `[time] LEVEL script=x message k=v`. A script
    /// event shows its script in place of the target, which is the same for every script.
    pub fn console_line(&self, time: Option<&str>, ansi: bool) -> String {
        let mut out = String::with_capacity(64 + self.message.len());
        if let Some(time) = time {
            paint(&mut out, ansi, "2", time);
            out.push(' ');
        }
        let level = format!("{:>5}", self.level.as_str());
        paint(&mut out, ansi, level_color(self.level), &level);
        out.push(' ');
        match &self.script {
            Some(script) => {
                paint(&mut out, ansi, "2", "script=");
                out.push_str(&console_value(&Value::String(script.clone())));
                out.push(' ');
            }
            None => {
                paint(&mut out, ansi, "2", &format!("{}:", self.target));
                out.push(' ');
            }
        }
        out.push_str(&self.message);
        for (key, value) in &self.fields {
            out.push(' ');
            paint(&mut out, ansi, "2", &format!("{key}="));
            out.push_str(&console_value(value));
        }
        out.push('\n');
        out
    }
}

impl Visit for Record {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON form; keep them readable as text.
        let json = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field.name(), json);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), Value::Bool(value));
    }
    /// `%value` and `?value` fields and the formatted message all arrive here.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field.name(), Value::String(format!("{value:?}")));
    }
}

/// Text of a value that should be a string (message, script) whatever type it came as.
fn plain_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn push_pair(out: &mut String, key: &str, value: &Value) {
    // `Value`'s Display is its compact JSON text and cannot fail.
    let _ = write!(out, "{}:{}", Value::String(key.to_owned()), value);
}

/// Strings print bare when that cannot be misread (no spaces, quotes or `=`), otherwise
/// quoted; other JSON values print as compact JSON.
fn console_value(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=')) =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

fn level_color(level: Level) -> &'static str {
    match level {
        Level::ERROR => "31",
        Level::WARN => "33",
        Level::INFO => "32",
        Level::DEBUG => "34",
        Level::TRACE => "35",
    }
}

fn paint(out: &mut String, ansi: bool, code: &str, text: &str) {
    if ansi {
        let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    /// Captures the records of every event sent while it is the default subscriber.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Record>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(Record::from_event(event));
            }
        }
    }

    fn capture(emit: impl FnOnce()) -> Record {
        let cap = Capture::default();
        let subscriber = tracing_subscriber::registry().with(cap.clone());
        tracing::subscriber::with_default(subscriber, emit);
        let seen = cap.0.lock().expect("capture lock").clone();
        assert_eq!(seen.len(), 1, "expected one event, got {seen:?}");
        seen[0].clone()
    }

    fn lua_event() -> Record {
        // Exactly the call the Lua binding makes.
        let name = "hello.lua";
        let json = r#"{"k":"v","n":3,"level":"mine","nested":{"a":[1,2]}}"#;
        capture(|| {
            tracing::event!(target: "dreamos::script", Level::INFO,
                script = %name, fields = %json, "{}", "hi there")
        })
    }

    #[test]
    fn lua_fields_are_flattened_into_the_json_line() {
        let line = lua_event().json_line("2025-01-02T03:04:05.678Z");
        assert_eq!(
            line,
            concat!(
                r#"{"ts":"2025-01-02T03:04:05.678Z","level":"INFO","target":"dreamos::script","#,
                r#""message":"hi there","script":"hello.lua","k":"v","fields.level":"mine","#,
                r#""n":3,"nested":{"a":[1,2]}}"#,
                "\n"
            )
        );
        let parsed: Value = serde_json::from_str(&line).expect("line is JSON");
        assert_eq!(parsed["n"], 3);
    }

    #[test]
    fn console_line_shows_script_and_fields_readably() {
        let record = lua_event();
        assert_eq!(
            record.console_line(None, false),
            " INFO script=hello.lua hi there k=v fields.level=mine n=3 nested={\"a\":[1,2]}\n"
        );
        let colored = record.console_line(Some("12:00:00.000"), true);
        assert!(colored.starts_with("\x1b[2m12:00:00.000\x1b[0m \x1b[32m INFO\x1b[0m"));
    }

    #[test]
    fn rust_events_keep_their_types_and_target() {
        let record = capture(
            || tracing::warn!(target: "dreamos::bus", attempts = 3u64, ok = false, who = "a b", "redelivering"),
        );
        assert_eq!(record.level, Level::WARN);
        assert_eq!(
            record.console_line(None, false),
            " WARN dreamos::bus: redelivering attempts=3 ok=false who=\"a b\"\n"
        );
        let parsed: Value = serde_json::from_str(&record.json_line("t")).expect("JSON");
        assert_eq!(parsed["attempts"], 3);
        assert_eq!(parsed["ok"], false);
        assert!(parsed.get("script").is_none());
    }

    #[test]
    fn fields_that_are_not_an_object_are_kept_as_text() {
        let record = capture(|| tracing::info!(fields = %"[1,2]", "m"));
        assert_eq!(
            record.fields,
            vec![("fields".to_owned(), Value::String("[1,2]".into()))]
        );
        let record = capture(|| tracing::info!(x = f64::NAN, "m"));
        assert_eq!(record.fields[0].1, Value::String("NaN".into()));
    }
}
