//! Placement: which `dreamos serve` node runs each configured agent (and the Discord bot)
//! when several share one database.
//!
//! Each unit has a lease in the store (`agent:<name>`, `discord`). A node runs a unit only
//! while it holds its lease, so a unit runs on exactly one node. Every third of
//! `[daemon] lease` the node renews what it holds, stops at once whatever another node took
//! (it stalled past its lease), and acquires every lease that is free or lapsed, starting
//! those units. A node killed with SIGKILL stops renewing, so its leases lapse and the
//! other nodes start its units within one lease plus one renewal period. A node that stops
//! gracefully stops its units first and then releases their leases, so another node takes
//! them over at its next round instead of waiting for them to lapse.
//!
//! A node that cannot reach the database keeps its units until its leases would lapse
//! before the next renewal, then stops them: by the time another node may take them over,
//! this one has let them go.
//!
//! A node holds the lease of every configured agent it can get, `autostart` or not: the
//! lease says where the agent lives. On acquiring it, the node starts `autostart` agents
//! (as a daemon does at start); an operator starts the others there. `agent stop` keeps
//! the lease, so a stopped agent stays stopped rather than being started elsewhere. Every
//! other way to start an agent (a `control = true` agent's `agent.start`, the REPL) passes
//! the supervisor's guard, which refuses agents whose lease this node does not hold. On
//! SQLite (one node) the daemon simply gets every lease.
//!
//! The first node to start takes every free lease; others take over what a dead node held
//! and, with `[daemon] balance` (the default), receive agents from nodes that hold more
//! (`balance.rs`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::Notify;

use super::{AgentConfig, Supervisor, SupervisorError};
use crate::bus::clock::{millis, Clock};
use crate::store::{LeaseStore, Millis, NodeRecord};

const LOG: &str = "dreamos::placement";

/// Something other than an agent that runs on one node at a time (the Discord bot).
pub trait Service {
    /// This node just acquired the service's lease.
    fn start(&self) -> LocalBoxFuture<'_, ()>;
    /// This node lost the lease or is stopping.
    fn stop(&self) -> LocalBoxFuture<'_, ()>;
}

enum Unit {
    Agent { name: String, autostart: bool },
    Service(Rc<dyn Service>),
}

/// The lease name of an agent.
pub fn agent_lease(name: &str) -> String {
    format!("agent:{name}")
}

/// Cheap to clone; all clones are the same placement. Lives on the daemon's `LocalSet`.
#[derive(Clone)]
pub struct Placement {
    inner: Rc<Inner>,
}

struct Inner {
    store: Arc<dyn LeaseStore>,
    supervisor: Supervisor,
    node: String,
    lease: Duration,
    clock: Arc<Clock>,
    started: Millis,
    units: RefCell<BTreeMap<String, Unit>>,
    /// Leases this node holds (and whose units it runs or may run).
    held: RefCell<BTreeSet<String>>,
    /// Until when the last successful renewal or acquisition holds them.
    held_until: Cell<Millis>,
    stopping: Cell<bool>,
    /// `[daemon] balance`; see `balance.rs`.
    balance: Cell<bool>,
    /// Leases this node handed to another node (forgotten when they come back).
    handed: RefCell<BTreeSet<String>>,
    /// Leases that came back from a handover: kept here until `members` changes.
    unmovable: RefCell<BTreeSet<String>>,
    /// The live nodes at the last balancing step.
    members: RefCell<BTreeSet<String>>,
    wake: Notify,
    done: Notify,
    running: Cell<bool>,
}

impl Inner {
    /// A placed agent starts only on the node holding its lease.
    fn may_start(&self, name: &str) -> Result<(), String> {
        let lease = agent_lease(name);
        if !self.units.borrow().contains_key(&lease) || self.held.borrow().contains(&lease) {
            return Ok(());
        }
        Err(format!(
            "agent '{name}' is placed on another node: node {} does not hold its lease \
             (`dreamos agent list` shows where it runs)",
            self.node
        ))
    }
}

impl Placement {
    /// A placement for node `node` holding leases for `lease`; timestamps come from the
    /// supervisor's clock (tokio's, so paused tests move them).
    pub fn new(
        store: Arc<dyn LeaseStore>,
        supervisor: Supervisor,
        node: String,
        lease: Duration,
    ) -> Placement {
        let clock = supervisor.recorder().clock.clone();
        let started = clock.now();
        let placement = Placement {
            inner: Rc::new(Inner {
                store,
                supervisor,
                node,
                lease,
                clock,
                started,
                units: RefCell::default(),
                held: RefCell::default(),
                held_until: Cell::new(0),
                stopping: Cell::new(false),
                balance: Cell::new(false),
                handed: RefCell::default(),
                unmovable: RefCell::default(),
                members: RefCell::default(),
                wake: Notify::new(),
                done: Notify::new(),
                running: Cell::new(false),
            }),
        };
        // Weak: the supervisor must not keep the placement (which holds it) alive.
        let weak = Rc::downgrade(&placement.inner);
        placement
            .inner
            .supervisor
            .set_guard(Rc::new(move |name: &str| match weak.upgrade() {
                Some(inner) => inner.may_start(name),
                None => Ok(()),
            }));
        placement
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Places every configured agent (already added to the supervisor).
    pub fn add_agents(&self, agents: &[AgentConfig]) {
        let mut units = self.inner.units.borrow_mut();
        for a in agents {
            let unit = Unit::Agent {
                name: a.name.clone(),
                autostart: a.autostart,
            };
            units.insert(agent_lease(&a.name), unit);
        }
    }

    /// Places a service under lease `lease`; a running placement tries to take it at once.
    pub fn add_service(&self, lease: &str, service: Rc<dyn Service>) {
        self.inner
            .units
            .borrow_mut()
            .insert(lease.to_string(), Unit::Service(service));
        self.inner.wake.notify_one();
    }

    /// Takes what it can now, then keeps renewing and taking over in the background until
    /// [`shutdown`](Placement::shutdown).
    pub async fn start(&self) {
        self.round().await;
        self.inner.running.set(true);
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let every = me.inner.lease / 3;
            while !me.inner.stopping.get() {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = me.inner.wake.notified() => {}
                }
                if !me.inner.stopping.get() {
                    me.round().await;
                }
            }
            me.inner.running.set(false);
            me.inner.done.notify_waiters();
        });
    }

    /// Records this node and where its control API listens, for `agent list` elsewhere.
    pub async fn announce(&self, addr: &str) {
        let now = self.inner.clock.now();
        let record = NodeRecord {
            node: self.inner.node.clone(),
            addr: addr.to_string(),
            pid: std::process::id(),
            started: self.inner.started,
            last_seen: now,
            units: self.inner.units.borrow().keys().cloned().collect(),
        };
        if let Err(e) = self.inner.store.put_node(record).await {
            tracing::warn!(target: LOG, "cannot record this node: {e}");
        }
    }

    /// One renewal and takeover step.
    async fn round(&self) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let until = now + millis(inner.lease);
        let renewed = match inner
            .store
            .renew_leases(inner.node.clone(), now, until)
            .await
        {
            Ok(names) => {
                inner.held_until.set(until);
                names
            }
            Err(e) => {
                tracing::warn!(target: LOG, "cannot renew leases: {e}");
                // Let go before the leases lapse, so no other node starts these units
                // while they still run here.
                if inner.held_until.get() - now <= millis(inner.lease / 3) {
                    let all: Vec<String> = std::mem::take(&mut *inner.held.borrow_mut())
                        .into_iter()
                        .collect();
                    self.stop_units(&all, "its lease could not be renewed")
                        .await;
                }
                return;
            }
        };
        let (renewed, stray): (Vec<String>, Vec<String>) = renewed
            .into_iter()
            .partition(|n| inner.units.borrow().contains_key(n));
        if !stray.is_empty() {
            // Held under this node's name by an earlier run whose configuration had them.
            let _ = inner.store.release_leases(inner.node.clone(), stray).await;
        }
        let before = inner.held.borrow().clone();
        let lost: Vec<String> = before
            .iter()
            .filter(|n| renewed.binary_search(n).is_err())
            .cloned()
            .collect();
        if !lost.is_empty() {
            tracing::warn!(target: LOG, "leases taken by another node: {}", lost.join(", "));
            *inner.held.borrow_mut() = renewed.iter().cloned().collect();
            self.stop_units(&lost, "another node took it over").await;
        }
        let wanted: Vec<String> = inner
            .units
            .borrow()
            .keys()
            .filter(|n| renewed.binary_search(n).is_err())
            .cloned()
            .collect();
        let acquired = if wanted.is_empty() || inner.stopping.get() {
            Vec::new()
        } else {
            match inner
                .store
                .acquire_leases(wanted, inner.node.clone(), now, until)
                .await
            {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(target: LOG, "cannot acquire leases: {e}");
                    Vec::new()
                }
            }
        };
        // Renewed leases this node had let go of (the database was unreachable) start
        // again, as do those just acquired.
        let fresh: Vec<String> = renewed
            .iter()
            .chain(&acquired)
            .filter(|n| !before.contains(*n))
            .cloned()
            .collect();
        inner.held.borrow_mut().extend(fresh.iter().cloned());
        if !fresh.is_empty() {
            tracing::info!(target: LOG, node = %inner.node, "took {}", fresh.join(", "));
            self.start_units(&fresh).await;
        }
        self.note_returns(&acquired);
        if inner.balance.get() && !inner.stopping.get() {
            self.balance().await;
        }
    }

    async fn start_units(&self, leases: &[String]) {
        for lease in leases {
            let unit = match self.inner.units.borrow().get(lease) {
                Some(Unit::Agent { name, autostart }) => autostart.then(|| Ok(name.clone())),
                Some(Unit::Service(s)) => Some(Err(s.clone())),
                None => None,
            };
            match unit {
                Some(Ok(name)) => {
                    let reason = format!("placed on node {}", self.inner.node);
                    match self.inner.supervisor.start(&name, &reason) {
                        Ok(()) | Err(SupervisorError::AlreadyRunning { .. }) => {}
                        Err(e) => tracing::warn!(target: LOG, agent = %name, "cannot start: {e}"),
                    }
                }
                Some(Err(service)) => service.start().await,
                None => {}
            }
        }
    }

    /// Stops the units of `leases` here, all at once, and waits for them.
    async fn stop_units(&self, leases: &[String], why: &str) {
        let mut stops: Vec<LocalBoxFuture<'_, ()>> = Vec::new();
        for lease in leases {
            match self.inner.units.borrow().get(lease) {
                Some(Unit::Agent { name, .. }) => {
                    let (sup, name) = (self.inner.supervisor.clone(), name.clone());
                    let reason = format!("{why} (lease {lease})");
                    stops.push(Box::pin(async move {
                        let _ = sup.stop(&name, &reason).await;
                    }));
                }
                Some(Unit::Service(s)) => {
                    let s = s.clone();
                    stops.push(Box::pin(async move { s.stop().await }));
                }
                None => {}
            }
        }
        futures_util::future::join_all(stops).await;
    }

    /// Stops the background renewals (the units keep running; the caller stops them).
    pub async fn stop_renewing(&self) {
        self.inner.stopping.set(true);
        if self.inner.running.get() {
            let done = self.inner.done.notified();
            self.inner.wake.notify_one();
            done.await;
        }
    }

    /// Stops services, releases every lease and forgets this node: other nodes take over
    /// at their next round. Call after the agents stopped.
    pub async fn release(&self) {
        self.stop_renewing().await;
        let held: Vec<String> = std::mem::take(&mut *self.inner.held.borrow_mut())
            .into_iter()
            .collect();
        let services: Vec<String> = held
            .iter()
            .filter(|l| matches!(self.inner.units.borrow().get(*l), Some(Unit::Service(_))))
            .cloned()
            .collect();
        self.stop_units(&services, "node stopping").await;
        let node = self.inner.node.clone();
        if let Err(e) = self.inner.store.release_leases(node.clone(), held).await {
            tracing::warn!(target: LOG, "cannot release leases (they lapse instead): {e}");
        }
        if let Err(e) = self.inner.store.remove_node(node).await {
            tracing::warn!(target: LOG, "cannot remove this node's record: {e}");
        }
    }
}

mod balance;
mod operator;
#[cfg(test)]
mod tests;

pub use operator::Holder;
