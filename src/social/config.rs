//! `[social]` and `[social.accounts.<name>]` in dreamos.toml.
//!
//! Credentials are named by environment variable (`client_secret_env = "X_CLIENT_SECRET"`)
//! and read only when a client is built ([`AccountConfig::spec`]), so the file never holds a
//! secret and `dreamos config` never prints one. Identifiers that are not secret (a page
//! id, an author URN, a user agent) may also be written directly.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clients::social::{self, AccountSpec, Platform};
use crate::units::serde as units;

/// `[social]`: outbox, retry, metrics and token-warning settings, plus the accounts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocialConfig {
    /// A post whose content (account, text, link, media, title) equals one queued or sent
    /// within this window is refused as a duplicate. Default 24 h; 0 turns the check off.
    #[serde(with = "units::duration")]
    pub dedup_window: Duration,
    /// Engagement metrics are read this long after posting, once per entry.
    #[serde(deserialize_with = "de_durations", serialize_with = "ser_durations")]
    pub metrics_after: Vec<Duration>,
    /// Warn this many days before a token that cannot be refreshed expires.
    pub token_warn_days: u32,
    /// Attempts a post gets for `unavailable`/`network` failures before it is `dead`.
    pub max_attempts: u32,
    /// First retry delay after a failed attempt; doubles per attempt up to `retry_max`.
    #[serde(with = "units::duration")]
    pub retry_base: Duration,
    #[serde(with = "units::duration")]
    pub retry_max: Duration,
    /// How long a process may hold a post in `sending` before another one treats it as
    /// abandoned (the sender crashed) and reconciles it with the platform.
    #[serde(with = "units::duration")]
    pub send_lease: Duration,
    /// How often the daemon's social worker looks for posts queued by other processes.
    #[serde(with = "units::duration")]
    pub poll_interval: Duration,
    /// The accounts, by the name scripts and the CLI use.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, AccountConfig>,
}

impl Default for SocialConfig {
    fn default() -> Self {
        SocialConfig {
            dedup_window: Duration::from_secs(86_400),
            metrics_after: [3_600, 6 * 3_600, 86_400, 7 * 86_400]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            token_warn_days: 7,
            max_attempts: 5,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(30 * 60),
            send_lease: Duration::from_secs(120),
            poll_interval: Duration::from_secs(5),
            accounts: BTreeMap::new(),
        }
    }
}

/// One `[social.accounts.<name>]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AccountConfig {
    pub platform: Platform,
    /// API base URL; default the platform's real one. Tests point it at a fake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Token endpoint base where it differs (Reddit's www.reddit.com, LinkedIn's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// Never send: every post only shows the request it would make.
    #[serde(default)]
    pub dry_run: bool,
    /// Most posts in any 24 hours; 0 = no cap.
    #[serde(default)]
    pub daily_max: u32,
    /// Most posts in any hour; 0 = no cap.
    #[serde(default)]
    pub hourly_max: u32,
    /// Least time between two posts of this account.
    #[serde(default, with = "units::duration")]
    pub min_gap: Duration,
    /// Credentials and identifiers: `<name>_env = "VAR"` or, for identifiers that are not
    /// secret, `<name> = "value"` (see [`CREDENTIALS`]).
    #[serde(flatten)]
    pub credentials: BTreeMap<String, String>,
}

/// Credential keys a client may read, and whether the value is a secret (secrets may only
/// be named by environment variable).
pub const CREDENTIALS: &[(&str, bool)] = &[
    ("client_id", false),
    ("client_secret", true),
    ("username", false),
    ("password", true),
    ("access_token", true),
    ("refresh_token", true),
    ("page_id", false),
    ("user_id", false),
    ("author_urn", false),
    ("user_agent", false),
    ("linkedin_version", false),
    ("app_id", false),
    ("app_secret", true),
    ("expires_at", false),
    ("refresh_expires_at", false),
];

impl AccountConfig {
    /// What a client needs, with every `_env` credential read from `env`. A variable that
    /// is named but unset is an error naming the account, the key and the variable.
    pub fn spec(
        &self,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AccountSpec, String> {
        let mut credentials = BTreeMap::new();
        for (key, value) in &self.credentials {
            match key.strip_suffix("_env") {
                Some(base) => match env(value) {
                    Some(v) if !v.is_empty() => {
                        credentials.insert(base.to_string(), v);
                    }
                    _ => {
                        return Err(format!(
                            "social.accounts.{name}.{key}: environment variable {value} is not set"
                        ))
                    }
                },
                None => {
                    credentials.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(AccountSpec {
            name: name.to_string(),
            platform: self.platform,
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| social::default_base_url(self.platform).to_string()),
            auth_url: self
                .auth_url
                .clone()
                .or_else(|| social::default_auth_url(self.platform).map(String::from)),
            credentials,
        })
    }

    /// Variables this account names that are not set (for `dry run only` notes).
    pub fn missing_env(&self, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
        self.credentials
            .iter()
            .filter(|(k, _)| k.ends_with("_env"))
            .filter(|(_, var)| env(var).is_none_or(|v| v.is_empty()))
            .map(|(_, var)| var.clone())
            .collect()
    }
}

impl SocialConfig {
    /// Checks names, credential keys and settings; returns the key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.metrics_after.iter().any(|d| d.is_zero()) {
            return Err((
                "social.metrics_after".into(),
                "offsets must be greater than 0".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(("social.max_attempts".into(), "must be at least 1".into()));
        }
        if self.send_lease < Duration::from_secs(1) {
            return Err(("social.send_lease".into(), "must be at least 1s".into()));
        }
        if self.poll_interval.is_zero() {
            return Err((
                "social.poll_interval".into(),
                "must be greater than 0".into(),
            ));
        }
        for (name, account) in &self.accounts {
            crate::scheduler::def::validate_name(name)
                .map_err(|m| (format!("social.accounts.{name}"), m))?;
            for key in account.credentials.keys() {
                let base = key.strip_suffix("_env").unwrap_or(key);
                let known: Vec<String> = CREDENTIALS
                    .iter()
                    .flat_map(|(k, _)| [k.to_string(), format!("{k}_env")])
                    .chain(
                        [
                            "platform",
                            "base_url",
                            "auth_url",
                            "dry_run",
                            "daily_max",
                            "hourly_max",
                            "min_gap",
                        ]
                        .map(String::from),
                    )
                    .collect();
                let at = format!("social.accounts.{name}.{key}");
                match CREDENTIALS.iter().find(|(k, _)| *k == base) {
                    None => {
                        let hint = crate::config::did_you_mean(key, &known)
                            .map(|k| format!(" (did you mean '{k}'?)"))
                            .unwrap_or_else(|| format!("; valid keys: {}", known.join(", ")));
                        return Err((at, format!("unknown key '{key}'{hint}")));
                    }
                    Some((_, true)) if !key.ends_with("_env") => {
                        return Err((
                            at,
                            format!(
                                "'{key}' is a secret: name the environment variable that holds \
                                 it with {key}_env = \"VAR\""
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn de_durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "units::de_duration")] Duration);
    let items: Vec<Wrapped> = Vec::deserialize(d)?;
    Ok(items.into_iter().map(|w| w.0).collect())
}

fn ser_durations<S: serde::Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for d in v {
        seq.serialize_element(&crate::units::format_duration(*d))?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("dreamos.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn accounts_read_credentials_from_the_environment() {
        let config = parse(
            "[social.accounts.main]\nplatform = 'x'\nclient_id_env = 'XID'\n\
             access_token_env = 'XTOK'\nuser_agent = 'bot/1'\ndaily_max = 10\nmin_gap = '30m'\n",
        )
        .unwrap();
        let account = &config.social.accounts["main"];
        assert_eq!(account.min_gap, Duration::from_secs(1800));
        let env = |v: &str| (v == "XID").then(|| "id-1".to_string());
        let err = account.spec("main", env).unwrap_err();
        assert_eq!(
            err,
            "social.accounts.main.access_token_env: environment variable XTOK is not set"
        );
        let spec = account
            .spec("main", |v| Some(format!("value-of-{v}")))
            .unwrap();
        assert_eq!(spec.base_url, "https://api.x.com");
        assert_eq!(spec.credentials["client_id"], "value-of-XID");
        assert_eq!(spec.credentials["user_agent"], "bot/1");
    }

    #[test]
    fn mistakes_name_the_key_and_line() {
        let err = parse("[social.accounts.main]\nplatform = 'myspace'\n").unwrap_err();
        assert!(err.starts_with("dreamos.toml:2:"), "{err}");
        assert!(err.contains("myspace"), "{err}");
        let err =
            parse("[social.accounts.main]\nplatform = 'x'\nacess_token_env = 'T'\n").unwrap_err();
        assert!(
            err.starts_with("dreamos.toml:3: social.accounts.main.acess_token_env: unknown key 'acess_token_env' (did you mean 'access_token_env'?)"),
            "{err}"
        );
        let err =
            parse("[social.accounts.main]\nplatform = 'x'\npassword = 'hunter2'\n").unwrap_err();
        assert!(err.contains("is a secret"), "{err}");
        let err = parse("[social]\nmetrics_after = ['1h', 'soon']\n").unwrap_err();
        assert!(err.starts_with("dreamos.toml:2:"), "{err}");
    }

    #[test]
    fn defaults_poll_metrics_at_1h_6h_24h_7d() {
        let config = parse("").unwrap();
        let hours: Vec<u64> = config
            .social
            .metrics_after
            .iter()
            .map(|d| d.as_secs() / 3600)
            .collect();
        assert_eq!(hours, vec![1, 6, 24, 168]);
    }
}
