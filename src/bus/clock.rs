//! The bus's sense of time and its retry schedule.
//!
//! Stored timestamps are wall-clock milliseconds, but the bus measures time with tokio's
//! clock, anchored to the wall clock once at start. So `tokio::time::pause()`/`advance()`
//! move every deadline, backoff and ttl in tests, and production timestamps stay real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Millis;

#[derive(Debug)]
pub struct Clock {
    /// Wall-clock milliseconds at `anchor`.
    wall_at_anchor: Millis,
    anchor: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            wall_at_anchor: chrono::Utc::now().timestamp_millis(),
            anchor: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        self.wall_at_anchor.saturating_add(elapsed)
    }

    /// The tokio instant of a stored timestamp (for sleeping until it).
    pub fn instant_of(&self, at: Millis) -> Instant {
        let ahead = u64::try_from(at.saturating_sub(self.now())).unwrap_or(0);
        Instant::now() + Duration::from_millis(ahead)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Delay before retrying after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`,
/// capped at `max`, then "equal jitter": a uniform pick between half of that and all of
/// it, so a crowd of failures spreads out but the schedule stays recognisably exponential.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration, jitter: &Jitter) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
    let full = base.saturating_mul(factor).min(max);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(jitter.next_unit())
}

/// A small lock-free random source for jitter (splitmix64); not for anything secret.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    pub fn new() -> Jitter {
        let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64
            ^ (u64::from(std::process::id()) << 32);
        Jitter(AtomicU64::new(seed))
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&self) -> f64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A short unique-enough token (request ids, reply channels).
    pub fn token(&self) -> String {
        format!("{:x}", (self.next_unit() * (1u64 << 53) as f64) as u64)
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let j = Jitter::new();
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        for _ in 0..200 {
            for (attempt, full) in [
                (1, 1000),
                (2, 2000),
                (3, 4000),
                (4, 8000),
                (5, 10_000),
                (30, 10_000),
            ] {
                let d = backoff_delay(attempt, base, max, &j).as_millis();
                assert!((full / 2..=full).contains(&d), "attempt {attempt}: {d}ms");
            }
        }
    }

    #[test]
    fn jitter_spreads() {
        let j = Jitter::new();
        let picks: Vec<f64> = (0..1000).map(|_| j.next_unit()).collect();
        assert!(picks.iter().all(|p| (0.0..1.0).contains(p)));
        let low = picks.iter().filter(|p| **p < 0.5).count();
        assert!((350..650).contains(&low), "{low}");
        assert_ne!(j.token(), j.token());
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::new();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now() - t0, 5000);
        let at = clock.instant_of(t0 + 7000);
        assert_eq!(at - Instant::now(), Duration::from_secs(2));
    }
}
