//! The social outbox: every post Dream.OS makes goes through here, durably.
//!
//! A post is a row in the store before any HTTP call (`queued`), is claimed under a lease
//! (`sending`), and ends `posted`, `failed` (the platform refused it for good) or `dead`
//! (out of attempts). A sender that dies mid-call leaves a `sending` row whose lease lapses;
//! the next claimer looks the post up on the platform (`SocialClient::find`) before it
//! sends anything, so a retry never double-posts. Due times (`at`, a backoff, the next safe
//! slot after a rate limit) are columns of the row, so scheduled posts survive restarts.
//!
//! - [`config`]: `[social]` and `[social.accounts.<name>]`.
//! - [`types`]: the records the store keeps.
//! - [`limits`]: platform text limits and the next safe slot under configured caps.
//! - [`outbox`]: queueing (validation, idempotency, dedup, dry runs) and operator actions.
//! - `send`: one attempt of one post: reconcile, check budgets, send, record; `request`
//!   builds what a client gets (media read from disk).
//! - [`worker`]: the daemon's loop that sends due posts, reads metrics at their offsets.
//! - [`tokens`]: refreshed tokens in the store, the expiring-token warning.
//! - [`report`]: engagement tables and sparklines for `dreamos social report`.
//! - [`view`]: the JSON shape of a post for Lua and `--json`; the `at` time syntax.
//!
//! Platform HTTP lives in `crate::clients::social`; this module never speaks HTTP itself.

pub mod config;
pub mod limits;
pub mod outbox;
pub mod report;
mod request;
mod send;
pub mod tokens;
pub mod types;
pub mod view;
pub mod worker;

pub use config::{AccountConfig, SocialConfig};
pub use outbox::{platform_connect, Connect, Outbox, OutboxError, PostOrder, Queued};
pub use request::mime_of;
pub use types::*;

/// Bus topic of outbox events: `posted`, `failed`, `dead`, `rescheduled`, `reconciled`,
/// `token_expiring` (payload field `event`).
pub const TOPIC: &str = "social.events";

/// The tracing target of outbox log lines; token warnings carry
/// `event = "social.token_expiring"`.
pub const TARGET: &str = "dreamos::social";

#[cfg(test)]
mod tests;
