//! `[llm]`: the OpenAI-compatible server `dreamos.llm` talks to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::errors::KeyLines;
use super::ConfigError;
use crate::units::serde as units;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// API base ending in the version, e.g. `http://127.0.0.1:11434/v1` (Ollama, the
    /// default: a local server needs no account), `https://api.openai.com/v1`.
    pub base_url: String,
    /// The environment variable holding the API key; empty sends no key. The key itself
    /// never lives in the file.
    pub api_key_env: String,
    /// The model of calls that name none; empty means every call must name one.
    pub model: String,
    /// Per-attempt wait for an answer (and for each next piece of a stream).
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Further attempts after a 429, a 503 or a refused connection.
    pub retries: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:11434/v1".into(),
            api_key_env: String::new(),
            model: String::new(),
            timeout: Duration::from_secs(120),
            retries: 2,
        }
    }
}

/// More attempts than this only hide a server that is down.
const MAX_RETRIES: u32 = 10;

impl LlmConfig {
    /// Checks what the types cannot: a URL of an http(s) server, a variable name rather
    /// than a key pasted into the file, a usable timeout.
    pub(crate) fn validate(&self, lines: &KeyLines<'_>) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            lines.error(
                "llm",
                "base_url",
                format!(
                    "'{}' is not a URL ({e}); for example \"http://127.0.0.1:11434/v1\"",
                    self.base_url
                ),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(lines.error(
                "llm",
                "base_url",
                format!(
                    "'{}' is not an http or https URL with a host",
                    self.base_url
                ),
            ));
        }
        let name = &self.api_key_env;
        let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(lines.error(
                "llm",
                "api_key_env",
                "must be the name of an environment variable (letters, digits, '_'), not the \
                 key itself: put the key in the environment, e.g. OPENAI_API_KEY"
                    .into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(lines.error(
                "llm",
                "timeout",
                "must be more than 0, e.g. \"120s\"".into(),
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(lines.error(
                "llm",
                "retries",
                format!("{} is too many (at most {MAX_RETRIES})", self.retries),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::parse_for_test as parse;

    #[test]
    fn defaults_point_at_a_local_ollama() {
        let c = parse("").expect("valid");
        assert_eq!(c.llm.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(c.llm.api_key_env, "");
        assert_eq!(c.llm.model, "");
        assert_eq!(c.llm.timeout, Duration::from_secs(120));
        assert_eq!(c.llm.retries, 2);
        let c = parse("[llm]\nmodel = \"qwen3\"\ntimeout = \"5s\"\nretries = 0\n").expect("valid");
        assert_eq!(c.llm.model, "qwen3");
        assert_eq!(c.llm.timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_the_line_and_key() {
        let e = parse("[llm]\nmodel = \"m\"\nbase_url = \"localhost 11434\"\n").expect_err("bad");
        assert!(
            e.starts_with("dreamos.toml:3: llm.base_url: 'localhost 11434' is not a URL"),
            "{e}"
        );
        let e = parse("[llm]\nbase_url = \"ftp://h/v1\"\n").expect_err("bad");
        assert!(
            e.starts_with("dreamos.toml:2: llm.base_url: 'ftp://h/v1' is not an http or https"),
            "{e}"
        );
        let e = parse("[llm]\napi_key_env = \"sk-abc123\"\n").expect_err("bad");
        assert!(
            e.starts_with("dreamos.toml:2: llm.api_key_env: must be the name of an environment"),
            "{e}"
        );
        let e = parse("[llm]\ntimeout = 0\n").expect_err("bad");
        assert!(
            e.starts_with("dreamos.toml:2: llm.timeout: must be more"),
            "{e}"
        );
        let e = parse("[llm]\nretries = 50\n").expect_err("bad");
        assert!(
            e.starts_with("dreamos.toml:2: llm.retries: 50 is too many"),
            "{e}"
        );
        let e = parse("[llm]\nmodle = \"m\"\n").expect_err("bad");
        assert!(
            e.contains("unknown key 'modle' in [llm] (did you mean 'model'?)"),
            "{e}"
        );
    }
}
