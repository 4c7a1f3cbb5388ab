//! Lua values to task arguments and tasks back to Lua tables. Every check raises a misuse
//! error that names the function and the option.

use mlua::{Lua, LuaSerdeExt, Table, Value};

use crate::lua::support::{duration, misuse, type_name};
use crate::tasks::{ListFilter, Priority, Status, Task, TaskId, TaskSpec};

/// Milliseconds since the epoch as the seconds `time.now()` uses.
pub(super) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A task id: a positive integer, or a task table (its `id`).
pub(super) fn task_id(lua: &Lua, func: &str, v: &Value) -> mlua::Result<TaskId> {
    let id = match v {
        Value::Integer(n) => Some(*n),
        Value::Number(n) if n.fract() == 0.0 => Some(*n as i64),
        Value::Table(t) => t.get::<Option<i64>>("id").ok().flatten(),
        _ => None,
    };
    match id {
        Some(id) if id > 0 => Ok(id),
        _ => Err(misuse(
            lua,
            format!(
                "{func}: expected a task id (a positive integer) or a task, got {}",
                describe(v)
            ),
        )),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_string(),
    }
}

fn opt_string(lua: &Lua, func: &str, t: &Table, key: &str) -> mlua::Result<Option<String>> {
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_string())),
        other => Err(misuse(
            lua,
            format!("{func}: {key} must be a string, got {}", type_name(&other)),
        )),
    }
}

fn string_list(lua: &Lua, func: &str, t: &Table, key: &str) -> mlua::Result<Vec<String>> {
    match t.get::<Value>(key)? {
        Value::Nil => Ok(Vec::new()),
        Value::Table(list) => {
            let mut out = Vec::new();
            for v in list.sequence_values::<Value>() {
                match v? {
                    Value::String(s) => out.push(s.to_str()?.to_string()),
                    other => {
                        return Err(misuse(
                            lua,
                            format!(
                                "{func}: {key} must be a list of strings, found {}",
                                type_name(&other)
                            ),
                        ))
                    }
                }
            }
            Ok(out)
        }
        other => Err(misuse(
            lua,
            format!(
                "{func}: {key} must be a list of strings, got {}",
                type_name(&other)
            ),
        )),
    }
}

pub(super) fn priority(lua: &Lua, func: &str, t: &Table) -> mlua::Result<Option<Priority>> {
    opt_string(lua, func, t, "priority")?
        .map(|p| {
            p.parse::<Priority>().map_err(|_| {
                misuse(
                    lua,
                    format!(
                        "{func}: unknown priority '{p}' (use one of critical, high, normal, low)"
                    ),
                )
            })
        })
        .transpose()
}

fn status(lua: &Lua, func: &str, t: &Table) -> mlua::Result<Option<Status>> {
    opt_string(lua, func, t, "status")?
        .map(|s| {
            s.parse::<Status>()
                .map_err(|e| misuse(lua, format!("{func}: {e}")))
        })
        .transpose()
}

fn positive_int(lua: &Lua, func: &str, t: &Table, key: &str) -> mlua::Result<Option<u32>> {
    let v = t.get::<Value>(key)?;
    let n = match &v {
        Value::Nil => return Ok(None),
        Value::Integer(n) => Some(*n),
        Value::Number(n) if n.fract() == 0.0 => Some(*n as i64),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            misuse(
                lua,
                format!(
                    "{func}: {key} must be a whole number of at least 0, got {}",
                    describe(&v)
                ),
            )
        })
}

pub(super) fn task_spec(lua: &Lua, func: &str, t: &Table) -> mlua::Result<TaskSpec> {
    let title = match t.get::<Value>("title")? {
        Value::String(s) => s.to_str()?.to_string(),
        Value::Nil => return Err(misuse(lua, format!("{func}: title is required"))),
        other => {
            return Err(misuse(
                lua,
                format!("{func}: title must be a string, got {}", type_name(&other)),
            ))
        }
    };
    let depends_on = match t.get::<Value>("depends_on")? {
        Value::Nil => Vec::new(),
        Value::Table(list) => {
            let mut ids = Vec::new();
            for v in list.sequence_values::<Value>() {
                ids.push(task_id(lua, &format!("{func}: depends_on"), &v?)?);
            }
            ids
        }
        // A single dependency may be given bare.
        single @ (Value::Integer(_) | Value::Number(_)) => vec![task_id(lua, func, &single)?],
        other => {
            return Err(misuse(
                lua,
                format!(
                    "{func}: depends_on must be a list of task ids, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let payload = match t.get::<Value>("payload")? {
        Value::Nil => None,
        v => Some(lua.from_value::<serde_json::Value>(v).map_err(|e| {
            misuse(
                lua,
                format!("{func}: payload cannot be stored as JSON: {e}"),
            )
        })?),
    };
    let deadline = match t.get::<Value>("deadline")? {
        Value::Nil => None,
        v => Some(duration(lua, func, "deadline", &v)?),
    };
    Ok(TaskSpec {
        title,
        description: opt_string(lua, func, t, "description")?,
        priority: priority(lua, func, t)?.unwrap_or_default(),
        depends_on,
        assignee: opt_string(lua, func, t, "assignee")?,
        category: opt_string(lua, func, t, "category")?,
        tags: string_list(lua, func, t, "tags")?,
        payload,
        max_attempts: positive_int(lua, func, t, "max_attempts")?,
        deadline,
    })
}

pub(super) fn list_filter(lua: &Lua, func: &str, t: &Table) -> mlua::Result<ListFilter> {
    Ok(ListFilter {
        status: status(lua, func, t)?,
        assignee: opt_string(lua, func, t, "assignee")?,
        category: opt_string(lua, func, t, "category")?,
        priority: priority(lua, func, t)?,
        limit: positive_int(lua, func, t, "limit")?.unwrap_or(100) as usize,
    })
}

pub(super) fn tags(lua: &Lua, func: &str, t: &Table) -> mlua::Result<Vec<String>> {
    string_list(lua, func, t, "tags")
}

pub(super) fn string_opt(
    lua: &Lua,
    func: &str,
    t: &Table,
    key: &str,
) -> mlua::Result<Option<String>> {
    opt_string(lua, func, t, key)
}

fn json(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value(v)
}

/// Builds a task table from its fields in [`TASK_FIELDS`] order. Building it in Lua, from
/// one call's arguments, costs a fraction of setting two dozen keys one by one from Rust
/// (each of those is a protected call that also creates the key string); claims build one
/// table per task handed out.
const MAKE_TASK: &str = r#"
local id, key, title, description, priority, status, category, tags, payload, assignee,
      agent, attempts, max_attempts, progress, note, result, err, lease_until, deadline,
      created_at, updated_at, depends_on = ...
return {
  id = id, key = key, title = title, description = description, priority = priority,
  status = status, category = category, tags = tags, payload = payload,
  assignee = assignee, agent = agent, attempts = attempts, max_attempts = max_attempts,
  progress = progress, note = note, result = result, error = err,
  lease_until = lease_until, deadline = deadline, created_at = created_at,
  updated_at = updated_at, depends_on = depends_on,
}
"#;
const MAKE_TASK_KEY: &str = "dreamos.tasks.make_task";

fn make_task(lua: &Lua) -> mlua::Result<mlua::Function> {
    if let Ok(f) = lua.named_registry_value::<mlua::Function>(MAKE_TASK_KEY) {
        return Ok(f);
    }
    let f = lua
        .load(MAKE_TASK)
        .set_name("=dreamos.tasks")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()?;
    lua.set_named_registry_value(MAKE_TASK_KEY, f.clone())?;
    Ok(f)
}

/// A task as a plain table. Absent values are absent keys (`nil`), not JSON nulls.
pub(super) fn task_table(lua: &Lua, task: &Task) -> mlua::Result<Table> {
    let text = |s: Option<&str>| -> mlua::Result<Value> {
        s.map_or(Ok(Value::Nil), |s| lua.create_string(s).map(Value::String))
    };
    let number = |n: Option<i64>| n.map_or(Value::Nil, |ms| Value::Number(seconds(ms)));
    let json_or_nil = |v: &Option<serde_json::Value>| -> mlua::Result<Value> {
        v.as_ref().map_or(Ok(Value::Nil), |v| json(lua, v))
    };
    let depends_on = if task.depends_on.is_empty() {
        Value::Nil
    } else {
        Value::Table(lua.create_sequence_from(task.depends_on.iter().copied())?)
    };
    let fields = [
        Value::Integer(task.id),
        text(task.key.as_deref())?,
        text(Some(&task.title))?,
        text(task.description.as_deref())?,
        text(Some(task.priority.as_str()))?,
        text(Some(task.status.as_str()))?,
        text(task.category.as_deref())?,
        Value::Table(lua.create_sequence_from(task.tags.iter().map(String::as_str))?),
        json_or_nil(&task.payload)?,
        text(task.assignee.as_deref())?,
        text(task.agent.as_deref())?,
        Value::Integer(i64::from(task.attempts)),
        Value::Integer(i64::from(task.max_attempts)),
        Value::Number(task.progress),
        text(task.note.as_deref())?,
        json_or_nil(&task.result)?,
        text(task.error.as_deref())?,
        number(task.lease_until),
        number(task.deadline),
        Value::Number(seconds(task.created_at)),
        Value::Number(seconds(task.updated_at)),
        depends_on,
    ];
    make_task(lua)?.call(mlua::MultiValue::from_iter(fields))
}
