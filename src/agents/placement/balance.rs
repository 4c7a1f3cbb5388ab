//! Balancing: spreading agents over the live nodes (`[daemon] balance`).
//!
//! The first node to start takes every free lease, so without balancing a node added
//! later only stands by. After each renewal round, a node hands each of its running
//! `autostart` agents to the least loaded live node configured with that agent (every
//! node records the leases it may take), while it holds more than one agent above that
//! node. A handover stops the agent here first and then moves its lease in one conditional
//! update (still held by this node), so the agent never runs on two nodes; the receiving
//! node finds the lease at its next renewal and starts the agent, within a third of a
//! lease. Messages wait in the agent's durable inbox meanwhile, and its `self.state` is in
//! the store.
//!
//! Load is the number of agent leases a node holds, running or stopped. Should a handed
//! lease come back as a free lease anyway (its receiver's configuration changed), it stays
//! here, unmovable, until the set of live nodes changes. Stopped agents and agents started
//! by hand (`autostart = false`) stay where an operator left them.
//!
//! A node is live while its last renewal is younger than a lease; a node that stopped
//! removed its record, so only announced, renewing nodes receive agents.

use std::collections::{BTreeMap, BTreeSet};

use super::{agent_lease, Placement, Unit, LOG};
use crate::agents::AgentState;
use crate::bus::clock::millis;
use crate::store::{LeaseRecord, Millis, NodeRecord};

impl Placement {
    /// Whether this node balances (the daemon turns it on from `[daemon] balance`).
    pub fn set_balance(&self, on: bool) {
        self.inner.balance.set(on);
    }

    /// Leases handed away that came back as free leases (their taker is not configured with
    /// the agent) stay here until the nodes change.
    pub(super) fn note_returns(&self, acquired: &[String]) {
        let mut handed = self.inner.handed.borrow_mut();
        for lease in acquired {
            if handed.remove(lease) {
                self.inner.unmovable.borrow_mut().insert(lease.clone());
            }
        }
    }

    /// One balancing step after a renewal round.
    pub(super) async fn balance(&self) {
        let inner = &self.inner;
        let store = &inner.store;
        let (nodes, leases) = match (store.nodes().await, store.leases().await) {
            (Ok(nodes), Ok(leases)) => (nodes, leases),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(target: LOG, "cannot read the nodes to balance: {e}");
                return;
            }
        };
        let now = inner.clock.now();
        let live = self.live_nodes(&nodes, now);
        if *inner.members.borrow() != live {
            inner.unmovable.borrow_mut().clear();
            *inner.members.borrow_mut() = live.clone();
        }
        if live.len() < 2 {
            return;
        }
        let plan = self.plan(self.load(&live, &leases, now), &nodes, &live);
        if plan.is_empty() {
            return;
        }
        // Stopped here first (all at once), so none runs on two nodes.
        let stopping: Vec<String> = plan.iter().map(|(lease, _)| lease.clone()).collect();
        self.stop_units(&stopping, "handed to another node to balance")
            .await;
        for (lease, to) in plan {
            self.hand_over(&lease, &to).await;
        }
    }

    /// Which movable leases go to which node: each to the least loaded live node configured
    /// with it, while this node holds more than one above that node.
    fn plan(
        &self,
        mut load: BTreeMap<String, usize>,
        nodes: &[NodeRecord],
        live: &BTreeSet<String>,
    ) -> Vec<(String, String)> {
        let me = self.inner.node.clone();
        let mut plan = Vec::new();
        for lease in self.movable().into_iter().rev() {
            let mine = load.get(&me).copied().unwrap_or(0);
            let to = nodes
                .iter()
                .filter(|n| n.node != me && live.contains(&n.node))
                .filter(|n| n.units.binary_search(&lease).is_ok())
                .map(|n| (load.get(&n.node).copied().unwrap_or(0), n.node.clone()))
                .min();
            let Some((theirs, to)) = to else { continue };
            if mine <= theirs + 1 {
                continue;
            }
            load.insert(me.clone(), mine - 1);
            load.insert(to.clone(), theirs + 1);
            plan.push((lease, to));
        }
        plan
    }

    /// Moves the lease of a unit stopped here to `to`; when the store fails, the unit starts
    /// here again.
    async fn hand_over(&self, lease: &str, to: &str) {
        let inner = &self.inner;
        inner.held.borrow_mut().remove(lease);
        let now = inner.clock.now();
        let until = now + millis(inner.lease);
        match inner
            .store
            .hand_over_lease(lease.into(), inner.node.clone(), to.into(), now, until)
            .await
        {
            Ok(true) => {
                tracing::info!(target: LOG, node = %inner.node, "handed {lease} to node {to}");
                inner.handed.borrow_mut().insert(lease.to_string());
            }
            // Another node took it after it lapsed: not ours either way.
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(target: LOG, "cannot hand {lease} to node {to}: {e}");
                inner.held.borrow_mut().insert(lease.to_string());
                self.start_units(&[lease.to_string()]).await;
            }
        }
    }

    /// Nodes whose last renewal is younger than a lease, this one included.
    fn live_nodes(&self, nodes: &[NodeRecord], now: Millis) -> BTreeSet<String> {
        let lease = millis(self.inner.lease);
        nodes
            .iter()
            .filter(|n| n.last_seen + lease > now)
            .map(|n| n.node.clone())
            .chain(std::iter::once(self.inner.node.clone()))
            .collect()
    }

    /// Agents each live node holds (whatever its configuration); this node's own count is
    /// what it holds now.
    fn load(
        &self,
        live: &BTreeSet<String>,
        leases: &[LeaseRecord],
        now: Millis,
    ) -> BTreeMap<String, usize> {
        let is_agent = |lease: &str| lease.starts_with(&agent_lease(""));
        let mut load: BTreeMap<String, usize> = live.iter().map(|n| (n.clone(), 0)).collect();
        for l in leases.iter().filter(|l| l.until > now && is_agent(&l.name)) {
            if let Some(count) = load.get_mut(&l.node) {
                *count += 1;
            }
        }
        let mine = self
            .inner
            .held
            .borrow()
            .iter()
            .filter(|l| is_agent(l))
            .count();
        load.insert(self.inner.node.clone(), mine);
        load
    }

    /// Leases this node may hand over, in name order: those of running `autostart` agents
    /// that have not come back from a handover.
    fn movable(&self) -> Vec<String> {
        let inner = &self.inner;
        let units = inner.units.borrow();
        let unmovable = inner.unmovable.borrow();
        inner
            .held
            .borrow()
            .iter()
            .filter(|lease| !unmovable.contains(*lease))
            .filter_map(|lease| match units.get(lease) {
                Some(Unit::Agent {
                    name,
                    autostart: true,
                }) => Some((lease.clone(), name.clone())),
                _ => None,
            })
            .filter(|(_, name)| {
                inner
                    .supervisor
                    .status(name)
                    .is_ok_and(|s| s.state == AgentState::Running)
            })
            .map(|(lease, _)| lease)
            .collect()
    }
}
