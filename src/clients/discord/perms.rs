//! Who may run which command, where, and how often. Pure bookkeeping (no I/O), so every rule
//! is tested here; the bot turns a refusal into an ephemeral reply and a log line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::config::{DiscordConfig, Rule, Snowflake, ADMIN_BY_DEFAULT};

/// Who invoked a command, and where.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: u64,
    pub roles: Vec<u64>,
    pub channel: u64,
}

/// The rule a command is checked against, and whether an empty rule means admins only.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rule: Rule,
    pub admin_only: bool,
    /// How the rule is named in a refusal: `[discord.commands.run]`, or the Lua command.
    pub source: String,
}

impl Policy {
    /// The policy of a built-in command.
    pub fn builtin(config: &DiscordConfig, command: &str) -> Policy {
        let configured = config
            .commands
            .iter()
            .find(|(name, _)| name.0 == command)
            .map(|(_, rule)| rule.clone());
        Policy {
            admin_only: ADMIN_BY_DEFAULT.contains(&command),
            source: match configured {
                Some(_) => format!("[discord.commands.{command}]"),
                None => "[discord.admins]".into(),
            },
            rule: configured.unwrap_or_default(),
        }
    }
}

/// Checks policies and remembers when each user last ran each command (cooldowns).
#[derive(Debug, Default)]
pub struct Gate {
    admins: Rule,
    default_cooldown: Duration,
    last_run: HashMap<(u64, String), Instant>,
}

fn listed(ids: &[Snowflake], id: u64) -> bool {
    ids.iter().any(|s| s.0 == id)
}

impl Gate {
    pub fn new(config: &DiscordConfig) -> Gate {
        Gate {
            admins: config.admins.clone(),
            default_cooldown: config.cooldown,
            last_run: HashMap::new(),
        }
    }

    /// `Ok` and the run is recorded for the cooldown, or the sentence saying which rule
    /// refused. Channels are checked first (a wrong place is the likelier mistake), then who,
    /// then how soon.
    pub fn check(
        &mut self,
        command: &str,
        policy: &Policy,
        caller: &Caller,
        now: Instant,
    ) -> Result<(), String> {
        let rule = &policy.rule;
        if !rule.channels.is_empty() && !listed(&rule.channels, caller.channel) {
            return Err(format!(
                "/{command} is not allowed in this channel ({}: channels)",
                policy.source
            ));
        }
        let restricts_who = !rule.users.is_empty() || !rule.roles.is_empty();
        let allowed = |r: &Rule| {
            listed(&r.users, caller.user) || caller.roles.iter().any(|role| listed(&r.roles, *role))
        };
        if restricts_who && !allowed(rule) {
            return Err(format!(
                "you may not use /{command} ({}: users/roles)",
                policy.source
            ));
        }
        if !restricts_who && policy.admin_only && !allowed(&self.admins) {
            return Err(format!(
                "/{command} is for admins only ([discord.admins]: users/roles; \
                 or list who may in [discord.commands.{command}])"
            ));
        }
        let cooldown = rule.cooldown.unwrap_or(self.default_cooldown);
        let key = (caller.user, command.to_string());
        if let Some(last) = self.last_run.get(&key) {
            let since = now.saturating_duration_since(*last);
            if since < cooldown {
                let wait = (cooldown - since).as_secs_f64().ceil() as u64;
                return Err(format!(
                    "/{command} is cooling down for you: try again in {wait}s ({}: cooldown)",
                    if rule.cooldown.is_some() {
                        policy.source.as_str()
                    } else {
                        "[discord]"
                    }
                ));
            }
        }
        if !cooldown.is_zero() {
            self.last_run.insert(key, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::discord::config::CommandName;

    fn config() -> DiscordConfig {
        let mut c = DiscordConfig {
            admins: Rule {
                users: vec![Snowflake(1)],
                roles: vec![Snowflake(100)],
                ..Rule::default()
            },
            ..DiscordConfig::default()
        };
        c.commands.insert(
            CommandName("send".into()),
            Rule {
                channels: vec![Snowflake(50)],
                cooldown: Some(Duration::from_secs(10)),
                ..Rule::default()
            },
        );
        c
    }

    fn caller(user: u64, roles: &[u64], channel: u64) -> Caller {
        Caller {
            user,
            roles: roles.to_vec(),
            channel,
        }
    }

    #[test]
    fn lifecycle_commands_are_admin_only_by_default() {
        let c = config();
        let mut gate = Gate::new(&c);
        let now = Instant::now();
        let p = Policy::builtin(&c, "agent");
        let refused = gate
            .check("agent", &p, &caller(2, &[], 50), now)
            .unwrap_err();
        assert!(
            refused.contains("admins only ([discord.admins]"),
            "{refused}"
        );
        assert!(gate.check("agent", &p, &caller(1, &[], 50), now).is_ok());
        assert!(gate.check("agent", &p, &caller(3, &[100], 50), now).is_ok());
        let status = Policy::builtin(&c, "status");
        assert!(gate
            .check("status", &status, &caller(2, &[], 9), now)
            .is_ok());
    }

    #[test]
    fn channel_rule_and_cooldown_name_their_section() {
        let c = config();
        let mut gate = Gate::new(&c);
        let now = Instant::now();
        let p = Policy::builtin(&c, "send");
        let wrong = gate
            .check("send", &p, &caller(2, &[], 49), now)
            .unwrap_err();
        assert_eq!(
            wrong,
            "/send is not allowed in this channel ([discord.commands.send]: channels)"
        );
        assert!(gate.check("send", &p, &caller(2, &[], 50), now).is_ok());
        let soon = gate
            .check(
                "send",
                &p,
                &caller(2, &[], 50),
                now + Duration::from_secs(3),
            )
            .unwrap_err();
        assert!(
            soon.contains("try again in 7s ([discord.commands.send]: cooldown)"),
            "{soon}"
        );
        // Another user has their own cooldown; the first one's ends after 10 s.
        assert!(gate.check("send", &p, &caller(7, &[], 50), now).is_ok());
        let later = now + Duration::from_secs(10);
        assert!(gate.check("send", &p, &caller(2, &[], 50), later).is_ok());
    }

    #[test]
    fn listing_users_opens_an_admin_command_to_them_only() {
        let mut c = config();
        c.commands.insert(
            CommandName("run".into()),
            Rule {
                roles: vec![Snowflake(300)],
                ..Rule::default()
            },
        );
        let mut gate = Gate::new(&c);
        let p = Policy::builtin(&c, "run");
        let now = Instant::now();
        assert!(gate.check("run", &p, &caller(9, &[300], 1), now).is_ok());
        let admin = gate.check("run", &p, &caller(1, &[], 1), now).unwrap_err();
        assert_eq!(
            admin,
            "you may not use /run ([discord.commands.run]: users/roles)"
        );
    }
}
