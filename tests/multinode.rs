//! Several `dreamos serve` nodes sharing one swarm through one PostgreSQL database, as an
//! operator runs them: real processes, each in a directory of its own, driven with the CLI.
//!
//! - a message sent on node A to an agent running on node B is handled there;
//! - tasks claimed concurrently by workers on every node: each is claimed once;
//! - a node killed with SIGKILL: its agents and its claimed task move to a survivor;
//! - a schedule fires once per due time across nodes, also after its leader was killed.
//!
//! Scripts report what they did, with the node they ran on (each node's copy of a script
//! names it), on bus queues the test reads with `dreamos bus history`. Every wait polls
//! for what a user would see, with a generous limit; nothing waits for time to pass.
//!
//! Needs PostgreSQL: `DREAMOS_TEST_POSTGRES_URL` (see `support/nodes.rs`).

#[path = "support/backend.rs"]
#[allow(dead_code)]
mod backend;
#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "support/nodes.rs"]
#[allow(dead_code)]
mod nodes;
#[path = "support/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};

use nodes::{wait_for, wait_some, Cluster, Node};
use serde_json::Value;

/// Answers each message on the `replies` queue with the node it ran on.
const ECHO: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  on_message = function(self, msg)
    self:send("replies", { node = "{node}", agent = self.name, got = msg.payload })
  end,
}
"#;

/// Names each node after its directory (`[daemon] node`), which scripts read back.
const NAMED: &str = "[daemon]\nnode = \"{node}\"\n";

/// The messages of a bus queue, oldest first, as `bus history --json` prints them.
fn queue(node: &Node, channel: &str) -> Vec<Value> {
    let mut records = match node.json(&[
        "bus",
        "history",
        "--channel",
        channel,
        "--limit",
        "10000",
        "--json",
    ]) {
        Value::Array(a) => a,
        other => panic!("bus history printed {other}"),
    };
    records.sort_by_key(|r| r["id"].as_i64());
    records
}

fn payloads(node: &Node, channel: &str) -> Vec<Value> {
    queue(node, channel)
        .into_iter()
        .map(|r| r["payload"].clone())
        .collect()
}

/// Where each agent runs according to `dreamos agent list --json` on `node`: name to the
/// node holding its lease and its state there. An agent whose node's lease lapsed (the
/// node stopped renewing) is left out: it is about to move.
fn placement(node: &Node) -> BTreeMap<String, (String, String)> {
    let rows = node.json(&["agent", "list", "--json"]);
    rows.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["node_lapsed"] != true)
        .filter_map(|r| {
            let s = |k: &str| r[k].as_str().map(String::from);
            Some((s("name")?, (s("node")?, s("state").unwrap_or_default())))
        })
        .collect()
}

/// The node running `agent` according to `node`'s agent list, once it runs there.
fn running_on(node: &Node, agent: &str) -> Option<String> {
    let (at, state) = placement(node).remove(agent)?;
    (state == "running").then_some(at)
}

#[test]
fn nodes_start_at_once_on_a_fresh_schema_and_stop_on_sigterm() {
    let Some(mut cluster) = Cluster::new("nodes_start_at_once_on_a_fresh_schema") else {
        return;
    };
    for name in ["a", "b", "c"] {
        cluster.add(name, "", &[]);
    }
    // All three create and migrate the same new schema at the same moment.
    cluster.start_all();
    let schema = cluster.schema().to_string();
    for node in cluster.nodes() {
        let status = node.cli(&["store", "status"]);
        assert!(status.contains("backend            postgres"), "{status}");
        assert!(status.contains(&format!("(schema {schema})")), "{status}");
    }
    for i in 0..3 {
        let node = cluster.node(i);
        let status = node.terminate();
        assert!(
            status.success(),
            "node {}: {status}\n{}",
            node.name,
            node.output()
        );
        assert!(
            node.output().contains("dreamos serve: stopped"),
            "{}",
            node.output()
        );
    }
}

#[test]
fn a_message_sent_on_one_node_is_handled_by_the_agent_on_another() {
    let Some(mut cluster) = Cluster::new("a_message_sent_on_one_node") else {
        return;
    };
    // Both nodes are configured alike; B starts first and so takes the agent's lease.
    let config = format!("{NAMED}\n[[agents]]\nname = \"echo\"\nscript = \"echo.lua\"\n");
    let a = cluster.add("a", &config, &[("echo.lua", ECHO)]);
    let b = cluster.add("b", &config, &[("echo.lua", ECHO)]);
    cluster.node(b).start();
    let node_b = cluster.node(b);
    wait_for("echo running on b", || {
        running_on(node_b, "echo").as_deref() == Some("b")
    });
    cluster.node(a).start();

    // Sent on A; --wait returns once the message was acked.
    let node_a = &cluster.nodes()[a];
    node_a.cli(&[
        "bus",
        "send",
        "agent:echo",
        r#"{"n":1}"#,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let replies = payloads(node_a, "replies");
    assert_eq!(replies.len(), 1, "{replies:?}\n{}", cluster.outputs());
    assert_eq!(replies[0]["node"], "b", "{replies:?}");
    assert_eq!(replies[0]["got"]["n"], 1, "{replies:?}");

    // A's agent list says where echo runs.
    assert_eq!(running_on(node_a, "echo").as_deref(), Some("b"));
    let table = node_a.cli(&["agent", "list"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("NODE"), "{table}");
}

#[test]
fn a_node_that_joins_takes_half_the_agents_and_they_answer_there() {
    let Some(mut cluster) = Cluster::new("a_node_that_joins_takes_half") else {
        return;
    };
    let names = ["w1", "w2", "w3", "w4"];
    let mut config = "[daemon]\nnode = \"{node}\"\nlease = \"3s\"\n".to_string();
    for n in names {
        config.push_str(&format!(
            "\n[[agents]]\nname = \"{n}\"\nscript = \"echo.lua\"\n"
        ));
    }
    let a = cluster.add("a", &config, &[("echo.lua", ECHO)]);
    let b = cluster.add("b", &config, &[("echo.lua", ECHO)]);
    cluster.node(a).start();
    let node_a = cluster.node(a);
    wait_for("every agent running on a", || {
        names
            .iter()
            .all(|n| running_on(node_a, n).as_deref() == Some("a"))
    });
    cluster.node(b).start();
    let node_a = &cluster.nodes()[a];
    let spread = wait_some("two agents on each node", || {
        let at: Vec<String> = names.iter().filter_map(|n| running_on(node_a, n)).collect();
        let on_b = at.iter().filter(|n| *n == "b").count();
        (at.len() == 4 && on_b == 2).then_some(at)
    });
    // Each answers from where it now runs, messages sent on either node.
    for (i, n) in names.iter().enumerate() {
        cluster.nodes()[i % 2].cli(&[
            "bus",
            "send",
            &format!("agent:{n}"),
            "\"hello\"",
            "--wait",
            "--timeout",
            "60s",
        ]);
    }
    let replies = payloads(node_a, "replies");
    for (n, node) in names.iter().zip(&spread) {
        assert!(
            replies
                .iter()
                .any(|r| r["agent"] == *n && r["node"] == *node),
            "{n} on {node}: {replies:?}\n{}",
            cluster.outputs()
        );
    }
}

/// Announces each claim on `claims` (with its node), works briefly, and returns the node.
const WORKER: &str = r#"
local agent = require("dreamos.agent")
local time = require("dreamos.time")
return agent.define {
  tasks = { category = "mn", concurrency = 2 },
  on_task = function(self, task)
    local node = "{node}"
    self:send("claims", { task = task.id, node = node, agent = self.name })
    time.sleep(0.05)
    return { node = node, agent = self.name }
  end,
}
"#;

#[test]
fn no_task_is_claimed_twice_by_workers_on_three_nodes() {
    let Some(mut cluster) = Cluster::new("no_task_is_claimed_twice") else {
        return;
    };
    const TASKS: usize = 120;
    for name in ["a", "b", "c"] {
        // Two workers of its own per node, each working on two tasks at a time.
        let config = format!(
            "[[agents]]\nname = \"{name}1\"\nscript = \"worker.lua\"\n\n\
             [[agents]]\nname = \"{name}2\"\nscript = \"worker.lua\"\n"
        );
        cluster.add(name, &config, &[("worker.lua", WORKER)]);
    }
    cluster.start_all();

    // One plan, one transaction: every task becomes ready at the same moment, so the
    // twelve claimers race for them.
    let mut plan = String::from("[defaults]\ncategory = \"mn\"\n");
    for i in 0..TASKS {
        plan.push_str(&format!(
            "\n[[task]]\nid = \"t{i}\"\ntitle = \"task {i}\"\n"
        ));
    }
    let a = cluster.node(0);
    std::fs::write(a.path("plan.toml"), plan).expect("plan");
    a.cli(&["task", "import", "plan.toml"]);

    let done = |node: &Node| -> Vec<Value> {
        let list = node.json(&[
            "task",
            "list",
            "--status",
            "done",
            "--category",
            "mn",
            "--limit",
            "1000",
            "--json",
        ]);
        list.as_array().cloned().unwrap_or_default()
    };
    let c = &cluster.nodes()[2];
    wait_for("every task to be done", || done(c).len() == TASKS);

    let tasks = done(c);
    for t in &tasks {
        assert_eq!(t["attempts"], 1, "task claimed more than once: {t}");
    }
    // Every claim the workers saw, by task: exactly one each.
    let claims = payloads(c, "claims");
    let mut by_task: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for claim in &claims {
        by_task
            .entry(claim["task"].as_i64().expect("task id"))
            .or_default()
            .push(claim);
    }
    let twice: Vec<_> = by_task.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "tasks handled more than once: {twice:?}");
    assert_eq!(by_task.len(), TASKS, "claims seen: {}", claims.len());
    // The result names the node whose claim it was.
    for t in &tasks {
        let id = t["id"].as_i64().expect("id");
        assert_eq!(t["result"]["node"], by_task[&id][0]["node"], "{t}");
    }
    // The race was real: workers on every node claimed some.
    let nodes: BTreeSet<&str> = claims.iter().filter_map(|c| c["node"].as_str()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["a", "b", "c"]),
        "nodes that claimed tasks"
    );
}

/// Works on a task's first attempt until its node dies, renewing the claim meanwhile; a
/// later attempt completes at once. Each claim is announced on `claims`.
const HOLDER: &str = r#"
local agent = require("dreamos.agent")
local time = require("dreamos.time")
return agent.define {
  tasks = { category = "slow" },
  on_task = function(self, task)
    local node = "{node}"
    self:send("claims", { task = task.id, node = node, attempt = task.attempts })
    if task.attempts == 1 then
      for _ = 1, 1200 do
        task:progress(10, "holding on " .. node)
        time.sleep(0.5)
      end
    end
    return { node = node }
  end,
}
"#;

/// Agent leases and task leases short, so a takeover comes within seconds.
/// Balancing off: the test shows agents stay on their node while it lives.
const LEASES: &str = "[daemon]\nnode = \"{node}\"\nlease = \"3s\"\nbalance = false\n\n\
    [tasks]\nlease = \"3s\"\n\n\
    [[agents]]\nname = \"keeper\"\nscript = \"echo.lua\"\n\n\
    [[agents]]\nname = \"holder\"\nscript = \"holder.lua\"\n";

#[test]
fn a_node_killed_with_sigkill_hands_its_agents_and_tasks_to_a_survivor() {
    let Some(mut cluster) = Cluster::new("a_node_killed_with_sigkill") else {
        return;
    };
    let files = [("echo.lua", ECHO), ("holder.lua", HOLDER)];
    let a = cluster.add("a", LEASES, &files);
    let b = cluster.add("b", LEASES, &files);
    let c = cluster.add("c", LEASES, &files);
    // A starts first and takes both agents; B and C, configured alike, stand by.
    cluster.node(a).start();
    for agent in ["keeper", "holder"] {
        let node = cluster.node(a);
        wait_for(&format!("{agent} running on a"), || {
            running_on(node, agent).as_deref() == Some("a")
        });
    }
    cluster.start_all();
    for agent in ["keeper", "holder"] {
        for i in [b, c] {
            assert_eq!(
                running_on(&cluster.nodes()[i], agent).as_deref(),
                Some("a"),
                "{agent} moved while its node lived\n{}",
                cluster.outputs()
            );
        }
    }

    // The task is claimed on A, which holds it.
    let added = cluster
        .node(b)
        .json(&["task", "add", "hold me", "--category", "slow", "--json"]);
    let task = added["id"].as_i64().expect("task id");
    wait_for("the task to be claimed on a", || {
        payloads(cluster.node(b), "claims")
            .iter()
            .any(|p| p["task"] == task && p["node"] == "a")
    });

    cluster.node(a).kill();

    // Both agents start on a survivor, and both survivors say which.
    let mut moved = BTreeMap::new();
    for agent in ["keeper", "holder"] {
        let survivor = wait_some(&format!("{agent} running on a survivor"), || {
            running_on(&cluster.nodes()[b], agent).filter(|n| n != "a")
        });
        wait_for(&format!("node c to show {agent} on {survivor}"), || {
            running_on(&cluster.nodes()[c], agent).as_deref() == Some(survivor.as_str())
        });
        moved.insert(agent, survivor);
    }
    // The task's claim lapsed with its node; the survivor running holder finished it.
    let done = wait_some("the task to be done", || {
        let t = cluster
            .node(c)
            .json(&["task", "show", &task.to_string(), "--json"])["task"]
            .clone();
        (t["status"] == "done").then_some(t)
    });
    assert_eq!(done["result"]["node"], moved["holder"].as_str(), "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    let claims: Vec<(String, i64)> = payloads(cluster.node(c), "claims")
        .iter()
        .map(|p| {
            (
                p["node"].as_str().unwrap_or_default().to_string(),
                p["attempt"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        claims,
        [("a".to_string(), 1), (moved["holder"].clone(), 2)],
        "claims of the task"
    );

    // The keeper answers from where it now runs.
    cluster.node(b).cli(&[
        "bus",
        "send",
        "agent:keeper",
        r#"{"after":"kill"}"#,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let replies = payloads(cluster.node(b), "replies");
    let last = replies.last().expect("a reply");
    assert_eq!(last["node"], moved["keeper"].as_str(), "{replies:?}");
}

/// Reports each run with the node it ran on.
const TICK: &str = r#"
local bus = require("dreamos.bus")
assert(bus.send("ticks", { node = "{node}" }))
"#;

/// A schedule's runs, oldest first, as `schedule history --json` prints them.
fn runs(node: &Node, schedule: &str) -> Vec<Value> {
    let out = node.cli(&["schedule", "history", schedule, "-n", "10000", "--json"]);
    let mut runs: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    runs.sort_by_key(|r| r["scheduled"].as_i64());
    runs
}

#[test]
fn a_schedule_fires_once_per_due_time_across_nodes_and_after_its_leader_dies() {
    let Some(mut cluster) = Cluster::new("a_schedule_fires_once_per_due_time") else {
        return;
    };
    for name in ["a", "b", "c"] {
        cluster.add(name, "", &[("tick.lua", TICK)]);
    }
    cluster.start_all();
    cluster.node(0).cli(&[
        "schedule",
        "add",
        "tick",
        "--cron",
        "* * * * * *",
        "--script",
        "tick.lua",
    ]);
    let ran = |r: &Value| r["outcome"] == "ok";
    wait_for("four runs", || {
        runs(&cluster.nodes()[1], "tick")
            .iter()
            .filter(|r| ran(r))
            .count()
            >= 4
    });

    // Kill the node that fires now.
    let leader = wait_some("a tick", || {
        let ticks = payloads(&cluster.nodes()[1], "ticks");
        ticks
            .last()
            .and_then(|t| t["node"].as_str().map(String::from))
    });
    let i = cluster
        .nodes()
        .iter()
        .position(|n| n.name == leader)
        .expect("the leader is one of the nodes");
    cluster.node(i).kill();
    let killed_at = chrono::Utc::now().timestamp_millis();
    let survivor = (i + 1) % 3;
    wait_for("four runs after the kill", || {
        runs(&cluster.nodes()[survivor], "tick")
            .iter()
            .filter(|r| ran(r) && r["started"].as_i64() > Some(killed_at))
            .count()
            >= 4
    });
    for j in 0..3 {
        if cluster.nodes()[j].running() {
            assert!(cluster.node(j).terminate().success());
        }
    }

    // Everything settled: one run per fire time (a run cut short by the kill may be run
    // again, as interrupted), and one script execution per run.
    let node = &cluster.nodes()[survivor];
    let all = runs(node, "tick");
    let mut per_time: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for r in &all {
        per_time
            .entry(r["scheduled"].as_i64().expect("scheduled"))
            .or_default()
            .push(r["outcome"].as_str().unwrap_or_default());
    }
    let twice: Vec<_> = per_time
        .iter()
        .filter(|(_, o)| o.iter().filter(|o| **o != "interrupted").count() > 1)
        .collect();
    assert!(twice.is_empty(), "fire times run more than once: {twice:?}");
    let ticks = payloads(node, "ticks");
    let ok = all.iter().filter(|r| ran(r)).count();
    let interrupted = all.iter().filter(|r| r["outcome"] == "interrupted").count();
    assert!(
        ok <= ticks.len() && ticks.len() <= ok + interrupted,
        "{} script runs for {ok} runs ({interrupted} interrupted)",
        ticks.len()
    );
    // After the kill the survivors fired, and the dead node did not.
    let late: BTreeSet<&str> = ticks
        .iter()
        .rev()
        .take(4)
        .filter_map(|t| t["node"].as_str())
        .collect();
    assert!(
        !late.contains(leader.as_str()),
        "{late:?} after {leader} died"
    );
}
