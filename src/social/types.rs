//! The outbox's records: what a post asks for, where it is in its life, and what the store
//! keeps about budgets and engagement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clients::social::Platform;
use crate::store::Millis;

/// Outbox row id.
pub type PostId = i64;

/// Where a post is. `queued → sending → posted | failed | dead`; `cancelled` and `deleted`
/// are what an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored, waiting for its time (`not_before`), its parent, or a rate-limit slot.
    Queued,
    /// Claimed by a sender under a lease; if the lease lapses the sender died and the
    /// post is reconciled with the platform before anything is sent again.
    Sending,
    Posted,
    /// The platform refused it for good (invalid, duplicate, auth): `social retry` after a fix.
    Failed,
    /// Out of attempts for temporary failures.
    Dead,
    Cancelled,
    /// Posted, then deleted on the platform.
    Deleted,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Sending,
        Status::Posted,
        Status::Failed,
        Status::Dead,
        Status::Cancelled,
        Status::Deleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Posted => "posted",
            Status::Failed => "failed",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Nothing more will happen to it without an operator.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Sending)
    }
}

/// A file to attach, as the user named it; read from disk when the post is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaSpec {
    pub path: String,
    /// Public URL of the same file (Instagram fetches media itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

/// What a post says, as stored (JSON) in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostContent {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subreddit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Platform options (StockTwits `sentiment`, Reddit `flair_id`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl PostContent {
    /// FNV-1a over everything that makes two posts the same post, hex. Stable across
    /// versions and platforms (it is stored), which is why it is spelled out here rather
    /// than left to `std`'s hasher.
    pub fn hash(&self, account: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |s: &str| {
            for b in s.bytes().chain([0u8]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(account);
        feed(self.text.trim());
        feed(self.link.as_deref().unwrap_or(""));
        feed(self.subreddit.as_deref().unwrap_or(""));
        feed(self.title.as_deref().unwrap_or(""));
        for m in &self.media {
            feed(&m.path);
        }
        format!("{h:016x}")
    }
}

/// A post to store.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub account: String,
    pub platform: Platform,
    pub content: PostContent,
    pub idempotency_key: String,
    /// Not sent before this time (`at`); `created` for "now".
    pub not_before: Millis,
    /// Sent only after this post is `posted`, as a reply to it (threads, comments).
    pub parent: Option<PostId>,
    /// Who queued it: `cli`, or the script's path.
    pub source: String,
    pub max_attempts: u32,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostRecord {
    pub id: PostId,
    pub account: String,
    pub platform: Platform,
    pub status: Status,
    pub content: PostContent,
    pub idempotency_key: String,
    pub content_hash: String,
    pub parent: Option<PostId>,
    pub source: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Due time: `at`, or the next safe slot after a rate limit or a backoff.
    pub not_before: Millis,
    /// Attempts that reached the platform (rate-limit reschedules do not count).
    pub attempts: u32,
    pub max_attempts: u32,
    /// While `sending`: when the sender's claim lapses.
    pub lease_until: Option<Millis>,
    /// When the current (or last) send started; reconciliation looks for posts since then.
    pub sending_since: Option<Millis>,
    /// The last attempt may have reached the platform (network failure, or the sender died
    /// mid-call): look the post up with `find` before sending it again.
    pub unsure: bool,
    pub platform_id: Option<String>,
    pub url: Option<String>,
    pub posted_at: Option<Millis>,
    /// The last failure's kind (`rate_limited`, `network`, ...) and message.
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// When engagement metrics are next read, and how many offsets are done.
    pub metrics_next: Option<Millis>,
    pub metrics_done: u32,
}

/// What `insert_post` did.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(PostRecord),
    /// The account already has a post with this idempotency key: that post, unchanged.
    SameKey(PostRecord),
    /// The same content was queued or sent within the dedup window: that post.
    Duplicate(PostRecord),
}

/// Which posts a listing shows.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub account: Option<String>,
    /// Empty: every status.
    pub statuses: Vec<Status>,
    /// Created at or after.
    pub since: Option<Millis>,
    pub limit: Option<usize>,
}

/// How a sending attempt ended, as the store records it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Posted {
        platform_id: String,
        url: Option<String>,
        at: Millis,
        metrics_next: Option<Millis>,
    },
    /// Back to `queued`, due at `not_before`.
    Requeue {
        not_before: Millis,
        kind: String,
        error: String,
        /// The attempt reached the platform (counts toward `max_attempts`).
        counted: bool,
        unsure: bool,
    },
    /// `failed` or `dead`; queued replies to it fail with it.
    Give {
        status: Status,
        kind: String,
        error: String,
    },
}

/// One engagement sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub post: PostId,
    pub taken_at: Millis,
    pub name: String,
    pub value: i64,
}
