//! The scheduler's sense of time: wall-clock milliseconds measured on tokio's clock from
//! one anchor, so `tokio::time::pause()`/`advance()` move every fire time in tests (and a
//! test can start the wall clock on a chosen day, such as a DST transition).

use std::time::Duration;

use tokio::time::Instant;

use crate::store::Millis;

#[derive(Debug, Clone)]
pub struct Clock {
    /// Wall-clock milliseconds at `anchor`.
    wall_at_anchor: Millis,
    anchor: Instant,
}

impl Clock {
    /// Anchored to the real wall clock now.
    pub fn new() -> Clock {
        Clock::starting_at(chrono::Utc::now().timestamp_millis())
    }

    /// Anchored so that now reads `wall` (tests, benchmarks).
    pub fn starting_at(wall: Millis) -> Clock {
        Clock {
            wall_at_anchor: wall,
            anchor: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        self.wall_at_anchor.saturating_add(elapsed)
    }

    /// The tokio instant at which the clock reads `at` (now, if that has passed).
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
