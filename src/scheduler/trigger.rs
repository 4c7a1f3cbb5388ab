//! When a schedule fires: a cron expression in an IANA time zone, a fixed interval, or one
//! instant. Parsing refuses bad input with the position of the error and a valid example,
//! because the person reading the message is writing an expression right now.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::store::Millis;

/// Shown with every refused cron expression.
pub const CRON_EXAMPLE: &str =
    "'0 9 * * MON-FRI' (09:00 on weekdays), '*/15 * * * *' (every 15 minutes), '@daily'";
/// Shown with every refused time zone.
pub const TZ_EXAMPLE: &str = "an IANA name such as 'Europe/Berlin', 'America/New_York' or 'UTC'";

/// Shortest interval `every` accepts: below that a schedule is a busy loop, not a schedule.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

const FIELDS_5: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const FIELDS_6: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];
const MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

#[derive(Debug, Clone)]
pub enum Trigger {
    /// A cron expression, evaluated on the wall clock of `tz` (croner walks DST folds and
    /// gaps so a 02:30 job runs once on both transition days).
    Cron {
        expr: String,
        cron: Box<Cron>,
        tz: Tz,
        /// Hash of expression and zone: schedules with equal keys share next times.
        key: u64,
    },
    /// Every `interval` from `anchor`, so fire times never drift with run lengths.
    Every { interval: Duration, anchor: Millis },
    /// Once.
    At(Millis),
}

impl Trigger {
    /// The first fire time strictly after `t`, or `None` when there is none (a one-shot
    /// in the past, or a cron expression with no future match).
    pub fn next_after(&self, t: Millis) -> Option<Millis> {
        match self {
            Trigger::Cron { cron, tz, .. } => {
                // croner works in whole seconds: start from the second `t` falls in, so a
                // match at that second (already passed by `t`) is excluded.
                let secs = t.div_euclid(1000);
                let start = tz.timestamp_opt(secs, 0).single()?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp() * 1000)
            }
            Trigger::Every { interval, anchor } => {
                let step = i64::try_from(interval.as_millis()).ok()?.max(1);
                if t < *anchor {
                    return Some(*anchor);
                }
                let k = (t - anchor) / step + 1;
                anchor.checked_add(k.checked_mul(step)?)
            }
            Trigger::At(at) => (*at > t).then_some(*at),
        }
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, t: Millis, n: usize) -> Vec<Millis> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = t;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// The zone fire times are shown in.
    pub fn tz(&self) -> Tz {
        match self {
            Trigger::Cron { tz, .. } => *tz,
            _ => Tz::UTC,
        }
    }

    /// How a user wrote it: `0 9 * * *`, `every 15m`, `at 2026-12-01T08:00:00Z`.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Cron { expr, .. } => expr.clone(),
            Trigger::Every { interval, .. } => {
                format!("every {}", crate::units::format_duration(*interval))
            }
            Trigger::At(at) => format!("at {}", format_time(*at, Tz::UTC)),
        }
    }
}

/// Parses a cron expression for zone `tz`. 5 fields start at minutes, 6 at seconds; names
/// (`MON-FRI`, `JAN`) and macros (`@hourly`, `@daily`, ...) are accepted.
pub fn parse_cron(expr: &str, tz: Tz) -> Result<Trigger, String> {
    let trimmed = expr.trim();
    let refuse = |detail: String| {
        format!(
            "invalid cron expression '{expr}': {detail}; examples of valid ones: {CRON_EXAMPLE}"
        )
    };
    if trimmed.is_empty() {
        return Err(refuse("it is empty".into()));
    }
    if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        if !MACROS.contains(&lower.as_str()) {
            return Err(refuse(format!(
                "unknown macro at position 1 (known: {})",
                MACROS.join(", ")
            )));
        }
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = match parser.parse(trimmed) {
        Ok(cron) => cron,
        Err(e) => return Err(refuse(locate_error(expr, &parser, &e.to_string()))),
    };
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (trimmed, tz.name()).hash(&mut h);
        h.finish()
    };
    let trigger = Trigger::Cron {
        expr: trimmed.to_string(),
        cron: Box::new(cron),
        tz,
        key,
    };
    // A valid-looking expression can still never match (`0 0 30 2 *`): refuse it now
    // rather than let a schedule sit silent forever.
    if trigger.next_after(Utc::now().timestamp_millis()).is_none() {
        return Err(refuse("it never matches a real date".into()));
    }
    Ok(trigger)
}

/// Which field of `expr` is wrong, and where it starts (1-based column), found by parsing
/// each field alone with every other field set to `*`.
fn locate_error(expr: &str, parser: &CronParser, fallback: &str) -> String {
    let fields: Vec<(usize, &str)> = expr
        .char_indices()
        .filter(|(i, c)| {
            !c.is_whitespace() && (*i == 0 || expr[..*i].ends_with(char::is_whitespace))
        })
        .map(|(i, _)| {
            let rest = &expr[i..];
            let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (i, &rest[..len])
        })
        .collect();
    let names: &[&str] = match fields.len() {
        5 => &FIELDS_5,
        6 => &FIELDS_6,
        n => {
            return format!(
                "it has {n} fields; use 5 (minute hour day-of-month month day-of-week) or 6 \
                 (a seconds field first)"
            )
        }
    };
    for (idx, (offset, text)) in fields.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if j == idx { *text } else { "*" })
            .collect();
        if let Err(e) = parser.parse(&probe.join(" ")) {
            let column = expr[..*offset].chars().count() + 1;
            return format!(
                "field {} ({}) '{text}' at position {column} is invalid: {e}",
                idx + 1,
                names[idx]
            );
        }
    }
    fallback.to_string()
}

/// An IANA time zone name, with a suggestion for near misses.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = Tz::from_str(name.trim()) {
        return Ok(tz);
    }
    let known: Vec<String> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name().to_string())
        .collect();
    let hint = crate::config::did_you_mean(name, &known)
        .map(|best| format!(" (did you mean '{best}'?)"))
        .unwrap_or_default();
    Err(format!(
        "unknown time zone '{name}'{hint}: use {TZ_EXAMPLE}"
    ))
}

/// A fixed interval such as `"15m"`; at least [`MIN_INTERVAL`].
pub fn every(interval: Duration, anchor: Millis) -> Result<Trigger, String> {
    if interval < MIN_INTERVAL {
        return Err(format!(
            "interval {} is too short: use at least {}",
            crate::units::format_duration(interval),
            crate::units::format_duration(MIN_INTERVAL)
        ));
    }
    Ok(Trigger::Every { interval, anchor })
}

/// One instant: RFC 3339 (`2026-12-01T09:00:00+01:00`), or a local time without offset
/// (`2026-12-01T09:00:00`, `2026-12-01 09:00`) read in `tz`.
pub fn parse_time(text: &str, tz: Tz) -> Result<Millis, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            // In a DST gap the local time does not exist; take the instant after the gap
            // (what a person setting a reminder means), in a fold the earlier one.
            let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
                tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                    .earliest()
            });
            if let Some(t) = local {
                return Ok(t.timestamp_millis());
            }
        }
    }
    Err(format!(
        "invalid time '{text}': use RFC 3339 such as '2026-12-01T09:00:00+01:00', or \
         '2026-12-01 09:00' in the schedule's time zone"
    ))
}

/// RFC 3339 in `tz` with that zone's offset (`2026-03-30T09:00:00+02:00`).
pub fn format_time(at: Millis, tz: Tz) -> String {
    match Utc.timestamp_millis_opt(at).single() {
        Some(t) => t
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{at}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc: &str) -> Millis {
        DateTime::parse_from_rfc3339(rfc)
            .expect("test time")
            .timestamp_millis()
    }

    fn berlin(expr: &str) -> Trigger {
        parse_cron(expr, chrono_tz::Europe::Berlin).expect("valid expression")
    }

    fn between(t: &Trigger, from: &str, to: &str) -> Vec<String> {
        let end = ms(to);
        t.upcoming(ms(from), 200)
            .into_iter()
            .take_while(|at| *at < end)
            .map(|at| format_time(at, t.tz()))
            .collect()
    }

    #[test]
    fn five_fields_are_minutes_six_are_seconds() {
        let t = parse_cron("*/15 * * * *", Tz::UTC).unwrap();
        assert_eq!(
            t.upcoming(ms("2026-01-01T00:00:00Z"), 2),
            vec![ms("2026-01-01T00:15:00Z"), ms("2026-01-01T00:30:00Z")]
        );
        let t = parse_cron("*/10 * * * * *", Tz::UTC).unwrap();
        assert_eq!(
            t.next_after(ms("2026-01-01T00:00:00Z")),
            Some(ms("2026-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn names_and_macros() {
        let t = parse_cron("0 9 * JAN MON-FRI", Tz::UTC).unwrap();
        // 2026-01-03 is a Saturday: next weekday 09:00 is Monday the 5th.
        assert_eq!(
            t.next_after(ms("2026-01-02T10:00:00Z")),
            Some(ms("2026-01-05T09:00:00Z"))
        );
        let t = parse_cron("@hourly", Tz::UTC).unwrap();
        assert_eq!(
            t.next_after(ms("2026-01-01T00:10:00Z")),
            Some(ms("2026-01-01T01:00:00Z"))
        );
        let t = parse_cron("@daily", Tz::UTC).unwrap();
        assert_eq!(
            t.next_after(ms("2026-01-01T00:10:00Z")),
            Some(ms("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_berlin_morning_job_stays_at_nine_local_in_summer() {
        let t = berlin("0 9 * * *");
        assert_eq!(
            between(&t, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            [
                "2026-03-28T09:00:00+01:00",
                "2026-03-29T09:00:00+02:00",
                "2026-03-30T09:00:00+02:00"
            ]
        );
    }

    #[test]
    fn spring_forward_neither_skips_nor_doubles() {
        // 2026-03-29 02:00 -> 03:00 in Berlin: 02:30 does not exist that day.
        let daily = between(
            &berlin("30 2 * * *"),
            "2026-03-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
        );
        assert_eq!(daily.len(), 3, "one run per day: {daily:?}");
        assert!(daily[1].starts_with("2026-03-29T03:"), "{daily:?}");
        // An hourly job runs once per real hour: 23 of them that day.
        let hourly = between(
            &berlin("0 * * * *"),
            "2026-03-28T22:59:00Z",
            "2026-03-29T22:00:00Z",
        );
        assert_eq!(hourly.len(), 23, "{hourly:?}");
    }

    #[test]
    fn fall_back_neither_skips_nor_doubles() {
        // 2026-10-25 03:00 -> 02:00 in Berlin: 02:30 happens twice; the job runs once.
        let daily = between(
            &berlin("30 2 * * *"),
            "2026-10-24T00:00:00Z",
            "2026-10-27T00:00:00Z",
        );
        assert_eq!(
            daily,
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00"
            ]
        );
        // An hourly job runs once per real hour: 25 of them that day.
        let hourly = between(
            &berlin("0 * * * *"),
            "2026-10-24T21:59:00Z",
            "2026-10-25T22:59:00Z",
        );
        assert_eq!(hourly.len(), 25, "{hourly:?}");
    }

    #[test]
    fn errors_name_the_field_position_and_an_example() {
        let e = parse_cron("0 25 * * *", Tz::UTC).unwrap_err();
        assert!(e.contains("field 2 (hour) '25' at position 3"), "{e}");
        assert!(e.contains("0 9 * * MON-FRI"), "{e}");
        let e = parse_cron("0 9 * * FUNDAY", Tz::UTC).unwrap_err();
        assert!(
            e.contains("field 5 (day of week)") && e.contains("position 9"),
            "{e}"
        );
        let e = parse_cron("0 9 * *", Tz::UTC).unwrap_err();
        assert!(e.contains("it has 4 fields"), "{e}");
        let e = parse_cron("@fortnightly", Tz::UTC).unwrap_err();
        assert!(e.contains("unknown macro at position 1"), "{e}");
        let e = parse_tz("Europe/Berln").unwrap_err();
        assert!(e.contains("did you mean 'Europe/Berlin'"), "{e}");
    }

    #[test]
    fn every_keeps_its_anchor_and_at_fires_once() {
        let t = every(Duration::from_secs(60), 1_000).unwrap();
        assert_eq!(t.next_after(0), Some(1_000));
        assert_eq!(t.next_after(1_000), Some(61_000));
        assert_eq!(t.next_after(60_999), Some(61_000));
        assert!(every(Duration::from_millis(10), 0).is_err());
        let at = parse_time("2026-12-01T09:00:00+01:00", Tz::UTC).unwrap();
        assert_eq!(at, ms("2026-12-01T08:00:00Z"));
        let t = Trigger::At(at);
        assert_eq!(t.next_after(at - 1), Some(at));
        assert_eq!(t.next_after(at), None);
        let local = parse_time("2026-12-01 09:00", chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(local, at);
    }
}
