//! The pure parts of firing: which passed fire times run under a missed-run policy,
//! jitter, and next times shared by schedules with the same expression.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Duration;

use super::def::MissedPolicy;
use super::records::RunKind;
use super::trigger::Trigger;
use crate::store::Millis;

/// A fire this late (or less) is on time; anything older counts as missed.
pub(super) const ON_TIME_GRACE: Millis = 1_000;

/// rustc's FxHash: a multiply and a rotate per word. The firing pass looks schedules up by
/// name several times per run; SipHash (the std default, built to resist flooding by
/// untrusted keys) was a visible share of it. Schedule names come from the operator's
/// configuration, CLI and scripts, not from the network.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weak, and the table picks buckets by them
        // (names such as "tick-1234" collided in runs); rustc-hash 2 rotates the same way.
        self.0.rotate_left(26)
    }
}

/// A map keyed by schedule names or small numbers, hashed with [`FxHasher`].
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// `trigger.next_after(t)`, shared between cron schedules with the same expression and
/// zone within one pass of the loop.
pub(super) fn next_cached(
    trigger: &Trigger,
    t: Millis,
    cache: &mut FastMap<(u64, Millis), Option<Millis>>,
) -> Option<Millis> {
    match trigger {
        Trigger::Cron { key, .. } => *cache
            .entry((*key, t))
            .or_insert_with(|| trigger.next_after(t)),
        _ => trigger.next_after(t),
    }
}

/// Which of the passed fire times run, and how many are skipped. The newest one is on
/// time if it is at most [`ON_TIME_GRACE`] old; the others were missed.
pub(super) fn plan_runs(
    passed: &[Millis],
    now: Millis,
    policy: MissedPolicy,
    window: Duration,
) -> (Vec<(Millis, RunKind)>, usize) {
    let Some((&newest, older)) = passed.split_last() else {
        return (Vec::new(), 0);
    };
    let on_time = now - newest <= ON_TIME_GRACE;
    let (missed, current): (&[Millis], Option<Millis>) = if on_time {
        (older, Some(newest))
    } else {
        (passed, None)
    };
    let mut runs: Vec<(Millis, RunKind)> = Vec::new();
    let skipped = match policy {
        MissedPolicy::Skip => missed.len(),
        MissedPolicy::RunOnce => match (current, missed.last()) {
            (None, Some(latest)) => {
                runs.push((*latest, RunKind::Catchup));
                missed.len() - 1
            }
            _ => missed.len(),
        },
        MissedPolicy::RunAll => {
            let oldest = now - crate::bus::clock::millis(window);
            let within: Vec<Millis> = missed.iter().copied().filter(|t| *t >= oldest).collect();
            let skipped = missed.len() - within.len();
            runs.extend(within.into_iter().map(|t| (t, RunKind::Catchup)));
            skipped
        }
    };
    if let Some(t) = current {
        runs.push((t, RunKind::Scheduled));
    }
    (runs, skipped)
}

/// A stable pseudo-random delay in `[0, max)` for one fire of one schedule: spreads
/// schedules that share a time without a random number generator, and is reproducible in
/// tests.
pub(super) fn jitter(name: &str, at: Millis, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, at).hash(&mut h);
    Duration::from_millis(h.finish() % max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(3600);

    #[test]
    fn missed_policies() {
        let passed = [1_000, 2_000, 3_000];
        // All three long past.
        let now = 10_000;
        assert_eq!(plan_runs(&passed, now, MissedPolicy::Skip, W), (vec![], 3));
        assert_eq!(
            plan_runs(&passed, now, MissedPolicy::RunOnce, W),
            (vec![(3_000, RunKind::Catchup)], 2)
        );
        let (runs, skipped) = plan_runs(&passed, now, MissedPolicy::RunAll, W);
        assert_eq!(runs.len(), 3);
        assert_eq!(skipped, 0);
        // The window bounds run_all.
        let (runs, skipped) = plan_runs(&passed, now, MissedPolicy::RunAll, Duration::from_secs(7));
        assert_eq!((runs.len(), skipped), (1, 2));
        // The newest is on time: it runs as scheduled; run_once needs no extra run.
        let now = 3_200;
        assert_eq!(
            plan_runs(&passed, now, MissedPolicy::RunOnce, W),
            (vec![(3_000, RunKind::Scheduled)], 2)
        );
        assert_eq!(
            plan_runs(&[3_000], now, MissedPolicy::Skip, W),
            (vec![(3_000, RunKind::Scheduled)], 0)
        );
    }

    #[test]
    fn jitter_is_bounded_and_stable() {
        let max = Duration::from_secs(10);
        let a = jitter("a", 5, max);
        assert!(a < max);
        assert_eq!(a, jitter("a", 5, max));
        assert_eq!(jitter("a", 5, Duration::ZERO), Duration::ZERO);
    }
}
