//! `[discord]` in dreamos.toml. Every value is checked while the file is parsed, so a
//! mistake is reported as `dreamos.toml:LINE: discord...: problem` (the toml parser carries
//! the line of the offending value); nothing is checked later at connect time except the
//! token itself, which lives in the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::serde as units;

/// The built-in slash commands, as `[discord.commands.NAME]` keys spell them.
pub const COMMANDS: &[&str] = &[
    "agents",
    "agent",
    "send",
    "broadcast",
    "captain",
    "tasks",
    "task",
    "logs",
    "status",
    "schedule",
    "run",
];

/// Commands only admins may use unless `[discord.commands.NAME]` lists who may: they start
/// and stop agents, run code, or fire schedules.
pub const ADMIN_BY_DEFAULT: &[&str] = &["agent", "run", "schedule"];

/// A Discord id (user, role, channel, guild). Written as a string or an integer in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Snowflake(pub u64);

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad = |shown: String| {
            serde::de::Error::custom(format!(
                "'{shown}' is not a Discord id (a number like \"123456789012345678\"; \
                 right-click the user, role or channel with developer mode on and copy the id)"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) if n > 0 => Ok(Snowflake(n as u64)),
            Raw::Int(n) => Err(bad(n.to_string())),
            Raw::Text(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Snowflake(n)),
                _ => Err(bad(s)),
            },
        }
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl std::fmt::Display for Snowflake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A built-in command name, checked against [`COMMANDS`] where the file names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CommandName(pub String);

impl<'de> Deserialize<'de> for CommandName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if COMMANDS.contains(&name.as_str()) {
            return Ok(CommandName(name));
        }
        let known: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
        let hint = match crate::config::did_you_mean(&name, &known) {
            Some(best) => format!(" (did you mean '{best}'?)"),
            None => format!("; commands: {}", COMMANDS.join(", ")),
        };
        Err(serde::de::Error::custom(format!(
            "unknown command '{name}' in [discord.commands]{hint}"
        )))
    }
}

/// `[discord]`. Absent: no bot.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// The environment variable holding the bot token (never the token itself).
    pub token_env: String,
    /// Guilds whose slash commands are registered (instantly visible there). Empty, or
    /// `global = true`: registered globally (Discord may take up to an hour to show them).
    pub guilds: Vec<Snowflake>,
    pub global: bool,
    /// Ask for the privileged MESSAGE_CONTENT intent, which `discord.on_message` needs.
    pub message_content: bool,
    /// Who counts as an admin for the admin-only commands.
    pub admins: Rule,
    /// Per-command rules, `[discord.commands.run]`.
    pub commands: BTreeMap<CommandName, Rule>,
    /// The cooldown of every command without its own.
    #[serde(with = "units::duration")]
    pub cooldown: Duration,
    /// The agent `/captain` talks to, and how long it waits for the answer.
    pub captain: String,
    #[serde(with = "units::duration")]
    pub captain_timeout: Duration,
    /// Where per-agent summaries go, and how often. No channel: no summaries.
    pub summary_channel: Option<Snowflake>,
    #[serde(with = "units::duration")]
    pub summary_interval: Duration,
    /// Where alerts go when the agent has no route of its own.
    pub alert_channel: Option<Snowflake>,
    /// Or a webhook, by the environment variable holding its URL (the URL is a secret).
    pub alert_webhook_env: Option<String>,
    /// An alert with the same key inside this window is counted, not sent again.
    #[serde(with = "units::duration")]
    pub alert_window: Duration,
    /// Alerts sent per minute at most; the rest are folded into the next one.
    pub alerts_per_minute: u32,
    /// Per-agent routes, `[discord.agents.NAME]`.
    pub agents: BTreeMap<String, Route>,
    /// The REST base, for a proxy in front of Discord (the gateway address is asked of it).
    /// Unset: https://discord.com.
    pub api_base: Option<String>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            token_env: "DISCORD_TOKEN".into(),
            guilds: Vec::new(),
            global: false,
            message_content: false,
            admins: Rule::default(),
            commands: BTreeMap::new(),
            cooldown: Duration::ZERO,
            captain: "captain".into(),
            captain_timeout: Duration::from_secs(30),
            summary_channel: None,
            summary_interval: Duration::from_secs(300),
            alert_channel: None,
            alert_webhook_env: None,
            alert_window: Duration::from_secs(60),
            alerts_per_minute: 10,
            agents: BTreeMap::new(),
            api_base: None,
        }
    }
}

/// Who may use a command, where, and how often. Empty lists mean "no restriction of that
/// kind"; for admin-only commands an empty rule means "admins only".
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    pub users: Vec<Snowflake>,
    pub roles: Vec<Snowflake>,
    pub channels: Vec<Snowflake>,
    #[serde(
        default,
        with = "units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub cooldown: Option<Duration>,
}

/// `[discord.agents.NAME]`: where this agent's alerts go instead of the global route.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    pub channel: Option<Snowflake>,
    pub webhook_env: Option<String>,
}

impl DiscordConfig {
    /// Checks what serde cannot: values that parse but make no sense together.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.token_env.trim().is_empty() {
            return Err((
                "discord.token_env".into(),
                "must name the environment variable that holds the bot token".into(),
            ));
        }
        if self.summary_interval < Duration::from_secs(1) {
            return Err((
                "discord.summary_interval".into(),
                "must be at least 1s".into(),
            ));
        }
        if self.alerts_per_minute == 0 {
            return Err((
                "discord.alerts_per_minute".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(base) = &self.api_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err((
                    "discord.api_base".into(),
                    format!("'{base}' is not an http(s) URL"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("dreamos.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_section_parses() {
        let c = parse(
            r#"
[discord]
token_env = "BOT_TOKEN"
guilds = ["123456789012345678", 223456789012345678]
summary_channel = "42"
summary_interval = "10m"
alert_webhook_env = "OPS_HOOK"
[discord.admins]
roles = ["77"]
[discord.commands.run]
users = ["5"]
cooldown = "30s"
[discord.agents.worker]
channel = "99"
"#,
        )
        .unwrap();
        let d = c.discord.expect("section");
        assert_eq!(d.guilds.len(), 2);
        assert_eq!(d.summary_interval.as_secs(), 600);
        assert_eq!(d.agents["worker"].channel.map(|s| s.0), Some(99));
        let run = d.commands.iter().find(|(k, _)| k.0 == "run").unwrap().1;
        assert_eq!(run.cooldown.map(|c| c.as_secs()), Some(30));
    }

    #[test]
    fn mistakes_name_the_line_and_the_fix() {
        let bad_id = parse("[discord]\nguilds = [\"my-server\"]\n").unwrap_err();
        assert!(bad_id.starts_with("dreamos.toml:2:"), "{bad_id}");
        assert!(
            bad_id.contains("'my-server' is not a Discord id"),
            "{bad_id}"
        );
        let typo = parse("[discord]\n\n[discord.commands.agnets]\nusers = [\"1\"]\n").unwrap_err();
        assert!(typo.starts_with("dreamos.toml:3:"), "{typo}");
        assert!(
            typo.contains("unknown command 'agnets'") && typo.contains("did you mean 'agents'"),
            "{typo}"
        );
        let key = parse("[discord]\ntoken = \"secret\"\n").unwrap_err();
        assert!(
            key.contains("dreamos.toml:2:") && key.contains("token_env"),
            "{key}"
        );
        let zero = parse("[discord]\nalerts_per_minute = 0\n").unwrap_err();
        assert!(
            zero.contains("discord.alerts_per_minute: must be at least 1"),
            "{zero}"
        );
    }
}
