//! How posts look outside the outbox: one JSON shape for Lua, `--json` and events, and the
//! time syntax `at` accepts.

use serde_json::{json, Value};

use super::types::PostRecord;
use crate::clients::social::RequestPreview;
use crate::store::Millis;

fn secs(t: Millis) -> f64 {
    t as f64 / 1000.0
}

/// A post as scripts and `--json` see it; times are epoch seconds.
pub fn record_json(p: &PostRecord) -> Value {
    json!({
        "id": p.id,
        "account": p.account,
        "platform": p.platform.name(),
        "status": p.status.name(),
        "text": p.content.text,
        "title": p.content.title,
        "subreddit": p.content.subreddit,
        "link": p.content.link,
        "media": p.content.media.iter().map(|m| m.path.clone()).collect::<Vec<_>>(),
        "idempotency_key": p.idempotency_key,
        "reply_to": p.parent,
        "source": p.source,
        "created_at": secs(p.created_at),
        "not_before": secs(p.not_before),
        "attempts": p.attempts,
        "platform_id": p.platform_id,
        "url": p.url,
        "posted_at": p.posted_at.map(secs),
        "error_kind": p.error_kind,
        "error": p.error,
    })
}

pub fn preview_json(previews: &[RequestPreview], note: Option<&str>) -> Value {
    json!({
        "status": "dry_run",
        "dry_run": true,
        "note": note,
        "requests": previews.iter().map(|r| json!({
            "method": r.method,
            "url": r.url,
            "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": r.body,
        })).collect::<Vec<_>>(),
    })
}

/// Exactly the requests, as `--dry-run` prints them.
pub fn render_previews(previews: &[RequestPreview]) -> String {
    let mut out = String::new();
    for r in previews {
        out.push_str(&format!("{} {}\n", r.method, r.url));
        for (k, v) in &r.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
        out.push_str(&r.body);
        if !r.body.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// A post time: `+30m` / `in 2h` from now, RFC 3339, or local time in `tz`
/// (`2026-12-01 09:00`).
pub fn parse_at(text: &str, tz: &str, now: Millis) -> Result<Millis, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('+').or_else(|| t.strip_prefix("in ")) {
        let d = crate::units::parse_duration(rest.trim())?;
        return Ok(now + d.as_millis() as Millis);
    }
    let zone = crate::scheduler::trigger::parse_tz(tz)?;
    crate::scheduler::trigger::parse_time(t, zone)
        .map_err(|e| format!("{e} (or give a delay such as \"+30m\")"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_relative_or_absolute() {
        assert_eq!(parse_at("+30m", "UTC", 1000).unwrap(), 1000 + 1_800_000);
        assert_eq!(parse_at("in 1h", "UTC", 0).unwrap(), 3_600_000);
        assert_eq!(
            parse_at("2026-12-01T09:00:00Z", "UTC", 0).unwrap(),
            1_796_115_600_000
        );
        assert!(parse_at("tomorrowish", "UTC", 0).is_err());
    }
}
