//! The bus's and scripts' durable state: [`BusStore`] and [`KvStore`].

use futures_util::future::BoxFuture;

use super::*;

/// Durable state of the message bus. Every method is one atomic step: it either happens
/// completely (and is committed before the future resolves) or not at all.
///
/// Semantics the bus relies on:
/// - `enqueue` stores all messages or none, and returns their ids in order. Ids increase
///   with insertion, which is what FIFO means within a channel and priority.
/// - `claim` hands out up to `max` visible messages of one channel, highest priority first
///   (lowest [`Priority`] number), then lowest id. A message is visible when it is `queued`
///   and its backoff has passed, or `delivered` and its visibility deadline has passed (its
///   consumer died): that redelivers it. Each delivery counts one attempt. Messages whose
///   ttl passed become `expired`; messages out of attempts become `dead`.
/// - `ack`/`nack` only apply to the current attempt of a `delivered` message; anything else
///   reports [`SettleOutcome::Stale`] and changes nothing.
/// - pruning never removes a message that is not final and acked or expired.
pub trait BusStore: Send + Sync + 'static {
    /// Stores new messages (all or none) and returns their ids.
    fn enqueue(
        &self,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, Result<Vec<MessageId>, StoreError>>;

    /// Claims up to `max` visible messages of `channel`, each under a visibility deadline of
    /// `now + visibility_ms`.
    fn claim(
        &self,
        channel: &str,
        max: usize,
        now: Millis,
        visibility_ms: i64,
    ) -> BoxFuture<'_, Result<Claimed, StoreError>>;

    /// Acknowledges deliveries (one result per input, same order).
    fn ack(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>>;

    /// Rejects one delivery. `retry_at = Some(t)`: queue it again, visible from `t`, unless
    /// it is out of attempts (then `dead`). `None`: it will never succeed, mark it `failed`.
    fn nack(
        &self,
        delivery: DeliveryRef,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>>;

    /// Undoes the claim of deliveries nobody started on (prefetched by a consumer that is
    /// stopping): each current one is `queued` again, visible at `now`, and its attempt is
    /// not counted. One result per input, same order.
    fn release(
        &self,
        deliveries: Vec<DeliveryRef>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<SettleOutcome>, StoreError>>;

    /// Moves the visibility deadline of a current delivery (a consumer that needs longer).
    fn extend(
        &self,
        delivery: DeliveryRef,
        deadline: Millis,
    ) -> BoxFuture<'_, Result<SettleOutcome, StoreError>>;

    /// Current status of each id that exists.
    fn statuses(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, MessageStatus)>, StoreError>>;

    /// Remembers an agent inbox channel (`agent:<name>`) so `broadcast` reaches it.
    fn register_inbox(&self, channel: String, now: Millis)
        -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every known agent inbox channel, sorted.
    fn inboxes(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// History records matching `query`, see [`HistoryQuery`] for order and paging.
    fn history(&self, query: HistoryQuery)
        -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>>;

    /// Dead letters (`failed` and `dead`), oldest first.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<HistoryRecord>, StoreError>>;

    /// Queues dead letters again with fresh attempts: one id, or all when `id` is `None`.
    /// Returns the ids requeued, with the channel of each.
    fn retry_dead(
        &self,
        id: Option<MessageId>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<(MessageId, String)>, StoreError>>;

    /// Deletes every dead letter; returns how many.
    fn purge_dead(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Queue depths and totals.
    fn stats(&self) -> BoxFuture<'_, Result<BusStats, StoreError>>;

    /// Marks queued messages whose ttl passed as `expired`, then deletes final messages
    /// (`acked`, `expired`) created before `older_than` and beyond the newest `keep_count`.
    /// Returns (expired, deleted).
    fn prune(
        &self,
        now: Millis,
        older_than: Millis,
        keep_count: u64,
    ) -> BoxFuture<'_, Result<(u64, u64), StoreError>>;

    /// Of `channels`, those holding a message a claim at `now` would look at (visible
    /// queued ones, and lapsed deliveries). One query for every channel a process waits
    /// on, instead of one claim per waiting consumer.
    fn ready_channels(
        &self,
        channels: Vec<String>,
        now: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// A live feed of what every process sharing this store does on the bus (enqueues,
    /// published messages), when the store can push it (PostgreSQL's `LISTEN/NOTIFY`).
    /// `None`: it cannot, and the bus re-checks waiting channels on a timer instead (the
    /// embedded store, whose other processes are occasional CLI commands). The feed ends
    /// when its connection drops; the caller opens a new one.
    fn bus_signals(&self) -> Option<BoxFuture<'_, Result<BusSignals, StoreError>>> {
        None
    }

    /// Hands published (non-durable) messages, serialized, to the other processes'
    /// [`bus_signals`](BusStore::bus_signals) feeds. Best effort, as publishing is; a store
    /// without a feed has nobody to hand them to.
    fn publish_remote(&self, messages: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = messages;
        Box::pin(async { Ok(()) })
    }
}

/// Small durable key/value state, one namespace per script or agent. Values are JSON.
pub trait KvStore: Send + Sync + 'static {
    fn kv_get<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>>;

    fn kv_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Returns whether the key existed.
    fn kv_delete<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}
