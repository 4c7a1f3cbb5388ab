//! Argument checks shared by every way in (Lua, CLI, plans), so a bad value gets the same
//! message whichever way it came. Messages name the option and say what is accepted.

use std::time::Duration;

use super::error::TaskError;
use super::TaskSpec;

pub const MAX_TITLE: usize = 500;
pub const MAX_TEXT: usize = 64 * 1024;
pub const MAX_NAME: usize = 200;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG: usize = 64;
pub const MAX_DEPENDENCIES: usize = 1000;
pub const MAX_ATTEMPTS: u32 = 1000;

pub fn spec(spec: &TaskSpec) -> Result<(), TaskError> {
    title(&spec.title)?;
    if let Some(d) = &spec.description {
        text("description", d, MAX_TEXT)?;
    }
    if let Some(a) = &spec.assignee {
        name("assignee", a)?;
    }
    if let Some(c) = &spec.category {
        name("category", c)?;
    }
    tags(&spec.tags)?;
    if let Some(n) = spec.max_attempts {
        max_attempts(n)?;
    }
    if let Some(d) = spec.deadline {
        if d.is_zero() {
            return Err(TaskError::invalid(
                "deadline",
                "deadline must be longer than 0s (it is a duration from now, such as \"2h\")",
            ));
        }
    }
    if spec.depends_on.len() > MAX_DEPENDENCIES {
        return Err(TaskError::invalid(
            "depends_on",
            format!("depends_on lists more than {MAX_DEPENDENCIES} tasks"),
        ));
    }
    if let Some(bad) = spec.depends_on.iter().find(|id| **id <= 0) {
        return Err(TaskError::invalid(
            "depends_on",
            format!("depends_on: {bad} is not a task id (ids are positive integers)"),
        ));
    }
    Ok(())
}

pub fn title(title: &str) -> Result<(), TaskError> {
    if title.trim().is_empty() {
        return Err(TaskError::invalid(
            "title",
            "title is required (a non-empty string)",
        ));
    }
    text("title", title, MAX_TITLE)
}

pub fn text(field: &'static str, value: &str, max: usize) -> Result<(), TaskError> {
    if value.len() > max {
        return Err(TaskError::invalid(
            field,
            format!("{field} is {} bytes, over the limit of {max}", value.len()),
        ));
    }
    Ok(())
}

/// Agent, assignee and category names: short, printable, no surrounding spaces.
pub fn name(field: &'static str, value: &str) -> Result<(), TaskError> {
    let bad = value.trim() != value
        || value.is_empty()
        || value.len() > MAX_NAME
        || value.chars().any(char::is_control);
    if bad {
        return Err(TaskError::invalid(
            field,
            format!(
                "{field} '{value}' must be 1 to {MAX_NAME} printable characters without \
                 surrounding spaces"
            ),
        ));
    }
    Ok(())
}

/// Tags: letters, digits and `_ - . : /`, so they can be matched inside stored JSON.
pub fn tags(tags: &[String]) -> Result<(), TaskError> {
    if tags.len() > MAX_TAGS {
        return Err(TaskError::invalid(
            "tags",
            format!("tags: at most {MAX_TAGS} tags"),
        ));
    }
    for tag in tags {
        let ok = !tag.is_empty()
            && tag.len() <= MAX_TAG
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c));
        if !ok {
            return Err(TaskError::invalid(
                "tags",
                format!("tag '{tag}' must be 1 to {MAX_TAG} letters, digits or _ - . : /"),
            ));
        }
    }
    Ok(())
}

pub fn max_attempts(n: u32) -> Result<(), TaskError> {
    if !(1..=MAX_ATTEMPTS).contains(&n) {
        return Err(TaskError::invalid(
            "max_attempts",
            format!("max_attempts must be between 1 and {MAX_ATTEMPTS}, got {n}"),
        ));
    }
    Ok(())
}

pub fn lease(lease: Duration) -> Result<(), TaskError> {
    if lease < Duration::from_millis(10) {
        return Err(TaskError::invalid(
            "lease",
            format!(
                "lease must be at least 10ms, got {} (a lease that has already expired \
                 cannot hold a task)",
                crate::units::format_duration(lease)
            ),
        ));
    }
    if lease > Duration::from_secs(7 * 86_400) {
        return Err(TaskError::invalid(
            "lease",
            "lease must be at most 7d (renew it with heartbeat instead)",
        ));
    }
    Ok(())
}

pub fn progress(pct: f64) -> Result<(), TaskError> {
    if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
        return Err(TaskError::invalid(
            "pct",
            format!("progress must be between 0 and 100, got {pct}"),
        ));
    }
    Ok(())
}

pub fn json_size(field: &'static str, json: &str, limit: u64) -> Result<(), TaskError> {
    if json.len() as u64 > limit {
        return Err(TaskError::invalid(
            field,
            format!(
                "{field} is {} as JSON, over the limit of {} (tasks.max_payload)",
                crate::units::format_bytes(json.len() as u64),
                crate::units::format_bytes(limit)
            ),
        ));
    }
    Ok(())
}
