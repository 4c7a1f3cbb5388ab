//! Lua agents under the supervisor, on a real store and bus in a temp directory: handlers,
//! replies, `self.state` across restarts, and isolation — a crash, an endless loop and a
//! memory bomb in three agents leave a fourth answering.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dreamos::agents::{AgentState, Recorder, Supervision, Supervisor};
use dreamos::bus::{Bus, BusConfig, SendOptions};
use dreamos::config::Config;
use dreamos::lua::agent::script::LogRing;
use dreamos::lua::agent::ScriptAgent;
use dreamos::store::{open_sqlite, AgentStore, BusStore, SqliteStore, TaskStore};
use dreamos::tasks::{Status, TaskSpec, Tasks, TasksConfig};
use serde_json::json;

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    store: Arc<SqliteStore>,
    bus: Bus,
    sup: Supervisor,
    tasks: Tasks,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_sqlite(&dir.path().join("d.db")).await.expect("store");
    let bus = Bus::new(store.clone() as Arc<dyn BusStore>, BusConfig::default()).expect("bus");
    let tasks = Tasks::new(
        store.clone() as Arc<dyn TaskStore>,
        bus.clone(),
        TasksConfig::default(),
    )
    .expect("tasks");
    let mut recorder = Recorder::new(
        Some(store.clone() as Arc<dyn AgentStore>),
        Some(bus.clone()),
    );
    recorder.tasks = Some(tasks.clone());
    let sup = Supervisor::new(recorder);
    World {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        store,
        bus,
        sup,
        tasks,
    }
}

impl World {
    /// Adds a Lua agent from `source`, probing it first as the daemon does.
    async fn add(&self, name: &str, source: &str, memory_limit: Option<u64>) {
        self.add_with_stall(name, source, memory_limit, Duration::from_secs(1))
            .await
    }

    async fn add_with_stall(
        &self,
        name: &str,
        source: &str,
        memory_limit: Option<u64>,
        stall: Duration,
    ) {
        let path = self.dir.join(format!("{name}.lua"));
        std::fs::write(&path, source).expect("write script");
        let stall = Some(stall);
        let agent = ScriptAgent {
            name: name.into(),
            script: path,
            config: Arc::new(Config::default()),
            bus: Some(self.bus.clone()),
            store: Some(self.store.clone()),
            allow: Vec::new(),
            memory_limit,
            control: None,
            stall,
            logs: LogRing::default(),
            source: None,
            tasks: Some(self.tasks.clone()),
        };
        let def = agent.probe().await.expect("probe");
        let mut spec = Supervision {
            backoff_base: Duration::from_millis(50),
            ..Supervision::default()
        };
        def.overrides.apply(&mut spec);
        if let Some((category, concurrency)) = def.tasks {
            spec.task_category = Some(category);
            spec.task_concurrency = concurrency;
        }
        spec.stall_timeout = stall;
        self.sup.add(name, spec, agent.factory()).expect("add");
        self.sup.start(name, "test").expect("start");
    }

    async fn ask(&self, name: &str, payload: serde_json::Value) -> serde_json::Value {
        self.bus
            .request(
                "test",
                &format!("agent:{name}"),
                &payload,
                Duration::from_secs(10),
                SendOptions::default(),
            )
            .await
            .expect("reply")
            .payload
    }

    async fn wait_for(&self, name: &str, what: impl Fn(&dreamos::agents::AgentStatus) -> bool) {
        for _ in 0..200 {
            let s = self.sup.status(name).expect("status");
            if what(&s) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} never got there: {:?}", self.sup.status(name));
    }
}

const COUNTER: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  name = "counter",
  restart = "permanent",
  on_start = function(self) self.state.count = self.state.count or 0 end,
  on_message = function(self, msg)
    self.state.count = self.state.count + 1
    self:log("got " .. tostring(msg.payload.n))
    assert(self:reply(msg, { count = self.state.count, n = msg.payload.n }))
  end,
}
"#;

async fn local<F: std::future::Future<Output = ()>>(f: F) {
    tokio::task::LocalSet::new().run_until(f).await;
}

#[tokio::test]
async fn a_lua_agent_replies_and_its_state_survives_restarts() {
    local(async {
        let w = world().await;
        w.add("counter", COUNTER, None).await;
        assert_eq!(
            w.ask("counter", json!({"n": 1})).await,
            json!({"count": 1, "n": 1})
        );
        assert_eq!(
            w.ask("counter", json!({"n": 2})).await,
            json!({"count": 2, "n": 2})
        );
        w.sup.restart("counter", "test restart").expect("restart");
        w.wait_for("counter", |s| {
            s.state == AgentState::Running && s.restarts == 1
        })
        .await;
        assert_eq!(
            w.ask("counter", json!({"n": 3})).await,
            json!({"count": 3, "n": 3})
        );
        w.sup.stop("counter", "done").await.expect("stop");
        let log = w
            .store
            .agent_transitions("counter".into(), 100)
            .await
            .expect("log");
        let steps: Vec<String> = log.iter().map(|t| format!("{}>{}", t.from, t.to)).collect();
        assert_eq!(
            steps,
            [
                "stopped>starting",
                "starting>running",
                "running>stopping",
                "stopping>starting",
                "starting>running",
                "running>stopping",
                "stopping>stopped"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_crash_a_loop_and_a_memory_bomb_touch_no_other_agent() {
    local(async {
        let w = world().await;
        let crash = r#"return require("dreamos.agent").define {
            on_message = function(self, msg) error("boom") end }"#;
        let spin = r#"return require("dreamos.agent").define {
            on_message = function(self, msg) while true do end end }"#;
        let bomb = r#"return require("dreamos.agent").define {
            on_message = function(self, msg)
              local t = {}
              for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
            end }"#;
        w.add("crash", crash, None).await;
        w.add("spin", spin, None).await;
        w.add("bomb", bomb, Some(16 * 1024 * 1024)).await;
        w.add("counter", COUNTER, None).await;
        for name in ["crash", "spin", "bomb"] {
            w.bus
                .send(
                    "test",
                    &format!("agent:{name}"),
                    &json!({}),
                    SendOptions::default(),
                )
                .await
                .expect("send");
        }
        assert_eq!(
            w.ask("counter", json!({"n": 1})).await,
            json!({"count": 1, "n": 1})
        );
        for name in ["crash", "spin", "bomb"] {
            w.wait_for(name, |s| s.errors >= 1).await;
        }
        let reasons = |name: &str| {
            let w = &w;
            let name = name.to_string();
            async move {
                w.store
                    .agent_transitions(name, 100)
                    .await
                    .expect("log")
                    .into_iter()
                    .filter(|t| t.to == "crashed")
                    .map(|t| t.reason)
                    .collect::<Vec<_>>()
            }
        };
        let crash_reasons = reasons("crash").await;
        assert!(
            crash_reasons[0].contains("crash.lua:2: boom"),
            "{crash_reasons:?}"
        );
        let spin_reasons = reasons("spin").await;
        assert!(
            spin_reasons[0].contains("stalled: on_message ran past stall_timeout (1s)")
                || spin_reasons[0].contains("instruction limit"),
            "{spin_reasons:?}"
        );
        let bomb_reasons = reasons("bomb").await;
        assert!(bomb_reasons[0].contains("memory limit"), "{bomb_reasons:?}");
        // The others are still fine and were restarted.
        assert_eq!(
            w.ask("counter", json!({"n": 2})).await,
            json!({"count": 2, "n": 2})
        );
        w.sup.shutdown("test over").await;
        assert!(w.sup.list().iter().all(|s| s.state == AgentState::Stopped));
    })
    .await;
}

#[tokio::test]
async fn scripts_that_do_not_define_an_agent_are_refused_with_the_reason() {
    local(async {
        let w = world().await;
        let write = |name: &str, src: &str| {
            let p = w.dir.join(name);
            std::fs::write(&p, src).expect("write");
            p
        };
        let probe = |script: &Path| {
            ScriptAgent {
                name: "x".into(),
                script: script.to_path_buf(),
                config: Arc::new(Config::default()),
                bus: None,
                store: None,
                allow: Vec::new(),
                memory_limit: None,
                control: None,
                stall: None,
                logs: LogRing::default(),
                source: None,
            tasks: None,
            }
        };
        let plain = write("plain.lua", "return { on_message = function() end }");
        let err = probe(&plain).probe().await.expect_err("plain table");
        assert!(err.to_string().contains("must return agent.define{...}"), "{err}");
        let typo = write(
            "typo.lua",
            "return require('dreamos.agent').define { idle_timout = '5m' }",
        );
        let err = probe(&typo).probe().await.expect_err("typo");
        assert!(
            err.to_string()
                .contains("typo.lua: agent.define: unknown option 'idle_timout' (did you mean 'idle_timeout'?)"),
            "{err}"
        );
        let bad = write(
            "bad.lua",
            "return require('dreamos.agent').define { restart = 'sometimes' }",
        );
        let err = probe(&bad).probe().await.expect_err("restart");
        assert!(err.to_string().contains("restart must be permanent, transient or temporary"), "{err}");
        let ok = write(
            "ok.lua",
            "return require('dreamos.agent').define { idle_timeout = '2m', tick = 5, restart = 'transient' }",
        );
        let def = probe(&ok).probe().await.expect("ok");
        assert_eq!(def.overrides.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(def.overrides.tick, Some(Duration::from_secs(5)));
        assert_eq!(def.overrides.restart, Some(dreamos::agents::RestartPolicy::Transient));
    })
    .await;
}

#[tokio::test]
async fn an_agent_with_a_task_category_works_through_its_tasks() {
    local(async {
        let w = world().await;
        let builder = r#"
local agent = require("dreamos.agent")
return agent.define {
  tasks = { category = "build" },
  on_task = function(self, task)
    assert(task:progress(50, "halfway"))
    if task.payload.n < 0 then error("negative") end
    return { doubled = task.payload.n * 2, title = task.title }
  end,
}
"#;
        w.add("builder", builder, None).await;
        let spec = |n: i64, category: &str| TaskSpec {
            title: format!("double {n}"),
            category: Some(category.into()),
            payload: Some(json!({ "n": n })),
            max_attempts: Some(1),
            ..TaskSpec::default()
        };
        let good = w.tasks.add(spec(21, "build")).await.expect("add");
        let bad = w.tasks.add(spec(-1, "build")).await.expect("add");
        let other = w.tasks.add(spec(5, "deploy")).await.expect("add");
        for _ in 0..200 {
            let done = w.tasks.get(good).await.expect("get").map(|t| t.status);
            let failed = w.tasks.get(bad).await.expect("get").map(|t| t.status);
            if done == Some(Status::Done) && failed == Some(Status::Failed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let task = w.tasks.get(good).await.expect("get").expect("task");
        assert_eq!(task.status, Status::Done, "{:?}", task.error);
        assert_eq!(
            task.result,
            Some(json!({"doubled": 42, "title": "double 21"}))
        );
        assert_eq!(task.agent.as_deref(), Some("builder"));
        let task = w.tasks.get(bad).await.expect("get").expect("task");
        assert_eq!(task.status, Status::Failed);
        assert!(task.error.unwrap_or_default().contains("negative"));
        let untouched = w.tasks.get(other).await.expect("get").expect("task");
        assert_eq!(
            untouched.status,
            Status::Ready,
            "another category is not claimed"
        );
        w.sup.shutdown("done").await;
    })
    .await;
}

#[tokio::test]
async fn tasks_concurrency_runs_that_many_tasks_at_once_in_one_state() {
    local(async {
        let w = world().await;
        // Each task waits (suspending its own coroutine) until three run at once, so the
        // peak reaches 3 only if the agent really holds three tasks side by side.
        let crew = r#"
local agent = require("dreamos.agent")
local time = require("dreamos.time")
local running, peak = 0, 0
return agent.define {
  tasks = { category = "crew", concurrency = 3 },
  on_task = function(self, task)
    running = running + 1
    if running > peak then peak = running end
    for _ = 1, 1000 do
      if peak >= 3 then break end
      time.sleep(0.01)
    end
    running = running - 1
    return { peak = peak, n = task.payload.n }
  end,
}
"#;
        w.add_with_stall("crew", crew, None, Duration::from_secs(60))
            .await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let spec = TaskSpec {
                title: format!("job {n}"),
                category: Some("crew".into()),
                payload: Some(json!({ "n": n })),
                ..TaskSpec::default()
            };
            ids.push(w.tasks.add(spec).await.expect("add"));
        }
        for _ in 0..800 {
            let mut done = 0;
            for id in &ids {
                if w.tasks.get(*id).await.expect("get").map(|t| t.status) == Some(Status::Done) {
                    done += 1;
                }
            }
            if done == ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        for (n, id) in ids.iter().enumerate() {
            let task = w.tasks.get(*id).await.expect("get").expect("task");
            assert_eq!(task.status, Status::Done, "{:?}", task.error);
            assert_eq!(task.result, Some(json!({ "peak": 3, "n": n })));
        }
        assert_eq!(w.sup.status("crew").expect("status").handled, 3);
        w.sup.shutdown("done").await;
    })
    .await;
}

#[tokio::test]
async fn the_captain_takes_goals_and_answers_help_and_status() {
    local(async {
        let w = world().await;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let captain = std::fs::read_to_string(root.join("scripts/agents/captain.lua"))
            .expect("captain script");
        w.add("captain", &captain, None).await;
        let ask_as = |from: &'static str, payload: serde_json::Value| {
            let bus = w.bus.clone();
            async move {
                bus.request(
                    from,
                    "agent:captain",
                    &payload,
                    Duration::from_secs(10),
                    SendOptions::default(),
                )
                .await
                .expect("reply")
                .payload
            }
        };
        let accepted = ask_as(
            "test",
            json!({"goal": "map the coast", "category": "survey"}),
        )
        .await;
        let id = accepted["tasks"][0].as_i64().expect("a task id");
        let status = ask_as("test", json!("status")).await;
        assert_eq!(status["total"], 1);
        assert_eq!(status["statuses"]["ready"], 1);
        // A worker holding the task asks for help: the Captain lists its current tasks.
        let claimed = w
            .tasks
            .claim(dreamos::tasks::ClaimRequest {
                agent: "scout".into(),
                category: Some("survey".into()),
                ..Default::default()
            })
            .await
            .expect("claim")
            .expect("a task");
        assert_eq!(claimed.id, id);
        let help = ask_as("agent:scout", json!("help")).await;
        assert_eq!(help["tasks"][0]["id"], id);
        assert_eq!(help["tasks"][0]["title"], "map the coast");
        w.sup.shutdown("done").await;
    })
    .await;
}

#[tokio::test]
async fn self_claim_task_claims_in_the_agents_name() {
    local(async {
        let w = world().await;
        let worker = r#"
return require("dreamos.agent").define {
  on_message = function(self, msg)
    local task = assert(self:claim_task { category = "manual" })
    assert(task:complete { by = self.name })
    self:reply(msg, { id = task.id })
  end,
}
"#;
        w.add("hand", worker, None).await;
        let id = w
            .tasks
            .add(TaskSpec {
                title: "by hand".into(),
                category: Some("manual".into()),
                ..TaskSpec::default()
            })
            .await
            .expect("add");
        let reply = w.ask("hand", json!({})).await;
        assert_eq!(reply["id"], id);
        let task = w.tasks.get(id).await.expect("get").expect("task");
        assert_eq!(task.status, Status::Done);
        assert_eq!(task.agent.as_deref(), Some("hand"));
        assert_eq!(task.result, Some(json!({"by": "hand"})));
        w.sup.shutdown("done").await;
    })
    .await;
}

/// What an agent's state runs in the background (a bus subscription, a `dreamos.spawn`
/// loop) ends with the agent: a stopped agent does not go on reacting to publications.
#[tokio::test]
async fn a_stopped_agent_leaves_no_subscription_or_spawned_loop_behind() {
    local(async {
        let w = world().await;
        w.add(
            "listener",
            r#"
local agent = require("dreamos.agent")
local bus = require("dreamos.bus")
local time = require("dreamos.time")
local dreamos = require("dreamos")
return agent.define {
  name = "listener",
  on_start = function(self)
    bus.subscribe("news.*", function(m) end)
    dreamos.spawn(function()
      while true do
        bus.subscribe("ticks", function(m) end):cancel()
        time.sleep(0.01)
      end
    end)
  end,
  on_message = function(self, msg) assert(self:reply(msg, { ok = true })) end,
}
"#,
            None,
        )
        .await;
        assert_eq!(w.ask("listener", json!({})).await, json!({"ok": true}));
        assert!(w.bus.subscriber_count() >= 1, "the agent subscribed");
        w.sup.stop("listener", "done").await.expect("stop");
        // The spawned loop would subscribe again within 10 ms if it still ran.
        for _ in 0..200 {
            if w.bus.subscriber_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            w.bus.subscriber_count(),
            0,
            "subscriptions outlived the agent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            w.bus.subscriber_count(),
            0,
            "a spawned loop outlived the agent"
        );
    })
    .await;
}
