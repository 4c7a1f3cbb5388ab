//! What each platform accepts, and when an account may post next under its configured caps.

use serde::Serialize;

use super::AccountConfig;
use crate::clients::social::Platform;
use crate::store::Millis;

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

/// A platform's limits, as `social.limits(platform)` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformLimits {
    pub platform: &'static str,
    /// Longest text (X: weighted, URLs count 23 and wide characters 2).
    pub text: usize,
    pub weighted: bool,
    /// Reddit titles.
    pub title: Option<usize>,
    /// Most images per post.
    pub media: usize,
    /// Whether posts can be deleted through the API.
    pub delete: bool,
    /// Whether an image needs a public URL (the platform fetches it).
    pub media_url_required: bool,
}

/// The text limit comes from the clients (`clients::social::text::limit`), which check it.
pub fn platform_limits(platform: Platform) -> PlatformLimits {
    let (weighted, title, media, delete, url) = match platform {
        Platform::X => (true, None, 4, true, false),
        Platform::Reddit => (false, Some(300), 1, true, false),
        Platform::Facebook => (false, None, 1, true, false),
        Platform::Instagram => (false, None, 10, false, true),
        Platform::Linkedin => (false, None, 1, true, false),
        Platform::Stocktwits => (false, None, 1, false, false),
    };
    PlatformLimits {
        platform: platform.name(),
        text: crate::clients::social::text::limit(platform),
        weighted,
        title,
        media,
        delete,
        media_url_required: url,
    }
}

/// The earliest time at or after `now` that `account`'s caps allow a post, given the times
/// (ascending) of its posts in the last 24 hours.
pub fn next_slot(now: Millis, sent: &[Millis], account: &AccountConfig) -> Millis {
    let gap = account.min_gap.as_millis() as Millis;
    let mut slot = now;
    // Each rule can only push the slot later; repeat until none does.
    for _ in 0..8 {
        let before = slot;
        if let Some(last) = sent.last() {
            if gap > 0 {
                slot = slot.max(last + gap);
            }
        }
        for (max, window) in [(account.hourly_max, HOUR), (account.daily_max, DAY)] {
            if max == 0 {
                continue;
            }
            let inside: Vec<Millis> = sent
                .iter()
                .copied()
                .filter(|t| *t > slot - window)
                .collect();
            if inside.len() >= max as usize {
                // The post that must leave the window before one more fits.
                slot = slot.max(inside[inside.len() - max as usize] + window);
            }
        }
        if slot == before {
            break;
        }
    }
    slot
}

/// When to try again after a 429 that named no time. LinkedIn's daily limits reset at
/// midnight UTC and it sends no headers; the others get a 15-minute pause.
pub fn default_retry(platform: Platform, now: Millis) -> Millis {
    match platform {
        Platform::Linkedin => (now / DAY + 1) * DAY,
        _ => now + 15 * 60_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn account(daily: u32, hourly: u32, gap_secs: u64) -> AccountConfig {
        AccountConfig {
            platform: Platform::X,
            base_url: None,
            auth_url: None,
            dry_run: false,
            daily_max: daily,
            hourly_max: hourly,
            min_gap: Duration::from_secs(gap_secs),
            credentials: Default::default(),
        }
    }

    #[test]
    fn min_gap_pushes_past_the_last_post() {
        let now = 10 * HOUR;
        assert_eq!(
            next_slot(now, &[now - 60_000], &account(0, 0, 600)),
            now + 540_000
        );
        assert_eq!(next_slot(now, &[now - HOUR], &account(0, 0, 600)), now);
    }

    #[test]
    fn daily_cap_waits_for_the_oldest_post_to_age_out() {
        let now = 30 * HOUR;
        let sent = [now - 20 * HOUR, now - 5 * HOUR, now - HOUR];
        assert_eq!(next_slot(now, &sent, &account(3, 0, 0)), now + 4 * HOUR);
        assert_eq!(next_slot(now, &sent, &account(4, 0, 0)), now);
    }

    #[test]
    fn hourly_cap_and_gap_combine() {
        let now = 30 * HOUR;
        let sent = [now - 50 * 60_000, now - 10 * 60_000];
        // Two an hour: wait until the first leaves the hour (now + 10 min); gap 30 min from
        // the last post is now + 20 min, which is later.
        assert_eq!(
            next_slot(now, &sent, &account(0, 2, 1800)),
            now + 20 * 60_000
        );
    }

    #[test]
    fn linkedin_waits_for_midnight_utc() {
        let now = 3 * DAY + 5 * HOUR;
        assert_eq!(default_retry(Platform::Linkedin, now), 4 * DAY);
        assert_eq!(default_retry(Platform::X, now), now + 900_000);
    }
}
