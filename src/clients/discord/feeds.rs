//! What the bot watches on its own: the sources of alerts (error-level log events, agent
//! crashes and failures on `agents.events`, dead letters, failed schedules on
//! `schedules.events`, expiring social tokens on `social.events`) and the periodic
//! per-agent summary. Everything it posts goes through the durable outbox.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::alerts::{Alert, Alerter, Level, Outgoing};
use super::bot::{Bot, LOG};
use super::builtins::human;
use super::outbox::{self, Target};
use crate::store::{SharedStore, Store};

/// How often repeats are counted out and dead letters are looked for.
const TICK: Duration = Duration::from_secs(1);
const DEAD_LETTER_CHECK: Duration = Duration::from_secs(5);
/// Errors logged here are already alerts through `schedules.events`.
const SCHEDULER_TARGET: &str = "dreamos::scheduler";
/// Discord's limit of embeds in one message.
const EMBEDS_PER_MESSAGE: usize = 10;

/// The bus topic the social outbox announces `token_expiring` on (`crate::social::TOPIC`).
pub const SOCIAL_TOPIC: &str = "social.events";

/// Where an agent's alerts go: its own route, else the global one.
pub fn route(bot: &Bot, agent: Option<&str>) -> Option<Target> {
    let c = &bot.config;
    if let Some(r) = agent.and_then(|a| c.agents.get(a)) {
        if let Some(ch) = r.channel {
            return Some(Target::Channel(ch.0));
        }
        if let Some(var) = &r.webhook_env {
            return Some(Target::WebhookEnv(var.clone()));
        }
    }
    if let Some(ch) = c.alert_channel {
        return Some(Target::Channel(ch.0));
    }
    c.alert_webhook_env.clone().map(Target::WebhookEnv)
}

async fn emit(bot: &Bot, store: &dyn Store, out: Outgoing) {
    let Some(target) = route(bot, out.agent.as_deref()) else {
        return;
    };
    let body = json!({"embeds": [out.embed]});
    outbox::push(bot, store, &target, &body).await;
}

/// The alert an event on the bus means, if any.
pub fn alert_for(topic: &str, payload: &Value) -> Option<Alert> {
    let s = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match (topic, s("event").as_str()) {
        ("agents.events", "transition") if matches!(s("to").as_str(), "crashed" | "failed") => {
            let (agent, to) = (s("agent"), s("to"));
            Some(Alert {
                key: format!("{to}:{agent}"),
                agent: Some(agent.clone()),
                level: Level::Error,
                title: format!("agent {agent} {to}"),
                text: s("reason"),
            })
        }
        ("schedules.events", "failed") => {
            let name = s("schedule");
            Some(Alert {
                key: format!("schedule:{name}"),
                agent: None,
                level: Level::Error,
                title: format!("schedule {name} failed"),
                text: format!(
                    "{} ({} failure(s) in a row)",
                    s("error"),
                    payload.get("failures").and_then(Value::as_u64).unwrap_or(1)
                ),
            })
        }
        (SOCIAL_TOPIC, "token_expiring") => {
            let account = s("account");
            Some(Alert {
                key: format!("token:{account}"),
                agent: None,
                level: Level::Warn,
                title: format!("social token of '{account}' expires soon"),
                text: format!(
                    "{} account '{account}': {} day(s) left; renew it",
                    s("platform"),
                    payload
                        .get("days_left")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                ),
            })
        }
        _ => None,
    }
}

/// Runs every alert source and the summaries until the bot goes away.
pub async fn run(bot: Rc<Bot>, store: SharedStore) {
    let alerter = Rc::new(RefCell::new(Alerter::new(
        bot.config.alert_window,
        bot.config.alerts_per_minute,
    )));
    let raise = {
        let (bot, store, alerter) = (bot.clone(), store.clone(), alerter.clone());
        move |alert: Alert| {
            let out = alerter.borrow_mut().raise(alert, Instant::now());
            let (bot, store) = (bot.clone(), store.clone());
            async move {
                for o in out {
                    emit(&bot, &*store, o).await;
                }
            }
        }
    };
    let mut errors = crate::logging::tap::listen();
    let mut events = Vec::new();
    for topic in ["agents.events", "schedules.events", SOCIAL_TOPIC] {
        match bot.rt.bus.subscribe(topic) {
            Ok(sub) => events.push(sub),
            Err(e) => tracing::error!(target: LOG, "cannot watch {topic}: {e}"),
        }
    }
    let (tx, mut bus_events) = tokio::sync::mpsc::unbounded_channel();
    for mut sub in events {
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            while let Some(p) = sub.recv().await {
                if tx.send(p).is_err() {
                    return;
                }
            }
        });
    }
    tokio::task::spawn_local(summaries(bot.clone(), store.clone()));
    let mut tick = tokio::time::interval(TICK);
    let mut dead_check = tokio::time::interval(DEAD_LETTER_CHECK);
    let mut dead_seen: Option<u64> = None;
    loop {
        tokio::select! {
            Some(e) = errors.recv() => {
                // A failed schedule logs an error and publishes `failed`; alert once.
                if e.target.starts_with(SCHEDULER_TARGET) {
                    continue;
                }
                let source = e.source.clone();
                raise(Alert {
                    key: format!("log:{}:{}", source.as_deref().unwrap_or(&e.target), e.message),
                    agent: source.clone(),
                    level: Level::Error,
                    title: match &source {
                        Some(s) => format!("error in {s}"),
                        None => format!("error ({})", e.target),
                    },
                    text: e.message,
                }).await;
            }
            Some(p) = bus_events.recv() => {
                if let Some(alert) = alert_for(&p.topic, &p.payload) {
                    raise(alert).await;
                }
            }
            _ = tick.tick() => {
                let due = alerter.borrow_mut().tick(Instant::now());
                for out in due {
                    emit(&bot, &*store, out).await;
                }
            }
            _ = dead_check.tick() => {
                let Ok(stats) = bot.rt.bus.stats().await else { continue };
                let before = dead_seen.replace(stats.dead);
                if let Some(before) = before.filter(|b| stats.dead > *b) {
                    let newest = bot.rt.bus.dead_letters(5).await.unwrap_or_default();
                    let lines: Vec<String> = newest.iter().map(|r| format!("{} → {}", r.from, r.to)).collect();
                    raise(Alert {
                        key: "dead_letters".into(),
                        agent: None,
                        level: Level::Error,
                        title: format!("{} message(s) dead-lettered", stats.dead - before),
                        text: format!("{} dead letters in all (`dreamos bus dead`)\n{}", stats.dead, lines.join("\n")),
                    }).await;
                }
            }
            else => return,
        }
    }
}

/// Every `summary_interval`: one embed per agent (state, messages handled, tasks done,
/// errors) to `summary_channel`, with what changed since the last summary.
async fn summaries(bot: Rc<Bot>, store: SharedStore) {
    let Some(channel) = bot.config.summary_channel else {
        return;
    };
    let interval = bot.config.summary_interval;
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        timer.tick().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        if bot
            .rt
            .requests
            .send(crate::server::control::Request::List(tx))
            .is_err()
        {
            return;
        }
        let Ok(rows) = rx.await else { return };
        let done: BTreeMap<String, u64> = bot
            .rt
            .tasks
            .summary_by_agent()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let n = s
                    .counts
                    .iter()
                    .filter(|(st, _)| st.to_string() == "done")
                    .map(|(_, n)| *n)
                    .sum();
                (s.agent, n)
            })
            .collect();
        let now = chrono::Utc::now().timestamp_millis();
        let mut embeds = Vec::new();
        for row in &rows {
            let s = &row.status;
            let (h0, e0) = last.get(&s.name).copied().unwrap_or((0, 0));
            let errors = s.errors.saturating_sub(e0);
            embeds.push(json!({
                "title": format!("{} — {}", s.name, s.state),
                "color": if errors > 0 { 0xe67e22 } else { 0x2ecc71 },
                "fields": [
                    {"name": "messages handled", "value": format!("{} (+{})", s.handled, s.handled.saturating_sub(h0)), "inline": true},
                    {"name": "tasks done", "value": done.get(&s.name).copied().unwrap_or(0).to_string(), "inline": true},
                    {"name": "errors", "value": format!("{} (+{errors})", s.errors), "inline": true},
                    {"name": "uptime", "value": s.started_at.map(|t| human(now - t)).unwrap_or_else(|| "-".into()), "inline": true},
                ]
            }));
            last.insert(s.name.clone(), (s.handled, s.errors));
        }
        if embeds.is_empty() {
            let body = json!({"content": "Summary: no agents are configured."});
            outbox::push(&bot, &*store, &Target::Channel(channel.0), &body).await;
            continue;
        }
        // Discord takes at most 10 embeds per message.
        let pages = embeds.len().div_ceil(EMBEDS_PER_MESSAGE);
        for (i, page) in embeds.chunks(EMBEDS_PER_MESSAGE).enumerate() {
            let content = match pages {
                1 => format!("Summary ({} agent(s))", rows.len()),
                _ => format!("Summary ({} agent(s)), {}/{pages}", rows.len(), i + 1),
            };
            let body = json!({"content": content, "embeds": page});
            outbox::push(&bot, &*store, &Target::Channel(channel.0), &body).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_events_that_are_alerts() {
        let crash = json!({"event": "transition", "agent": "w", "from": "running", "to": "crashed", "reason": "boom"});
        let a = alert_for("agents.events", &crash).unwrap();
        assert_eq!(
            (a.key.as_str(), a.title.as_str()),
            ("crashed:w", "agent w crashed")
        );
        assert_eq!(a.agent.as_deref(), Some("w"));
        let fine = json!({"event": "transition", "agent": "w", "to": "running"});
        assert!(alert_for("agents.events", &fine).is_none());

        let failed =
            json!({"event": "failed", "schedule": "nightly", "error": "exit 3", "failures": 2});
        let a = alert_for("schedules.events", &failed).unwrap();
        assert_eq!(a.title, "schedule nightly failed");
        assert_eq!(a.text, "exit 3 (2 failure(s) in a row)");
        assert!(alert_for(
            "schedules.events",
            &json!({"event": "ok", "schedule": "nightly"})
        )
        .is_none());

        let token =
            json!({"event": "token_expiring", "account": "main", "platform": "x", "days_left": 3});
        let a = alert_for(SOCIAL_TOPIC, &token).unwrap();
        assert_eq!(a.level, Level::Warn);
        assert_eq!(a.text, "x account 'main': 3 day(s) left; renew it");
        assert!(alert_for(SOCIAL_TOPIC, &json!({"event": "posted"})).is_none());
    }
}
