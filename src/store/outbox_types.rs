//! The Discord outbox's store: alerts, summaries and `discord.send` posts wait in the
//! database until Discord has taken them, so a dropped connection, a restart or a dead
//! node loses none ([`crate::clients::discord`] delivers them).
//!
//! Several nodes may deliver from one database. A deliverer claims a batch under a lease
//! before posting it, and only while nobody else holds a live lease: a post goes out once
//! (a second claimer gets nothing until the batch is settled or its lease lapsed), and in
//! order (posts are claimed oldest first, and a batch after the held one waits for it).
//! Peeking and deleting afterwards, as a single node could, would let two nodes post the
//! same row.

use futures_util::future::BoxFuture;

use super::{Millis, StoreError};

/// One queued post.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// `channel:<id>` or `webhook_env:<VAR>` (the webhook URL stays in the environment).
    pub target: String,
    pub body: serde_json::Value,
    pub created_at: Millis,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// Posts claimed together, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxClaim {
    pub rows: Vec<OutboxRow>,
    /// The claim's end. Settling a row passes it back: it says the claim is still this
    /// deliverer's (a later claim of the same row always ends later, since it is taken
    /// after this one lapsed).
    pub lease_until: Millis,
}

/// Durable Discord outbox. Each method is one atomic step, committed before it resolves.
pub trait DiscordOutboxStore: Send + Sync + 'static {
    /// Queues a post; returns its id once it is stored.
    fn outbox_push(
        &self,
        target: String,
        body: serde_json::Value,
        now: Millis,
    ) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Claims the oldest `limit` posts until `lease_until`, unless another claim is live
    /// (then nothing): a batch whose lease lapsed (its deliverer died) is claimed again.
    fn outbox_claim(
        &self,
        limit: usize,
        now: Millis,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<OutboxClaim, StoreError>>;

    /// Discord took the post: it leaves the outbox. Returns false, changing nothing, when
    /// the claim is no longer this one (the lease lapsed and someone else claimed it).
    fn outbox_done(&self, id: i64, lease_until: Millis) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// A failed attempt: counted with its error, and the post is free to claim again.
    /// Returns false when the claim is no longer this one.
    fn outbox_failed(
        &self,
        id: i64,
        lease_until: Millis,
        error: String,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Gives back claimed posts that were not tried (after a failure, to keep the order),
    /// so they can be claimed again at once.
    fn outbox_release(
        &self,
        ids: Vec<i64>,
        lease_until: Millis,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every queued post, claimed or not, oldest first (for status and tests).
    fn outbox_pending(&self, limit: usize) -> BoxFuture<'_, Result<Vec<OutboxRow>, StoreError>>;
}
