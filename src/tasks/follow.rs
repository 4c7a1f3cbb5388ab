//! What this process shares per store, and the events other nodes commit.
//!
//! Every service over one store in this process shares one [`Node`]: the wake-up for
//! waiting claims, and, for a store several nodes share (PostgreSQL), a tail of the
//! store's event log. The tail reads the transitions committed after the last one it saw,
//! woken by the store's notifications (each node announces its commits, see
//! `TaskStore::listen_tasks`) and every [`FALLBACK`] regardless, and publishes those this
//! process has not published itself on `tasks.events`, and wakes waiting claims when
//! one made a task ready. So `tasks.watch`, the dashboard and waiting claims on every
//! node hear what any node did, and this node's own events still go out at once, once.
//!
//! Event numbers are drawn before commit, so a transaction still open when the tail reads
//! leaves a gap that fills later: the tail remembers such gaps and looks them up again at
//! its next wake-ups, until [`GAP_PATIENCE`] has passed (a rolled-back transaction leaves
//! a gap that never fills).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Status, TaskEvent, TOPIC};
use crate::bus::Bus;
use crate::store::TaskStore;

/// The tail looks at the log this often even without a notification (one can be lost
/// with a dropped connection; the tail then also listens again).
const FALLBACK: Duration = Duration::from_secs(5);
/// Events read per look.
const BATCH: usize = 1000;
/// How long a gap in the event numbers is looked for (wall-clock time).
const GAP_PATIENCE: Duration = Duration::from_secs(30);
/// Gaps remembered at most; a wider jump (a bulk insert rolled back) is not chased.
const MAX_GAPS: usize = 10_000;
/// Event numbers remembered as published, so neither path publishes one twice.
const REMEMBERED: usize = 100_000;

/// What services over one store share in this process.
pub(super) struct Node {
    /// Woken whenever a transition to `ready` commits, here or (with a tail) elsewhere.
    pub(super) ready: Notify,
    published: Mutex<Published>,
    tail: Mutex<Option<tokio::task::AbortHandle>>,
    /// True once the tail knows where it starts (or there is nothing to follow): what
    /// other nodes commit from then on reaches this process.
    following: tokio::sync::watch::Sender<bool>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(Some(tail)) = self.tail.lock().map(|mut t| t.take()) {
            tail.abort();
        }
    }
}

#[derive(Default)]
struct Published {
    seqs: HashSet<i64>,
    order: VecDeque<i64>,
}

impl Node {
    /// Returns once what other nodes commit from now on reaches this process.
    pub(super) async fn following(&self) {
        let mut started = self.following.subscribe();
        let _ = started.wait_for(|yes| *yes).await;
    }

    /// Whether `seq` was not published yet; it counts as published from now on.
    pub(super) fn first_time(&self, seq: i64) -> bool {
        let Ok(mut p) = self.published.lock() else {
            return true;
        };
        if !p.seqs.insert(seq) {
            return false;
        }
        p.order.push_back(seq);
        if p.order.len() > REMEMBERED {
            if let Some(old) = p.order.pop_front() {
                p.seqs.remove(&old);
            }
        }
        true
    }
}

/// The node of `store` in this process, created (and its tail started, publishing on
/// `bus`) by the first service over it.
pub(super) fn node_of(store: &Arc<dyn TaskStore>, bus: &Bus) -> Arc<Node> {
    static NODES: Mutex<Vec<(usize, Weak<Node>)>> = Mutex::new(Vec::new());
    // The store's address names it while it lives, and it lives as long as any service
    // that holds this node.
    let key = Arc::as_ptr(store) as *const () as usize;
    let fresh = || {
        Arc::new(Node {
            ready: Notify::new(),
            published: Mutex::default(),
            tail: Mutex::new(None),
            following: tokio::sync::watch::Sender::new(false),
        })
    };
    let Ok(mut nodes) = NODES.lock() else {
        return fresh();
    };
    nodes.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(node) = nodes
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, weak)| weak.upgrade())
    {
        return node;
    }
    let node = fresh();
    nodes.push((key, Arc::downgrade(&node)));
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let tail = rt.spawn(tail(Arc::downgrade(&node), store.clone(), bus.clone()));
            if let Ok(mut slot) = node.tail.lock() {
                *slot = Some(tail.abort_handle());
            }
        }
        // No runtime, no tail: this service hears only its own process.
        Err(_) => {
            node.following.send_replace(true);
        }
    }
    node
}

/// Follows the event log of `store` for as long as `node` lives; returns at once for a
/// store that only this process writes.
async fn tail(node: Weak<Node>, store: Arc<dyn TaskStore>, bus: Bus) {
    let started = |node: &Weak<Node>| {
        if let Some(node) = node.upgrade() {
            node.following.send_replace(true);
        }
    };
    let mut listener = match store.listen_tasks().await {
        Ok(Some(listener)) => Some(listener),
        Ok(None) => return started(&node),
        Err(e) => {
            tracing::warn!(target: "dreamos::tasks", "cannot listen for other nodes' task events: {e}");
            None
        }
    };
    // Listening before reading where to start: no commit falls between the two.
    let mut cursor = match store.last_task_event().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(target: "dreamos::tasks", "cannot follow other nodes' task events: {e}");
            return started(&node);
        }
    };
    started(&node);
    let mut gaps: BTreeMap<i64, std::time::Instant> = BTreeMap::new();
    loop {
        let Some(node) = node.upgrade() else { return };
        if let Err(e) = catch_up(&node, &*store, &bus, &mut cursor, &mut gaps).await {
            tracing::warn!(target: "dreamos::tasks", "cannot read other nodes' task events: {e}");
        }
        drop(node);
        match &mut listener {
            Some(l) => {
                tokio::select! {
                    woken = l.recv() => if woken.is_none() { listener = None },
                    _ = tokio::time::sleep(FALLBACK) => {}
                }
            }
            None => {
                tokio::time::sleep(FALLBACK).await;
                listener = store.listen_tasks().await.ok().flatten();
            }
        }
    }
}

/// Reads and delivers everything after `cursor`, then what gaps got filled.
async fn catch_up(
    node: &Node,
    store: &dyn TaskStore,
    bus: &Bus,
    cursor: &mut i64,
    gaps: &mut BTreeMap<i64, std::time::Instant>,
) -> Result<(), crate::store::StoreError> {
    let now = std::time::Instant::now();
    loop {
        let events = store.task_events(*cursor, BATCH, None).await?;
        for e in &events {
            let missing = (*cursor + 1)..e.seq;
            if missing.end - missing.start <= (MAX_GAPS - gaps.len().min(MAX_GAPS)) as i64 {
                gaps.extend(missing.map(|seq| (seq, now)));
            }
            *cursor = e.seq;
            deliver(node, bus, e);
        }
        if events.len() < BATCH {
            break;
        }
    }
    gaps.retain(|_, since| now.duration_since(*since) < GAP_PATIENCE);
    if !gaps.is_empty() {
        let found = store.task_events_at(gaps.keys().copied().collect()).await?;
        for e in &found {
            gaps.remove(&e.seq);
            deliver(node, bus, e);
        }
    }
    Ok(())
}

fn deliver(node: &Node, bus: &Bus, event: &TaskEvent) {
    if !node.first_time(event.seq) {
        return;
    }
    if event.new == Status::Ready {
        node.ready.notify_waiters();
    }
    if bus.subscriber_count() > 0 {
        if let Ok(payload) = serde_json::to_value(event) {
            // Other nodes hear it from their own tail of the store, not from pub/sub.
            if let Err(e) = bus.publish_here("tasks", TOPIC, payload) {
                tracing::warn!(target: "dreamos::tasks", "cannot publish a task event: {e}");
            }
        }
    }
}

/// For the services: publishes events this process committed, each once.
pub(super) fn publish_local(node: &Node, bus: &Bus, events: &[TaskEvent]) {
    for event in events {
        deliver(node, bus, event);
    }
}
