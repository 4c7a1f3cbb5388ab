//! Turning parser errors into messages a user can act on: `file:line: key: problem`, with
//! "did you mean" for near misses of known keys.

use std::path::{Path, PathBuf};

/// Everything that can be wrong with a configuration. Each variant's message names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A syntax or type error at a known line.
    #[error("{origin}:{line}: {message}")]
    Parse {
        origin: String,
        line: usize,
        message: String,
    },
    /// A value that parsed but is not allowed.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// Converts a `toml` error into [`ConfigError::Parse`], naming the section and key from the
/// error's span and suggesting the nearest valid key for unknown ones.
pub(super) fn from_toml(err: &toml::de::Error, text: &str, origin: &Path) -> ConfigError {
    let offset = err.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let section = enclosing_section(text, offset);
    let raw = err.message().trim().to_string();
    let message = match unknown_field(&raw) {
        Some((field, expected)) => {
            let place = section_label(&section);
            let mut m = format!("unknown key '{field}'{place}");
            if let Some(best) = did_you_mean(&field, &expected) {
                m.push_str(&format!(" (did you mean '{best}'?)"));
            } else if !expected.is_empty() {
                m.push_str(&format!("; valid keys: {}", expected.join(", ")));
            }
            m
        }
        None => match key_on_line(text, offset) {
            Some(key) => format!("{}{}: {raw}", qualified(&section, &key), ""),
            None => raw,
        },
    };
    ConfigError::Parse {
        origin: origin.display().to_string(),
        line,
        message,
    }
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
pub(super) fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, tail) = rest.split_once('`')?;
    let expected = tail
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    Some((field.to_string(), expected))
}

/// The nearest candidate by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(given: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// The `[section]` header above `offset`, if any.
fn enclosing_section(text: &str, offset: usize) -> Option<String> {
    text[..offset].lines().rev().find_map(|line| {
        let t = line.trim();
        let inner = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
        let inner = inner.or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')));
        inner.map(|s| s.trim().to_string())
    })
}

/// The key assigned on the line containing `offset` (`key = value`).
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

fn section_label(section: &Option<String>) -> String {
    match section {
        Some(s) => format!(" in [{s}]"),
        None => " at the top level".to_string(),
    }
}

fn qualified(section: &Option<String>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    }
}

/// Finds the line of `key = ...` in `[section]` of a configuration file, so that errors
/// found after parsing (a value of the right type that is still wrong) name `file:line`.
pub(crate) struct KeyLines<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl<'a> KeyLines<'a> {
    pub(crate) fn new(text: &'a str, origin: &'a Path) -> KeyLines<'a> {
        KeyLines { text, origin }
    }

    /// The 1-based line assigning `key` in `[section]`, if the file has it.
    pub(crate) fn line_of(&self, section: &str, key: &str) -> Option<usize> {
        let mut current: Option<&str> = None;
        for (i, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if let Some(inner) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                current = Some(inner.trim_start_matches('[').trim());
                continue;
            }
            let assigned = t.split_once('=').map(|(k, _)| k.trim().trim_matches('"'));
            if current == Some(section) && assigned == Some(key) {
                return Some(i + 1);
            }
        }
        None
    }

    /// The 1-based line of the `[section]` header, if the file has it.
    fn header_of(&self, section: &str) -> Option<usize> {
        let header = format!("[{section}]");
        self.text
            .lines()
            .position(|l| l.trim() == header)
            .map(|i| i + 1)
    }

    /// Gives a validation error of a `[social...]` key the line it is on (`file:line: key:
    /// problem`): the key's own line, or its table's header when the key is missing. Other
    /// errors are returned unchanged.
    pub(crate) fn locate(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid {
            origin,
            key,
            message,
        } = err
        else {
            return err;
        };
        let line = key
            .strip_prefix("social.")
            .and_then(|_| key.rsplit_once('.'))
            .and_then(|(table, field)| {
                self.line_of(table, field).or_else(|| self.header_of(table))
            });
        match line {
            Some(line) => ConfigError::Parse {
                origin,
                line,
                message: format!("{key}: {message}"),
            },
            None => ConfigError::Invalid {
                origin,
                key,
                message,
            },
        }
    }

    /// An error about `section.key`: `file:line: section.key: message` when the file sets
    /// it, else `file: section.key: message` (the value came from a default or an
    /// environment override).
    pub(crate) fn error(&self, section: &str, key: &str, message: String) -> ConfigError {
        let origin = self.origin.display().to_string();
        match self.line_of(section, key) {
            Some(line) => ConfigError::Parse {
                origin,
                line,
                message: format!("{section}.{key}: {message}"),
            },
            None => ConfigError::Invalid {
                origin,
                key: format!("{section}.{key}"),
                message,
            },
        }
    }
}
