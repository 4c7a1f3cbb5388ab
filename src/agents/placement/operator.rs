//! What operators and `agent list` ask of the placement: may this node act on an agent,
//! and which node holds each one.

use std::collections::BTreeMap;

use super::{agent_lease, Placement, Unit};
use crate::bus::clock::millis;
use crate::store::{LeaseRecord, Millis, StoreError};

/// Where an agent lives, for `agent list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    /// Its control API, when the node announced it.
    pub addr: Option<String>,
    /// The lease lapsed: the node is probably gone and another will take over.
    pub lapsed: bool,
    /// When the node took the lease.
    pub since: Millis,
}

impl Placement {
    /// Holds agent `name` for an operator's `start`/`stop`/`restart` here: `Ok` when this
    /// node holds its lease (taking it if it is free or lapsed) or the agent is not placed;
    /// otherwise the refusal names the node that runs it.
    pub async fn claim_agent(&self, name: &str) -> Result<(), String> {
        let lease = agent_lease(name);
        if !self.inner.units.borrow().contains_key(&lease) || self.holds(&lease) {
            return Ok(());
        }
        let now = self.inner.clock.now();
        let until = now + millis(self.inner.lease);
        let got = self
            .inner
            .store
            .acquire_leases(vec![lease.clone()], self.inner.node.clone(), now, until)
            .await
            .map_err(|e| format!("cannot take the lease of agent '{name}': {e}"))?;
        if !got.is_empty() {
            self.inner.held.borrow_mut().insert(lease);
            return Ok(());
        }
        let holders = self.holders().await.unwrap_or_default();
        Err(match holders.get(name) {
            Some(h) => format!(
                "agent '{name}' runs on node {}{}: act on it there",
                h.node,
                h.addr
                    .as_ref()
                    .map(|a| format!(" (control API {a})"))
                    .unwrap_or_default()
            ),
            None => format!("agent '{name}' runs on another node"),
        })
    }

    /// Whether agent `name` is placed and starts where its lease is taken.
    pub fn autostart(&self, name: &str) -> bool {
        matches!(
            self.inner.units.borrow().get(&agent_lease(name)),
            Some(Unit::Agent {
                autostart: true,
                ..
            })
        )
    }

    /// Whether this node holds `lease` now.
    pub fn holds(&self, lease: &str) -> bool {
        self.inner.held.borrow().contains(lease)
    }

    /// The node holding each placed agent's lease, by agent name.
    pub async fn holders(&self) -> Result<BTreeMap<String, Holder>, StoreError> {
        let leases = self.inner.store.leases().await?;
        let addrs: BTreeMap<String, String> = self
            .inner
            .store
            .nodes()
            .await?
            .into_iter()
            .map(|n| (n.node, n.addr))
            .collect();
        let now = self.inner.clock.now();
        Ok(leases
            .into_iter()
            .filter_map(|l: LeaseRecord| {
                let name = l.name.strip_prefix("agent:")?.to_string();
                let holder = Holder {
                    addr: addrs.get(&l.node).cloned(),
                    lapsed: l.until <= now,
                    since: l.acquired,
                    node: l.node,
                };
                Some((name, holder))
            })
            .collect())
    }
}
