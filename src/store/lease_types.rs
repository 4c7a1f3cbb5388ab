//! Leases: which node is responsible for what (an agent, the Discord bot) when several
//! `dreamos serve` nodes share one database, and the nodes themselves. Plain data and one
//! trait, shared by every backend; [`crate::agents::placement`] gives leases their meaning.
//!
//! A lease is one row: a name (`agent:scout`), the node holding it and until when. A node
//! holds it while `now < until`; after that it has lapsed and any node may take it. Holders
//! renew well before the end, so a lease only lapses when its node died (or lost the
//! database). Times come from the caller's clock, so nodes' clocks must agree to well within
//! a lease (NTP does that).

use futures_util::future::BoxFuture;
use serde::Serialize;

use super::{Millis, StoreError};

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    pub name: String,
    pub node: String,
    /// Held while `now < until`.
    pub until: Millis,
    /// When `node` took it (renewals keep this).
    pub acquired: Millis,
}

/// One `dreamos serve` node, as it announced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    pub node: String,
    /// Where its control API listens (`127.0.0.1:7878`).
    pub addr: String,
    pub pid: u32,
    pub started: Millis,
    /// Its last renewal.
    pub last_seen: Millis,
    /// The leases it is configured to take (`agent:scout`, ...), sorted.
    pub units: Vec<String>,
}

/// [`NodeRecord::units`] from its stored form, one name a line.
pub(crate) fn split_units(stored: &str) -> Vec<String> {
    stored.lines().map(str::to_string).collect()
}

/// Durable leases and node records. Each method is one atomic step, committed before it
/// resolves; two nodes calling at once never both get the same lease.
pub trait LeaseStore: Send + Sync + 'static {
    /// Gives `node` every lease of `names` that is free, lapsed (`until <= now`) or already
    /// its own, until `until`; returns the names it now holds, in input order.
    fn acquire_leases(
        &self,
        names: Vec<String>,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// Extends every lease `node` holds to `until` and marks the node seen at `now`;
    /// returns the names it still holds (sorted). A lease another node took after it
    /// lapsed is not among them.
    fn renew_leases(
        &self,
        node: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// Gives up the leases of `names` that `node` holds, so another node may take them at
    /// once; returns how many it held.
    fn release_leases(
        &self,
        node: String,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Hands lease `name` from `from` to `to` until `until`, as if `to` had acquired it at
    /// `now`; `to` finds it at its next renewal. False (nothing changed) when `from` no
    /// longer holds it.
    fn hand_over_lease(
        &self,
        name: String,
        from: String,
        to: String,
        now: Millis,
        until: Millis,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Every lease, lapsed ones included, by name.
    fn leases(&self) -> BoxFuture<'_, Result<Vec<LeaseRecord>, StoreError>>;

    /// Records (or replaces) a node; forgets nodes not seen for a day.
    fn put_node(&self, node: NodeRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every recorded node, by name.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeRecord>, StoreError>>;

    /// Forgets a node that stopped (its leases are released separately).
    fn remove_node(&self, node: String) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// How long a node record outlives its last renewal before `put_node` forgets it.
pub const FORGET_NODES_AFTER: Millis = 24 * 3600 * 1000;
