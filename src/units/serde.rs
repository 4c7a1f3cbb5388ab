//! Serde helpers for configuration fields holding durations and byte sizes, shared by every
//! section (`#[serde(deserialize_with = "crate::units::serde::de_duration", ...)]`).
//!
//! Reading accepts what people write: `"30s"`, `"1h30m"` or seconds for durations,
//! `"64MiB"` or bytes for sizes, with an error that says which forms are accepted. Writing
//! gives the same human forms back, so `dreamos config` reads like `dreamos.toml`.

use std::time::Duration;

use serde::{Deserializer, Serializer};

use super::{format_duration, parse_bytes, parse_duration, seconds};

pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(UnitVisitor::Duration)
        .map(Duration::from_micros)
}

pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

pub fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(UnitVisitor::Bytes)
}

pub fn de_opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_bytes(d).map(Some)
}

/// `"30s"`, `"7d"`, `"250ms"`; values the text form cannot hold exactly (`1.5s`) are
/// written as seconds.
pub fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let whole_ms_below_a_second = d.as_secs() == 0 && d.subsec_nanos().is_multiple_of(1_000_000);
    if d.subsec_nanos() == 0 || whole_ms_below_a_second {
        s.serialize_str(&format_duration(*d))
    } else {
        s.serialize_f64(d.as_secs_f64())
    }
}

pub fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// Exact sizes in the largest binary unit that divides them (`"1MiB"`), else bytes.
pub fn ser_bytes<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if *n >= size && n.is_multiple_of(size) {
            return s.serialize_str(&format!("{}{unit}", n / size));
        }
    }
    s.serialize_u64(*n)
}

pub fn ser_opt_bytes<S: Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => ser_bytes(n, s),
        None => s.serialize_none(),
    }
}

/// One visitor for both kinds, so a wrong type (a boolean, a table) gets a message saying
/// what is accepted. Durations come out in microseconds.
#[derive(Clone, Copy)]
enum UnitVisitor {
    Bytes,
    Duration,
}

impl<'de> serde::de::Visitor<'de> for UnitVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            UnitVisitor::Bytes => f.write_str("a size such as \"64MiB\" or a number of bytes"),
            UnitVisitor::Duration => {
                f.write_str("a duration such as \"30s\", \"1h30m\" or a number of seconds")
            }
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        if v < 0 {
            return Err(E::custom(format!("{v} is negative")));
        }
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
        match self {
            UnitVisitor::Bytes if v.fract() == 0.0 && v >= 0.0 => Ok(v as u64),
            UnitVisitor::Bytes => Err(E::custom(format!("{v} is not a whole number of bytes"))),
            UnitVisitor::Duration => seconds(v)
                .map(|d| d.as_micros() as u64)
                .ok_or_else(|| E::custom(format!("{v} is not a valid number of seconds"))),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        match self {
            UnitVisitor::Bytes => parse_bytes(v).map_err(E::custom),
            UnitVisitor::Duration => parse_duration(v)
                .map(|d| d.as_micros() as u64)
                .map_err(E::custom),
        }
    }
}

// For `#[serde(with = "crate::units::serde::duration")]` and friends: one attribute instead
// of a `deserialize_with`/`serialize_with` pair on every field.

pub mod duration {
    pub use super::{de_duration as deserialize, ser_duration as serialize};
}

pub mod opt_duration {
    pub use super::{de_opt_duration as deserialize, ser_opt_duration as serialize};
}

pub mod bytes {
    pub use super::{de_bytes as deserialize, ser_bytes as serialize};
}

pub mod opt_bytes {
    pub use super::{de_opt_bytes as deserialize, ser_opt_bytes as serialize};
}
