//! Human units shared by the configuration, the CLI and the Lua modules: durations
//! (`"250ms"`, `"5m"`, `"1h30m"`, or plain seconds) and byte sizes (`"64MiB"`, `"10MB"`).
//!
//! Both parsers return a message that states the accepted forms, so every caller can show
//! it next to the key or argument that held the bad value.

use std::time::Duration;

pub mod serde;

/// Parses a duration written as units (`"1h30m"`, `"250ms"`, `"2d"`) or as a number of
/// seconds (`"1.5"`). Whitespace between parts is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(duration_help(text));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs).ok_or_else(|| duration_help(text));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(duration_help(text));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| duration_help(text))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" => 604_800.0,
            "us" | "µs" => 0.000_001,
            _ => return Err(duration_help(text)),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    seconds(total).ok_or_else(|| duration_help(text))
}

/// Converts seconds to a `Duration`, refusing negative, NaN and absurdly large values.
pub fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_finite() && (0.0..=1e12).contains(&secs) {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    }
}

fn duration_help(text: &str) -> String {
    format!(
        "invalid duration '{text}': use seconds (30, 0.5) or units such as \"250ms\", \"5m\", \"1h30m\", \"2d\""
    )
}

/// Formats a duration the way users write them (`1h30m`, `250ms`, `5s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Parses a byte size: a plain number of bytes, or a number with `B`, `KB`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB` (case-insensitive; decimal and binary units both accepted).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| bytes_help(text))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bytes_help(text)),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bytes_help(text));
    }
    Ok(bytes as u64)
}

fn bytes_help(text: &str) -> String {
    format!("invalid size '{text}': use bytes (1048576) or units such as \"64MiB\", \"10MB\", \"512KiB\"")
}

/// Formats a byte count with a binary unit (`64 MiB`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{} {}", value as u64, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_form() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn bad_durations_explain_the_forms() {
        for bad in ["", "5x", "-1", "m5", "1h30", "abc"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"1h30m\""), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(61)), "1m1s");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("ten").unwrap_err().contains("64MiB"));
        assert_eq!(format_bytes(64 * 1024 * 1024), "64 MiB");
    }
}
