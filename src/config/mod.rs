//! `dreamos.toml`: the configuration types, their defaults, validation and environment
//! overrides.
//!
//! Where the file comes from, first match wins: `--config PATH`, `$DREAMOS_CONFIG`,
//! `./dreamos.toml`, else the built-in defaults (which equal the shipped `dreamos.toml`).
//!
//! Every section denies unknown keys, so a typo is an error that names the file, the line,
//! the key and the nearest valid key, rather than a setting silently ignored. After the file
//! is read, `DREAMOS_<SECTION>_<KEY>` environment variables override single values
//! (`DREAMOS_SANDBOX_MEMORY_LIMIT=128MiB`); a bad override names the variable.
//!
//! Secrets never live in this file: keys ending in `_env` name the environment variable that
//! holds the secret, and the value is read only when a client needs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::serde as units;

mod errors;
pub use errors::did_you_mean;
mod daemon;
mod llm;
mod overrides;
mod store;

pub use errors::ConfigError;
pub use llm::LlmConfig;

/// The whole configuration. One field per `[section]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Paths and process-wide settings.
    pub runtime: RuntimeConfig,
    /// `dreamos serve`: the control API's address and the graceful-stop timeout.
    pub daemon: crate::agents::DaemonConfig,
    /// The agents `dreamos serve` supervises, one `[[agents]]` table each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<crate::agents::AgentConfig>,
    /// Limits and grants every script runs under, with per-script overrides.
    pub sandbox: SandboxConfig,
    /// Console and file logging.
    pub log: LogConfig,
    /// The embedded store (SQLite) or a shared one (PostgreSQL).
    pub store: StoreConfig,
    /// Defaults for `dreamos.http`.
    pub http: HttpConfig,
    /// The OpenAI-compatible server behind `dreamos.llm`.
    pub llm: LlmConfig,
    /// The interactive REPL.
    pub repl: ReplConfig,
    /// The message bus: payload limit, retries, visibility timeout, retention, export.
    pub bus: crate::bus::BusConfig,
    /// Tasks: default lease and attempts, payload limit, event log retention, refresh rates.
    pub tasks: crate::tasks::TasksConfig,
    /// Scheduler settings: default time zone, history kept per schedule.
    pub scheduler: crate::scheduler::SchedulerConfig,
    /// `[[schedules]]`: cron, interval and one-shot schedules the daemon runs.
    pub schedules: Vec<crate::scheduler::ScheduleDef>,
    /// Social posting: outbox settings and `[social.accounts.<name>]`.
    pub social: crate::social::SocialConfig,
    /// The Discord bot inside `dreamos serve`; absent means no bot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discord: Option<crate::clients::discord::DiscordConfig>,
    /// Where the configuration was read from; `None` for the built-in defaults. Relative
    /// paths in the file resolve against its directory (see [`Config::resolve`]).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Durable state: the store, kv, exports.
    pub data_dir: PathBuf,
    /// Directories searched by `require` and by `dreamos run NAME` (without `.lua`).
    pub script_paths: Vec<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            script_paths: vec!["scripts".into(), ".".into()],
        }
    }
}

/// Limits and grants. The top-level values apply to every script; `[sandbox.scripts."PATH"]`
/// tables override them for one script (matched by the path as written in the config).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    #[serde(with = "units::bytes")]
    pub memory_limit: u64,
    /// Lua VM instructions a script may run between two suspensions (a sleep, an I/O wait).
    pub instruction_limit: u64,
    /// Wall-clock limit for `dreamos run`; "0" means none.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Capabilities: `fs:<dir>`, `net:<host>`, `net:*`, `exec`, `env:<VAR>`.
    pub allow: Vec<String>,
    pub scripts: BTreeMap<String, ScriptOverride>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            memory_limit: 256 * 1024 * 1024,
            instruction_limit: 1_000_000_000,
            timeout: Duration::ZERO,
            allow: vec!["fs:data/".into()],
            scripts: BTreeMap::new(),
        }
    }
}

/// A per-script override: only the keys present replace the defaults; `allow` adds grants.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptOverride {
    #[serde(with = "units::opt_bytes")]
    pub memory_limit: Option<u64>,
    pub instruction_limit: Option<u64>,
    #[serde(with = "units::opt_duration")]
    pub timeout: Option<Duration>,
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Console filter: a level, or `level,target=level,...`.
    pub level: String,
    /// Filter for the JSON-lines file.
    pub file_level: String,
    /// `pretty`, `compact` or `off`.
    pub console: String,
    /// Directory of the JSON-lines files; empty disables file logging.
    pub dir: PathBuf,
    #[serde(with = "units::bytes")]
    pub max_size: u64,
    pub keep: usize,
    #[serde(with = "units::duration")]
    pub archive_after: Duration,
    #[serde(with = "units::duration")]
    pub delete_after: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            file_level: "info,dreamos=debug".into(),
            console: "pretty".into(),
            dir: "logs".into(),
            max_size: 10 * 1024 * 1024,
            keep: 5,
            archive_after: Duration::from_secs(7 * 86_400),
            delete_after: Duration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (embedded, default) or `postgres`.
    pub backend: String,
    /// SQLite database file; relative to the configuration's directory.
    pub path: PathBuf,
    /// PostgreSQL connection URL without a password (`postgres://dreamos@db/swarm`); a URL
    /// with a password belongs in the variable named by `url_env`. Empty: use `url_env`.
    pub url: String,
    /// Name of the environment variable holding the PostgreSQL URL.
    pub url_env: String,
    /// PostgreSQL schema to keep the tables in (created if missing); empty: the URL's
    /// default search path (normally `public`). Lets several swarms share one database.
    pub schema: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: "sqlite".into(),
            path: "data/dreamos.db".into(),
            url: String::new(),
            url_env: "DREAMOS_DATABASE_URL".into(),
            schema: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    pub user_agent: String,
    /// Largest response body `dreamos.http` reads into memory.
    #[serde(with = "units::bytes")]
    pub max_body: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            user_agent: format!("dreamos/{}", env!("CARGO_PKG_VERSION")),
            max_body: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplConfig {
    /// History file; empty uses `$HOME/.dreamos_history`.
    pub history_file: PathBuf,
    pub history_size: usize,
}

impl Default for ReplConfig {
    fn default() -> Self {
        Self {
            history_file: PathBuf::new(),
            history_size: 1000,
        }
    }
}

/// The effective limits and grants for one script, after per-script overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory_limit: u64,
    pub instruction_limit: u64,
    pub timeout: Duration,
    pub allow: Vec<String>,
}

impl Config {
    /// Finds and loads the configuration: `explicit` (from `--config`), then
    /// `$DREAMOS_CONFIG`, then `./dreamos.toml`, else defaults. Environment overrides apply
    /// in every case.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("DREAMOS_CONFIG").map(PathBuf::from);
        let path = match (explicit, env_path) {
            (Some(p), _) => Some(p.to_path_buf()),
            (None, Some(p)) if !p.as_os_str().is_empty() => Some(p),
            _ => {
                let local = PathBuf::from("dreamos.toml");
                local.is_file().then_some(local)
            }
        };
        let text = match &path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?,
            None => String::new(),
        };
        let origin = path.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let mut config = Config::parse_with_env(&text, &origin, std::env::vars())?;
        config.source = path;
        Ok(config)
    }

    /// Reads one file, without environment overrides; errors name the file and line.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config = Config::parse(&text, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; `origin` is only used in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, origin, std::iter::empty())
    }

    /// Parses configuration text, then applies `DREAMOS_<SECTION>_<KEY>` overrides from
    /// `vars`. File errors are reported first, with their line; override errors name the
    /// variable.
    pub fn parse_with_env(
        text: &str,
        origin: &Path,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| errors::from_toml(&e, text, origin))?;
        let found = overrides::collect(vars);
        let lines = errors::KeyLines::new(text, origin);
        if found.is_empty() {
            config
                .validate(&origin.display().to_string())
                .map_err(|e| lines.locate(e))?;
            config.store.validate(&lines)?;
            config.daemon.validate(&lines)?;
            config.llm.validate(&lines)?;
            return Ok(config);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| errors::from_toml(&e, text, origin))?;
        let current = toml::Value::try_from(&config).ok();
        overrides::apply(&mut table, &found, current.as_ref());
        let config = toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| overrides::error(&e, &found))?;
        config.validate("environment")?;
        config.store.validate(&lines)?;
        config.daemon.validate(&lines)?;
        config.llm.validate(&lines)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        crate::agents::config::validate(&self.agents).map_err(|m| invalid("agents", m))?;
        if !matches!(self.log.console.as_str(), "pretty" | "compact" | "off") {
            return Err(invalid(
                "log.console",
                format!("'{}' is not one of pretty, compact, off", self.log.console),
            ));
        }
        self.bus.validate().map_err(|m| invalid("bus", m))?;
        self.tasks.validate().map_err(|m| invalid("tasks", m))?;
        crate::scheduler::config::validate(&self.scheduler, &self.schedules)
            .map_err(|(key, m)| invalid(&key, m))?;
        self.social
            .validate()
            .map_err(|(key, m)| invalid(&key, m))?;
        if !matches!(self.store.backend.as_str(), "sqlite" | "postgres") {
            return Err(invalid(
                "store.backend",
                format!("'{}' is not one of sqlite, postgres", self.store.backend),
            ));
        }
        if let Some(discord) = &self.discord {
            discord.validate().map_err(|(key, m)| invalid(&key, m))?;
        }
        let grants = self.sandbox.allow.iter().map(|g| ("sandbox.allow", g));
        let script_grants = self
            .sandbox
            .scripts
            .values()
            .flat_map(|o| o.allow.iter().map(|g| ("sandbox.scripts.*.allow", g)));
        for (key, grant) in grants.chain(script_grants) {
            crate::runtime::Grant::parse(grant).map_err(|m| invalid(key, m))?;
        }
        Ok(())
    }

    /// The directory relative paths in the configuration resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match self.source.as_ref().and_then(|p| p.parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path from the configuration against [`Config::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir().join(path)
        }
    }

    /// The limits for `script` (a path as the user gave it), with overrides applied.
    pub fn limits_for(&self, script: Option<&str>) -> Limits {
        let s = &self.sandbox;
        let mut limits = Limits {
            memory_limit: s.memory_limit,
            instruction_limit: s.instruction_limit,
            timeout: s.timeout,
            allow: s.allow.clone(),
        };
        let normalized = script.map(|p| p.trim_start_matches("./"));
        if let Some(o) = normalized.and_then(|p| s.scripts.get(p)) {
            limits.memory_limit = o.memory_limit.unwrap_or(limits.memory_limit);
            limits.instruction_limit = o.instruction_limit.unwrap_or(limits.instruction_limit);
            limits.timeout = o.timeout.unwrap_or(limits.timeout);
            limits.allow.extend(o.allow.iter().cloned());
        }
        limits
    }
}

#[cfg(test)]
mod tests;

/// `text` parsed as `dreamos.toml`, its error as the user would read it (for the section
/// modules' tests).
#[cfg(test)]
pub(crate) fn parse_for_test(text: &str) -> Result<Config, String> {
    Config::parse(text, std::path::Path::new("dreamos.toml")).map_err(|e| e.to_string())
}
