//! `DREAMOS_<SECTION>_<KEY>` environment overrides.
//!
//! Overrides are written into the parsed TOML table before it is turned into [`Config`], so
//! they pass through exactly the same types and validation as the file. Variables whose
//! section is unknown (`DREAMOS_CONFIG`, `DREAMOS_TEST_...`) are not overrides and are left
//! alone; an unknown key in a known section is an error naming the variable.

use super::{errors, ConfigError};

/// Sections that take overrides. A section name never contains `_`, which is what makes
/// `DREAMOS_<SECTION>_<KEY>` unambiguous.
pub(super) const SECTIONS: &[&str] = &[
    "runtime",
    "sandbox",
    "log",
    "store",
    "http",
    "llm",
    "repl",
    "bus",
    "scheduler",
    "tasks",
    "daemon",
    "social",
];

/// One override found in the environment.
pub(super) struct Override {
    pub var: String,
    pub section: String,
    pub key: String,
    pub raw: String,
}

/// The overrides present in `vars`, sorted by variable name for a stable outcome.
pub(super) fn collect(vars: impl Iterator<Item = (String, String)>) -> Vec<Override> {
    let mut found: Vec<Override> = vars
        .filter_map(|(var, raw)| {
            let lower = var.strip_prefix("DREAMOS_")?.to_ascii_lowercase();
            let section = SECTIONS
                .iter()
                .find(|s| lower.starts_with(&format!("{s}_")))?;
            let key = lower[section.len() + 1..].to_string();
            Some(Override {
                section: section.to_string(),
                key,
                raw,
                var,
            })
        })
        .collect();
    found.sort_by(|a, b| a.var.cmp(&b.var));
    found
}

/// Writes the overrides into `table`. A key whose current value is a string takes the
/// variable as a string (`DREAMOS_HTTP_USER_AGENT=5`); otherwise a value that parses as
/// TOML keeps that type (`5`, `true`, `["a"]`) and anything else is a string (`128MiB`).
pub(super) fn apply(
    table: &mut toml::Table,
    overrides: &[Override],
    current: Option<&toml::Value>,
) {
    for o in overrides {
        let is_string = current
            .and_then(|c| c.get(&o.section))
            .and_then(|s| s.get(&o.key))
            .is_some_and(|v| v.is_str());
        let section = table
            .entry(o.section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(section) = section {
            let parsed = if is_string {
                None
            } else {
                toml::from_str::<toml::Table>(&format!("v = {}", o.raw))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
            };
            let value = parsed.unwrap_or_else(|| toml::Value::String(o.raw.clone()));
            section.insert(o.key.clone(), value);
        }
    }
}

/// Explains a failure to apply overrides in terms of the variables the user set.
pub(super) fn error(err: &toml::de::Error, overrides: &[Override]) -> ConfigError {
    let message = err.message().trim();
    let names: Vec<&str> = overrides.iter().map(|o| o.var.as_str()).collect();
    if let Some((field, expected)) = errors::unknown_field(message) {
        if let Some(o) = overrides.iter().find(|o| o.key == field) {
            let hint = errors::did_you_mean(&field, &expected)
                .map(|k| {
                    format!(
                        " (did you mean DREAMOS_{}_{}?)",
                        o.section.to_uppercase(),
                        k.to_uppercase()
                    )
                })
                .unwrap_or_default();
            return ConfigError::Invalid {
                origin: "environment".into(),
                key: o.var.clone(),
                message: format!("[{}] has no key '{field}'{hint}", o.section),
            };
        }
    }
    ConfigError::Invalid {
        origin: "environment".into(),
        key: names.join(", "),
        message: message.to_string(),
    }
}
