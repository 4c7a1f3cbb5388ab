//! The checks behind `agent.define{...}`, in Rust: every agent state loads the SDK, so what
//! it holds is paid ten thousand times in a big swarm. The option table, the spelling
//! suggestions and the messages live here once per process; the SDK chunk
//! (`stdlib/dreamos/agent.lua`) keeps only `define` and `is_definition`.

use mlua::{Lua, Table, Value};

use crate::lua::support::type_name;

/// What each option of `define` must be.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Duration,
    Number,
    Table,
    Function,
}

/// Every key `define` accepts.
const KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("description", Kind::Text),
    ("idle_timeout", Kind::Duration),
    ("resume_after", Kind::Duration),
    ("max_resumes", Kind::Number),
    ("resume_cooldown", Kind::Duration),
    ("stall_timeout", Kind::Duration),
    ("restart", Kind::Text),
    ("max_restarts", Kind::Number),
    ("restart_window", Kind::Duration),
    ("tick", Kind::Duration),
    ("tasks", Kind::Table),
    ("state", Kind::Table),
    ("on_start", Kind::Function),
    ("on_message", Kind::Function),
    ("on_task", Kind::Function),
    ("on_tick", Kind::Function),
    ("on_idle", Kind::Function),
    ("on_stop", Kind::Function),
];

/// `check(spec)`: `nil` when `spec` is a valid definition, else the message to raise (the
/// SDK raises it at the script's line).
pub fn check(_lua: &Lua, spec: Value) -> mlua::Result<Option<String>> {
    let Value::Table(spec) = spec else {
        return Ok(Some(format!(
            "agent.define: expected a table of options and handlers, got {}",
            type_name(&spec)
        )));
    };
    for pair in spec.pairs::<Value, Value>() {
        let (key, value) = pair?;
        if let Some(problem) = check_option(&key, &value) {
            return Ok(Some(problem));
        }
    }
    if let Value::String(name) = spec.raw_get::<Value>("name")? {
        let name = name.to_string_lossy();
        let fine = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !fine {
            return Ok(Some(format!(
                "agent.define: name may use letters, digits, '_', '-' and '.' only, got '{name}'"
            )));
        }
    }
    if let Value::String(restart) = spec.raw_get::<Value>("restart")? {
        let restart = restart.to_string_lossy();
        if !matches!(restart.as_str(), "permanent" | "transient" | "temporary") {
            return Ok(Some(format!(
                "agent.define: restart must be permanent, transient or temporary, got '{restart}'"
            )));
        }
    }
    if let Value::Table(tasks) = spec.raw_get::<Value>("tasks")? {
        return check_tasks(&tasks);
    }
    Ok(None)
}

fn check_option(key: &Value, value: &Value) -> Option<String> {
    let name = match key {
        Value::String(s) => s.to_string_lossy(),
        other => other
            .to_string()
            .unwrap_or_else(|_| type_name(other).into()),
    };
    let Some((_, want)) = KEYS.iter().find(|(k, _)| *k == name) else {
        let known: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
        let hint = crate::config::did_you_mean(&name, &known)
            .map(|best| format!(" (did you mean '{best}'?)"))
            .unwrap_or_default();
        return Some(format!("agent.define: unknown option '{name}'{hint}"));
    };
    let got = type_name(value);
    let ok = match want {
        Kind::Text => got == "string",
        Kind::Duration => got == "string" || got == "number",
        Kind::Number => got == "number",
        Kind::Table => got == "table",
        Kind::Function => got == "function",
    };
    if ok {
        return None;
    }
    let want = match want {
        Kind::Text => "string",
        Kind::Duration => "duration (seconds or a string such as \"5m\")",
        Kind::Number => "number",
        Kind::Table => "table",
        Kind::Function => "function",
    };
    Some(format!("agent.define: {name} must be a {want}, got {got}"))
}

fn check_tasks(tasks: &Table) -> mlua::Result<Option<String>> {
    for pair in tasks.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let key = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => type_name(other).to_string(),
        };
        let problem = match (key.as_str(), &value) {
            ("category", Value::String(_)) => None,
            ("category", other) => Some(format!(
                "agent.define: tasks.category must be a string, got {}",
                type_name(other)
            )),
            ("concurrency", Value::Integer(n)) if *n >= 1 => None,
            ("concurrency", Value::Number(n)) if *n >= 1.0 && n.fract() == 0.0 => None,
            ("concurrency", other) => Some(format!(
                "agent.define: tasks.concurrency must be a whole number of at least 1, got {}",
                other.to_string().unwrap_or_else(|_| type_name(other).into())
            )),
            (other, _) => Some(format!(
                "agent.define: unknown tasks option '{other}' (valid options: category, concurrency)"
            )),
        };
        if problem.is_some() {
            return Ok(problem);
        }
    }
    Ok(None)
}
