//! Alerts: deduplicated and rate-limited, then queued durably (see [`super::outbox`]).
//!
//! The first alert of a kind (its key: what happened and to whom) goes out at once. Repeats
//! inside `alert_window` are only counted; when the window closes, one more alert says how
//! many there were ("crashed ×12 in 60s"). So a crash loop sends two messages per window,
//! not one per crash. On top, at most `alerts_per_minute` alerts leave per minute; those
//! over the limit are folded into a count carried by the next one that leaves.
//!
//! Pure bookkeeping with the time passed in, so every rule is tested without a clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How bad it is; picks the embed's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
}

impl Level {
    fn color(self) -> u32 {
        match self {
            Level::Error => 0xe74c3c,
            Level::Warn => 0xe67e22,
        }
    }
}

/// Something worth telling operators about.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Same key, same alert: `crashed:worker`, `log:worker:<message>`.
    pub key: String,
    /// The agent it concerns, for routing to its own channel or webhook.
    pub agent: Option<String>,
    pub level: Level,
    pub title: String,
    pub text: String,
}

struct Seen {
    first: Instant,
    alert: Alert,
    /// Occurrences after the first, inside the window.
    repeats: u64,
}

/// Decides which alerts leave, and when.
pub struct Alerter {
    window: Duration,
    per_minute: usize,
    seen: BTreeMap<String, Seen>,
    sent: VecDeque<Instant>,
    /// Alerts dropped by the rate limit since the last one that left.
    folded: u64,
}

/// An alert that leaves now, as the embed to post and the agent to route it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub agent: Option<String>,
    pub embed: Value,
}

impl Alerter {
    pub fn new(window: Duration, per_minute: u32) -> Alerter {
        Alerter {
            window,
            per_minute: per_minute.max(1) as usize,
            seen: BTreeMap::new(),
            sent: VecDeque::new(),
            folded: 0,
        }
    }

    /// An occurrence: the alerts to send now (none, the alert, or — when it comes just
    /// after a window closed with repeats not yet counted out — the count, then the alert).
    pub fn raise(&mut self, alert: Alert, now: Instant) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if let Some(seen) = self.seen.get_mut(&alert.key) {
            if now.saturating_duration_since(seen.first) < self.window {
                seen.repeats += 1;
                return out;
            }
            if seen.repeats > 0 {
                let (previous, count) = (seen.alert.clone(), seen.repeats + 1);
                out.extend(self.leave(&previous, Some(count), now));
            }
        }
        self.seen.insert(
            alert.key.clone(),
            Seen {
                first: now,
                alert: alert.clone(),
                repeats: 0,
            },
        );
        out.extend(self.leave(&alert, None, now));
        out
    }

    /// Closes the windows that ended: one "×N" alert for each key that repeated.
    pub fn tick(&mut self, now: Instant) -> Vec<Outgoing> {
        let window = self.window;
        let ended: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.first) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in ended {
            let Some(seen) = self.seen.remove(&key) else {
                continue;
            };
            if seen.repeats > 0 {
                let count = seen.repeats + 1;
                if let Some(o) = self.leave(&seen.alert, Some(count), now) {
                    out.push(o);
                }
            }
        }
        // Held-back alerts are not forgotten when nothing else comes: once the limit
        // allows, one alert says how many there were.
        if self.folded > 0 && out.is_empty() && self.has_room(now) {
            let held = Alert {
                key: "rate_limit".into(),
                agent: None,
                level: Level::Warn,
                title: "alerts held back".into(),
                text: "Too many alerts in a minute ([discord] alerts_per_minute); see the log for each.".into(),
            };
            out.extend(self.leave(&held, None, now));
        }
        out
    }

    /// Whether the rate limit lets one more alert leave now.
    fn has_room(&mut self, now: Instant) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        self.sent.len() < self.per_minute
    }

    /// Applies the rate limit and builds the embed.
    fn leave(&mut self, alert: &Alert, count: Option<u64>, now: Instant) -> Option<Outgoing> {
        if !self.has_room(now) {
            self.folded += 1;
            return None;
        }
        self.sent.push_back(now);
        let mut title = alert.title.clone();
        if let Some(n) = count {
            title = format!("{title} ×{n} in {}s", self.window.as_secs());
        }
        let mut fields = Vec::new();
        if let Some(agent) = &alert.agent {
            fields.push(json!({"name": "agent", "value": agent, "inline": true}));
        }
        if self.folded > 0 {
            fields.push(json!({
                "name": "rate limit",
                "value": format!("{} more alert(s) were held back", self.folded),
                "inline": true
            }));
            self.folded = 0;
        }
        Some(Outgoing {
            agent: alert.agent.clone(),
            embed: json!({
                "title": title,
                "description": truncate(&alert.text, 3500),
                "color": alert.level.color(),
                "fields": fields,
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
        })
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(agent: &str) -> Alert {
        Alert {
            key: format!("crashed:{agent}"),
            agent: Some(agent.into()),
            level: Level::Error,
            title: format!("agent {agent} crashed"),
            text: "boom".into(),
        }
    }

    #[test]
    fn a_burst_sends_the_first_then_one_count() {
        let mut a = Alerter::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        assert_eq!(a.raise(crash("w"), t0).len(), 1);
        for i in 1..12 {
            assert!(a.raise(crash("w"), t0 + Duration::from_secs(i)).is_empty());
        }
        assert!(a.tick(t0 + Duration::from_secs(59)).is_empty());
        let out = a.tick(t0 + Duration::from_secs(60));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].embed["title"], "agent w crashed ×12 in 60s");
        // The window closed: the next crash is news again.
        assert_eq!(a.raise(crash("w"), t0 + Duration::from_secs(61)).len(), 1);
    }

    #[test]
    fn a_repeat_just_after_the_window_still_gets_its_count_first() {
        let mut a = Alerter::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        a.raise(crash("w"), t0);
        a.raise(crash("w"), t0 + Duration::from_secs(5));
        // No tick ran between the window's end and this crash.
        let out = a.raise(crash("w"), t0 + Duration::from_secs(60));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].embed["title"], "agent w crashed ×2 in 60s");
        assert_eq!(out[1].embed["title"], "agent w crashed");
    }

    #[test]
    fn different_keys_are_separate_and_a_lone_alert_has_no_count() {
        let mut a = Alerter::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        assert_eq!(a.raise(crash("a"), t0).len(), 1);
        assert_eq!(a.raise(crash("b"), t0).len(), 1);
        assert!(a.tick(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn the_rate_limit_folds_the_excess_into_the_next_alert() {
        let mut a = Alerter::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert_eq!(a.raise(crash("a"), t0).len(), 1);
        assert_eq!(a.raise(crash("b"), t0).len(), 1);
        assert!(a.raise(crash("c"), t0).is_empty());
        assert!(a.raise(crash("d"), t0).is_empty());
        let next = a.raise(crash("e"), t0 + Duration::from_secs(60)).remove(0);
        assert_eq!(
            next.embed["fields"][1]["value"],
            "2 more alert(s) were held back"
        );
    }

    #[test]
    fn held_back_alerts_are_reported_when_the_limit_allows() {
        let mut a = Alerter::new(Duration::from_secs(600), 1);
        let t0 = Instant::now();
        assert_eq!(a.raise(crash("a"), t0).len(), 1);
        assert!(a.raise(crash("b"), t0).is_empty());
        assert!(
            a.tick(t0 + Duration::from_secs(30)).is_empty(),
            "still over the limit"
        );
        let out = a.tick(t0 + Duration::from_secs(60));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].embed["title"], "alerts held back");
        assert_eq!(
            out[0].embed["fields"][0]["value"],
            "1 more alert(s) were held back"
        );
        assert!(a.tick(t0 + Duration::from_secs(200)).is_empty());
    }
}
