//! Placement with two nodes on one database, in one process on tokio's paused clock: each
//! node is a supervisor and a placement loop over its own store connection.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::agents::{Agent, AgentState, Factory, Recorder, Supervision};
use crate::store::testing::{on_each_backend, TestDb, TestStore};

const LEASE: Duration = Duration::from_secs(9);
const AGENTS: [&str; 3] = ["alpha", "beta", "gamma"];

struct Idle;
impl Agent for Idle {}

fn idle() -> Factory {
    Rc::new(|| Box::pin(async { Ok(Box::new(Idle) as Box<dyn Agent>) }))
}

fn configs(names: &[&str], autostart: bool) -> Vec<AgentConfig> {
    names
        .iter()
        .map(|n| AgentConfig {
            autostart,
            ..toml::from_str(&format!("name = \"{n}\"\nscript = \"{n}.lua\"")).unwrap()
        })
        .collect()
}

struct Node {
    sup: Supervisor,
    placement: Placement,
}

impl Node {
    /// A node whose clock is `clock` (nodes' clocks agree, as NTP keeps them).
    fn new(name: &str, store: &TestStore, agents: &[AgentConfig], clock: &Arc<Clock>) -> Node {
        let mut recorder = Recorder::new(None, None);
        recorder.clock = clock.clone();
        let sup = Supervisor::new(recorder);
        for a in agents {
            let spec = Supervision {
                idle_timeout: None,
                resume_after: None,
                stall_timeout: None,
                ..Supervision::default()
            };
            sup.add_with_inbox(&a.name, spec, idle(), None).unwrap();
        }
        let placement = Placement::new(store.leases(), sup.clone(), name.into(), LEASE);
        placement.add_agents(agents);
        Node { sup, placement }
    }

    /// Agents running here, sorted.
    fn running(&self) -> Vec<String> {
        self.sup
            .list()
            .into_iter()
            .filter(|s| s.state == AgentState::Running)
            .map(|s| s.name)
            .collect()
    }

    /// A node that balances, started and announced as `dreamos serve` does.
    async fn balancing(
        name: &str,
        store: &TestStore,
        agents: &[AgentConfig],
        clock: &Arc<Clock>,
    ) -> Node {
        let node = Node::new(name, store, agents, clock);
        node.placement.set_balance(true);
        node.placement.start().await;
        node.placement.announce("127.0.0.1:0").await;
        settle().await;
        node
    }

    /// No agent runs on both nodes.
    fn assert_apart(&self, other: &Node) {
        let (mine, theirs) = (self.running(), other.running());
        let both: Vec<&String> = theirs.iter().filter(|n| mine.contains(n)).collect();
        assert!(both.is_empty(), "running on two nodes: {both:?}");
    }

    /// Dies without a word (SIGKILL): no more renewals, its agents gone.
    async fn die(&self) {
        self.placement.stop_renewing().await;
        self.sup.shutdown("killed").await;
    }
}

/// Lets started agents reach `running` (their start runs on the local set).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Advances the paused clock in small steps until `done`; returns how long it took.
/// Panics after `limit`. Small steps, so no renewal round is skipped over.
async fn time_until(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = tokio::time::Instant::now();
    while !done() {
        assert!(start.elapsed() <= limit, "not done within {limit:?}");
        step().await;
    }
    start.elapsed()
}

/// Checks `holds` after every step for `how_long` of the paused clock.
async fn for_a_while(how_long: Duration, mut holds: impl FnMut()) {
    let start = tokio::time::Instant::now();
    while start.elapsed() < how_long {
        step().await;
        holds();
    }
}

/// 100 ms of the paused clock.
async fn step() {
    tokio::time::sleep(Duration::from_millis(100)).await;
    settle().await;
}

async fn two_nodes(db: &TestDb, first: &TestStore, agents: &[AgentConfig]) -> (Node, Node) {
    let clock = Arc::new(Clock::new());
    let a = Node::new("node-a", first, agents, &clock);
    a.placement.start().await;
    let b = Node::new("node-b", &db.open_again().await, agents, &clock);
    b.placement.start().await;
    settle().await;
    (a, b)
}

on_each_backend! {
    #[tokio::test(start_paused = true)]
    async fn each_agent_runs_on_one_node_and_moves_when_its_node_dies() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let (a, b) = two_nodes(&db, &store, &configs(&AGENTS, true)).await;
            assert_eq!(a.running(), AGENTS, "the first node takes every free lease");
            assert!(b.running().is_empty());
            let holders = b.placement.holders().await.unwrap();
            assert!(AGENTS.iter().all(|n| holders[*n].node == "node-a"), "{holders:?}");
            // No path around the lease: a direct start (Lua's agent.start) is refused.
            let refused = b.sup.start("alpha", "by a script").unwrap_err();
            assert!(refused.to_string().contains("placed on another node"), "{refused}");

            // Renewals keep them on node-a for many leases.
            for_a_while(LEASE * 5, || {
                assert_eq!(a.running(), AGENTS);
                assert!(b.running().is_empty());
            })
            .await;

            a.die().await;
            let took = time_until(LEASE * 3, || b.running() == AGENTS).await;
            // Not before node-a's lease lapsed, and within a renewal period after.
            assert!(took >= LEASE - LEASE / 3, "took over after {took:?}");
            assert!(took <= LEASE + LEASE / 3 + Duration::from_secs(1), "after {took:?}");
            let holders = b.placement.holders().await.unwrap();
            assert!(AGENTS.iter().all(|n| holders[*n].node == "node-b"), "{holders:?}");
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_graceful_stop_hands_over_at_once() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let (a, b) = two_nodes(&db, &store, &configs(&AGENTS, true)).await;
            assert_eq!(a.running(), AGENTS);
            a.placement.stop_renewing().await;
            a.sup.shutdown("daemon stopping").await;
            a.placement.release().await;
            let took = time_until(LEASE, || b.running() == AGENTS).await;
            assert!(took <= LEASE / 3 + Duration::from_secs(1), "after {took:?}");
            let nodes = b.placement.inner.store.nodes().await.unwrap();
            assert!(nodes.iter().all(|n| n.node != "node-a"), "{nodes:?}");
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_stalled_past_its_lease_stops_what_another_took() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let (a, b) = two_nodes(&db, &store, &configs(&AGENTS, true)).await;
            // node-a stalls: no renewals, but its agents still run.
            a.placement.stop_renewing().await;
            time_until(LEASE * 3, || b.running() == AGENTS).await;
            assert_eq!(a.running(), AGENTS, "still running on the stalled node");
            // Its next round finds the leases gone and stops the agents at once.
            a.placement.round().await;
            settle().await;
            assert!(a.running().is_empty(), "{:?}", a.running());
            assert_eq!(b.running(), AGENTS);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_operator_start_on_the_wrong_node_names_the_right_one() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let (a, b) = two_nodes(&db, &store, &configs(&["manual"], false)).await;
            // Held by node-a but not started: not autostart.
            assert!(a.running().is_empty() && b.running().is_empty());
            let refused = b.placement.claim_agent("manual").await.unwrap_err();
            assert!(refused.contains("runs on node node-a"), "{refused}");
            a.placement.announce("127.0.0.1:7001").await;
            let refused = b.placement.claim_agent("manual").await.unwrap_err();
            assert!(refused.contains("(control API 127.0.0.1:7001)"), "{refused}");
            assert_eq!(a.placement.claim_agent("manual").await, Ok(()));
            // Agents not placed (not configured here) are not refused.
            assert_eq!(b.placement.claim_agent("other").await, Ok(()));
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_joins_receives_agents_until_the_gap_is_one() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let four = ["alpha", "beta", "delta", "gamma"];
            let clock = Arc::new(Clock::new());
            let a = Node::balancing("node-a", &store, &configs(&four, true), &clock).await;
            assert_eq!(a.running(), four, "alone, node-a takes every agent");
            let second = db.open_again().await;
            let b = Node::balancing("node-b", &second, &configs(&four, true), &clock).await;
            let took = time_until(LEASE, || {
                a.assert_apart(&b);
                b.running().len() == 2
            })
            .await;
            // node-a hands over at its next round, node-b starts them at its next renewal.
            assert!(took <= LEASE * 2 / 3 + Duration::from_secs(1), "after {took:?}");
            assert_eq!(a.running(), ["alpha", "beta"]);
            assert_eq!(b.running(), ["delta", "gamma"]);
            let holders = a.placement.holders().await.unwrap();
            assert_eq!(holders["gamma"].node, "node-b", "{holders:?}");
            // Balanced: nothing moves for many leases.
            for_a_while(LEASE * 5, || {
                assert_eq!(a.running(), ["alpha", "beta"]);
                assert_eq!(b.running(), ["delta", "gamma"]);
            })
            .await;
            // node-b dies: node-a takes its agents back and keeps them.
            b.die().await;
            time_until(LEASE * 2, || a.running() == four).await;
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_goes_only_to_a_node_configured_with_it() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let clock = Arc::new(Clock::new());
            let a = Node::balancing("node-a", &store, &configs(&AGENTS, true), &clock).await;
            let second = db.open_again().await;
            // node-b runs only alpha: beta and gamma are never handed to it.
            let b = Node::balancing("node-b", &second, &configs(&["alpha"], true), &clock).await;
            time_until(LEASE * 4, || {
                a.assert_apart(&b);
                let here = a.running();
                assert!(here.ends_with(&["beta".into(), "gamma".into()]), "{here:?}");
                b.running() == ["alpha"] && a.running() == ["beta", "gamma"]
            })
            .await;
            for_a_while(LEASE * 5, || {
                assert_eq!(a.running(), ["beta", "gamma"], "moved again");
                assert_eq!(b.running(), ["alpha"]);
            })
            .await;
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_agents_stay_where_an_operator_left_them() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let clock = Arc::new(Clock::new());
            let a = Node::balancing("node-a", &store, &configs(&AGENTS, true), &clock).await;
            a.sup.stop("beta", "by an operator").await.unwrap();
            a.sup.stop("gamma", "by an operator").await.unwrap();
            let second = db.open_again().await;
            let b = Node::balancing("node-b", &second, &configs(&AGENTS, true), &clock).await;
            // Leases count as load, stopped or not: node-a hands over its one running agent
            // and keeps the two an operator stopped, stopped.
            time_until(LEASE, || b.running() == ["alpha"]).await;
            for_a_while(LEASE * 3, || {
                assert!(a.running().is_empty(), "{:?}", a.running());
                assert_eq!(b.running(), ["alpha"]);
            })
            .await;
            let holders = b.placement.holders().await.unwrap();
            assert_eq!(holders["beta"].node, "node-a", "{holders:?}");
            assert_eq!(holders["gamma"].node, "node-a", "{holders:?}");
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_handed_to_a_node_that_gives_it_up_comes_back_and_stays() {
        let (db, store) = TestDb::open().await;
        tokio::task::LocalSet::new().run_until(async {
            let clock = Arc::new(Clock::new());
            let a = Node::balancing("node-a", &store, &configs(&AGENTS, true), &clock).await;
            let second = db.open_again().await;
            let b = Node::balancing("node-b", &second, &configs(&["alpha"], true), &clock).await;
            // node-b's record claims every agent (written by an earlier run, say): what
            // it is handed but cannot run, it gives up, and node-a keeps it from then on.
            let mut record = second.leases().nodes().await.unwrap();
            record.retain(|n| n.node == "node-b");
            record[0].units = AGENTS.iter().map(|n| agent_lease(n)).collect();
            second.leases().put_node(record.remove(0)).await.unwrap();
            time_until(LEASE * 6, || {
                a.assert_apart(&b);
                b.running() == ["alpha"] && a.running() == ["beta", "gamma"]
            })
            .await;
            for_a_while(LEASE * 5, || {
                assert_eq!(a.running(), ["beta", "gamma"], "moved again");
                assert_eq!(b.running(), ["alpha"]);
            })
            .await;
        })
        .await;
    }
}
