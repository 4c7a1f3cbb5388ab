//! The social outbox's durable state: [`SocialStore`].

use futures_util::future::BoxFuture;

use super::*;

/// Durable state of the social outbox ([`crate::social`]): posts and their transitions,
/// engagement samples, learned rate-limit budgets and refreshed tokens. Every method is
/// one atomic step, committed before its future resolves.
///
/// Semantics the outbox relies on:
/// - `insert_post` is idempotent per (account, idempotency key), and refuses the same
///   content hash within `dedup_since` as a duplicate; the row exists before any HTTP call.
/// - `claim_posts` moves due posts to `sending` under a lease: `queued` ones whose time has
///   come and whose parent (if any) is `posted`, and `sending` ones whose lease lapsed (their
///   sender died), which come back marked `unsure`. Two claimers never get the same post.
/// - `finish_post` applies only to a post that is still `sending`.
pub trait SocialStore: Send + Sync + 'static {
    fn insert_post(
        &self,
        post: crate::social::NewPost,
        content_hash: String,
        dedup_since: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<crate::social::Inserted, StoreError>>;

    /// Claims up to `limit` due posts (only post `only`, if given).
    fn claim_posts(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: usize,
        only: Option<crate::social::PostId>,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// Records how an attempt ended; returns the row afterwards, or `None` if it was no
    /// longer `sending`.
    fn finish_post(
        &self,
        id: crate::social::PostId,
        outcome: crate::social::Outcome,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    fn get_post(
        &self,
        id: crate::social::PostId,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// Newest first.
    fn list_posts(
        &self,
        filter: crate::social::PostFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// `failed`, `dead` or `cancelled` back to `queued` with fresh attempts, due `now`.
    /// Returns the row afterwards, or `None` when it is not in one of those states.
    fn retry_post(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// `queued` to `cancelled` (its queued replies too). `None` when it was not queued.
    fn cancel_post(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<crate::social::PostRecord>, StoreError>>;

    /// `posted` to `deleted`.
    fn mark_deleted(
        &self,
        id: crate::social::PostId,
        now: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Times of the account's posts sent or being sent at or after `since`, ascending (for
    /// daily caps and minimum gaps), leaving out post `except` (the one being checked).
    fn send_times(
        &self,
        account: String,
        since: Millis,
        except: crate::social::PostId,
    ) -> BoxFuture<'_, Result<Vec<Millis>, StoreError>>;

    /// The earliest time anything is due: a queued post, a lapsing lease, a metrics read.
    fn next_due(&self) -> BoxFuture<'_, Result<Option<Millis>, StoreError>>;

    /// Posted posts whose next metrics read is due.
    fn metrics_due(
        &self,
        now: Millis,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<crate::social::PostRecord>, StoreError>>;

    /// Stores one sample (possibly empty) and sets when the next read is due (`None`: no
    /// more) and, if given, how many of the configured offsets are done.
    fn record_metrics(
        &self,
        id: crate::social::PostId,
        taken_at: Millis,
        metrics: Vec<(String, i64)>,
        next: Option<Millis>,
        done: Option<u32>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Samples of these posts, oldest first.
    fn metric_samples(
        &self,
        ids: Vec<crate::social::PostId>,
    ) -> BoxFuture<'_, Result<Vec<crate::social::MetricSample>, StoreError>>;

    /// Remembers what a response said about the budget `bucket` of (`account`, `op`);
    /// `blocked_until` is set when the budget is spent (or the platform said wait).
    fn save_budget(
        &self,
        account: String,
        op: String,
        bucket: String,
        info: serde_json::Value,
        blocked_until: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The latest `blocked_until` after `now` among the budgets of (`account`, `op`).
    fn blocked_until(
        &self,
        account: String,
        op: String,
        now: Millis,
    ) -> BoxFuture<'_, Result<Option<Millis>, StoreError>>;

    /// Every budget row: (account, op, bucket, info, blocked_until).
    #[allow(clippy::type_complexity)]
    fn budgets(
        &self,
    ) -> BoxFuture<
        '_,
        Result<Vec<(String, String, String, serde_json::Value, Option<Millis>)>, StoreError>,
    >;

    fn load_tokens(
        &self,
        account: String,
    ) -> BoxFuture<'_, Result<Option<crate::clients::social::Tokens>, StoreError>>;

    fn save_tokens(
        &self,
        account: String,
        tokens: crate::clients::social::Tokens,
        now: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
}
