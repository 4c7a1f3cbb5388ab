//! Channel names, topic names and subscription patterns.
//!
//! A name is one or more parts separated by `.` or `:`; a part is letters, digits, `_` or
//! `-`. Well-known channels: `agent:<name>` (an agent's durable inbox), `captain` (the
//! coordinator's inbox) and `broadcast` (send-only: a copy goes into every known agent
//! inbox). Any other valid name is a plain named queue (`jobs.email`), and replies to
//! requests travel on private `reply:<token>` channels.
//!
//! Patterns (for `subscribe`) are names that may also contain `*` (any run of characters,
//! separators included) and `?` (any one character): `tasks.*`, `agent:*`, `*`.

use super::BusError;

/// Longest channel, topic or pattern accepted.
pub const MAX_NAME_LEN: usize = 200;

pub const BROADCAST: &str = "broadcast";
pub const CAPTAIN: &str = "captain";
const AGENT_PREFIX: &str = "agent:";

const FORMS: &str = "use agent:<name>, captain, broadcast, or parts of letters, digits, '_' \
    and '-' separated by '.' or ':'";

/// Checks a name a message can be sent to (`broadcast` included).
pub fn validate_send_target(name: &str) -> Result<(), BusError> {
    validate_name(name, false).map_err(|reason| BusError::InvalidChannel {
        name: name.to_string(),
        reason,
    })
}

/// Checks a channel a consumer can receive from (everything but `broadcast`).
pub fn validate_recv_channel(name: &str) -> Result<(), BusError> {
    validate_send_target(name)?;
    if name == BROADCAST {
        return Err(BusError::InvalidChannel {
            name: name.into(),
            reason: "broadcast is send-only: each agent receives broadcasts in its own inbox \
                     agent:<name>"
                .into(),
        });
    }
    Ok(())
}

/// Checks a publish topic (same form as a channel name).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    validate_name(topic, false).map_err(|reason| BusError::InvalidChannel {
        name: topic.to_string(),
        reason,
    })
}

/// The agent name of an `agent:<name>` inbox.
pub fn agent_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(AGENT_PREFIX)
}

fn validate_name(name: &str, wildcards: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a name cannot be empty; {FORMS}"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{} characters is longer than the limit of {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|&c| {
        !(c.is_ascii_alphanumeric() || "_-.:".contains(c) || (wildcards && "*?".contains(c)))
    }) {
        return Err(format!(
            "'{}' is not allowed; {FORMS}",
            bad.escape_default()
        ));
    }
    if name.split(['.', ':']).any(str::is_empty) {
        return Err(format!(
            "it has an empty part (a leading, trailing or doubled '.' or ':'); {FORMS}"
        ));
    }
    if let Some(agent) = agent_of(name) {
        if !wildcards && agent.contains(['.', ':']) {
            return Err(
                "an agent inbox is agent:<name> with a plain name, e.g. agent:scout".into(),
            );
        }
    }
    Ok(())
}

/// A compiled subscription pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    /// No wildcard: a plain string comparison, the common case on the publish hot path.
    literal: bool,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, BusError> {
        validate_name(text, true).map_err(|reason| BusError::InvalidPattern {
            pattern: text.to_string(),
            reason,
        })?;
        Ok(Pattern {
            text: text.to_string(),
            literal: !text.contains(['*', '?']),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, topic: &str) -> bool {
        if self.literal {
            return self.text == topic;
        }
        glob(self.text.as_bytes(), topic.as_bytes())
    }
}

/// Wildcard match without recursion: on a mismatch, go back to the last `*` and let it
/// swallow one more character. Linear in practice, never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_and_named_channels_are_accepted() {
        for ok in [
            "agent:scout",
            "captain",
            "broadcast",
            "jobs.email",
            "reply:ab12-3",
            "a_b",
        ] {
            validate_send_target(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn malformed_channels_say_what_is_wrong() {
        let reason = |name: &str| match validate_send_target(name) {
            Err(BusError::InvalidChannel { reason, .. }) => reason,
            other => panic!("{name}: {other:?}"),
        };
        assert!(reason("").contains("cannot be empty"));
        assert!(reason("agent:").contains("empty part"));
        assert!(reason("a..b").contains("empty part"));
        assert!(reason("agent:my bot").contains("' ' is not allowed"));
        assert!(reason("agent:a.b").contains("agent:<name>"));
        assert!(reason(&"x".repeat(201)).contains("limit of 200"));
        let err = validate_recv_channel("broadcast").unwrap_err().to_string();
        assert!(err.contains("send-only"), "{err}");
    }

    #[test]
    fn patterns_match_like_globs() {
        let m = |p: &str, t: &str| Pattern::new(p).expect("pattern").matches(t);
        assert!(m("tasks.*", "tasks.events"));
        assert!(m("tasks.*", "tasks.events.more"));
        assert!(!m("tasks.*", "tasks"));
        assert!(!m("tasks.*", "task.events"));
        assert!(m("agent:*", "agent:scout"));
        assert!(!m("agent:*", "captain"));
        assert!(m("*", "anything.at:all"));
        assert!(m("agent:?cout", "agent:scout"));
        assert!(m("*.events", "tasks.events"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("captain", "captain"));
        assert!(!m("captain", "captains"));
        assert!(Pattern::new("tasks.**").is_ok());
        assert!(matches!(
            Pattern::new("tasks events"),
            Err(BusError::InvalidPattern { .. })
        ));
    }
}
