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

/// A task as a plain table. Absent values are absent keys (`nil`), not JSON nulls.
pub(super) fn task_table(lua: &Lua, task: &Task) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 24)?;
    t.raw_set("id", task.id)?;
    t.raw_set("key", task.key.as_deref())?;
    t.raw_set("title", task.title.as_str())?;
    t.raw_set("description", task.description.as_deref())?;
    t.raw_set("priority", task.priority.as_str())?;
    t.raw_set("status", task.status.as_str())?;
    t.raw_set("category", task.category.as_deref())?;
    let tags = lua.create_sequence_from(task.tags.iter().map(String::as_str))?;
    t.raw_set("tags", tags)?;
    if let Some(p) = &task.payload {
        t.raw_set("payload", json(lua, p)?)?;
    }
    t.raw_set("assignee", task.assignee.as_deref())?;
    t.raw_set("agent", task.agent.as_deref())?;
    t.raw_set("attempts", task.attempts)?;
    t.raw_set("max_attempts", task.max_attempts)?;
    t.raw_set("progress", task.progress)?;
    t.raw_set("note", task.note.as_deref())?;
    if let Some(r) = &task.result {
        t.raw_set("result", json(lua, r)?)?;
    }
    t.raw_set("error", task.error.as_deref())?;
    t.raw_set("lease_until", task.lease_until.map(seconds))?;
    t.raw_set("deadline", task.deadline.map(seconds))?;
    t.raw_set("created_at", seconds(task.created_at))?;
    t.raw_set("updated_at", seconds(task.updated_at))?;
    if !task.depends_on.is_empty() {
        t.raw_set(
            "depends_on",
            lua.create_sequence_from(task.depends_on.iter().copied())?,
        )?;
    }
    Ok(t)
}
