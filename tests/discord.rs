//! The Discord bot end to end: `dreamos serve` with `[discord]` pointed at a fake Discord
//! (REST + gateway on 127.0.0.1, tests/fakes/discord). The test sends interactions as
//! Discord would and asserts what the bot posted back to the fake's REST API.

mod fakes;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fakes::discord::{Call, FakeDiscord, APPLICATION_ID, GUILD_ID};
use serde_json::{json, Value};

const TOKEN: &str = "fake-bot-token";
const TOKEN_VAR: &str = "DREAMOS_TEST_DISCORD_TOKEN";
const HOOK_VAR: &str = "DREAMOS_TEST_WORKER_HOOK";
/// The worker's own alert webhook (its URL lives in `HOOK_VAR`).
const HOOK_PATH: &str = "/webhooks/42/worker-hook-token";
const ADMIN: u64 = 100_000_000_000_000_001;
const USER: u64 = 100_000_000_000_000_002;
const OPS: u64 = 200_000_000_000_000_001;
const ELSEWHERE: u64 = 200_000_000_000_000_002;
const ALERTS: u64 = 200_000_000_000_000_003;
const SUMMARY: u64 = 200_000_000_000_000_004;
/// Generous: the machine may be busy; nothing waits this long when things work.
const WAIT: Duration = Duration::from_secs(60);

const WORKER: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  on_message = function(self, msg)
    if msg.payload == "crash" then error("asked to crash") end
    self:log("got " .. tostring(msg.payload))
  end,
}
"#;

const CAPTAIN: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  on_message = function(self, msg)
    if msg.payload == "oops" then require("dreamos.log").error("disk full on /data") return end
    self:reply(msg, "aye: " .. tostring(msg.payload))
  end,
}
"#;

const GREETER: &str = r#"
local agent = require("dreamos.agent")
local discord = require("dreamos.discord")
return agent.define {
  on_start = function(self)
    assert(discord.command {
      name = "hello",
      description = "Say hello",
      options = { { name = "who", type = "string", required = true }, { name = "times", type = "integer" } },
      permissions = { channels = { "OPS_CHANNEL" } },
      handler = function(ctx)
        return "hello " .. string.rep(ctx.options.who, ctx.options.times or 1, " ") .. " from " .. ctx.user.name
      end,
    })
    assert(discord.on_message("^ping (%d+)$", function(msg)
      assert(discord.send(msg.channel, "pong " .. msg.captures[1]))
    end))
  end,
}
"#;

fn config(api_base: &str) -> String {
    format!(
        r#"
[runtime]
data_dir = "data"
script_paths = ["scripts"]
[store]
path = "data/dreamos.db"
[bus]
# A message that crashes its handler is dead at once (no redelivery into the crash loop).
max_attempts = 1
[log]
dir = "logs"
[daemon]
port = 0
[[agents]]
name = "worker"
script = "agents/worker.lua"
restart = "permanent"
max_restarts = 100
[[agents]]
name = "captain"
script = "agents/captain.lua"
[[agents]]
name = "greeter"
script = "agents/greeter.lua"
[[schedules]]
name = "nightly"
cron = "0 3 * * *"
script = "scripts/hello.lua"

[discord]
token_env = "{TOKEN_VAR}"
api_base = "{api_base}"
guilds = ["{GUILD_ID}"]
summary_channel = "{SUMMARY}"
summary_interval = "1s"
alert_channel = "{ALERTS}"
alert_window = "12s"
[discord.admins]
users = ["{ADMIN}"]
[discord.commands.send]
channels = ["{OPS}"]
[discord.commands.status]
cooldown = "1h"
[discord.agents.worker]
webhook_env = "{HOOK_VAR}"
"#
    )
}

fn project(api_base: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("agents")).unwrap();
    std::fs::create_dir_all(p.join("scripts")).unwrap();
    std::fs::write(p.join("dreamos.toml"), config(api_base)).unwrap();
    std::fs::write(p.join("agents/worker.lua"), WORKER).unwrap();
    std::fs::write(p.join("agents/captain.lua"), CAPTAIN).unwrap();
    std::fs::write(
        p.join("agents/greeter.lua"),
        GREETER.replace("OPS_CHANNEL", &OPS.to_string()),
    )
    .unwrap();
    std::fs::write(
        p.join("scripts/hello.lua"),
        "print('hello from ' .. (arg[1] or 'nobody'))\n",
    )
    .unwrap();
    std::fs::write(
        p.join("scripts/big.lua"),
        "for i = 1, 200 do print(string.rep('x', 60) .. ' line ' .. i) end\n",
    )
    .unwrap();
    // Outside the script paths: /run must refuse it.
    std::fs::write(p.join("secret.lua"), "print('should not run')\n").unwrap();
    dir
}

/// The fake's address, as written into the project's dreamos.toml.
fn api_base(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("dreamos.toml")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("api_base = \""))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .unwrap_or_default()
}

struct Daemon(Option<Child>, std::path::PathBuf);

impl Daemon {
    fn start(dir: &Path, token: &str) -> Daemon {
        let log = dir.join("serve.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_dreamos"))
            .arg("serve")
            .current_dir(dir)
            .env_remove("DREAMOS_CONFIG")
            .env("DREAMOS_LOG_CONSOLE", "off")
            .env(TOKEN_VAR, token)
            .env(HOOK_VAR, format!("{}/api/v10{HOOK_PATH}", api_base(dir)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("stderr file"))
            .spawn()
            .expect("spawn serve");
        Daemon(Some(child), log)
    }

    /// What the daemon wrote to stderr so far (for failure messages).
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM; returns stderr.
    fn stop(&mut self) -> String {
        let child = self.0.take().expect("running");
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait_with_output().expect("wait");
        self.stderr()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The callback and follow-ups of the interaction with `token`, waiting until `done` holds.
fn answers(fake: &FakeDiscord, token: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
    let mut found = Vec::new();
    let ok = fake.wait(WAIT, |s| {
        found = s
            .calls
            .iter()
            .filter(|c| c.path.contains(token))
            .cloned()
            .collect();
        done(&found)
    });
    assert!(ok, "no complete answer to {token}; got {found:#?}");
    found
}

/// The text the user finally sees: direct answer or follow-ups, joined.
fn shown(calls: &[Call]) -> String {
    calls
        .iter()
        .filter(|c| c.body.get("type").and_then(Value::as_u64) != Some(5))
        .map(Call::content)
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_deferred(calls: &[Call]) -> bool {
    calls
        .first()
        .is_some_and(|c| c.path.ends_with("/callback") && c.body["type"] == 5)
}

fn has_answer(calls: &[Call]) -> bool {
    calls.iter().any(|c| {
        (c.path.ends_with("/callback") && c.body["type"] == 4)
            || c.path.starts_with(&format!("/webhooks/{APPLICATION_ID}/"))
    })
}

/// Asks and waits for the answer.
fn ask(fake: &FakeDiscord, name: &str, options: Value, user: u64, channel: u64) -> Vec<Call> {
    let token = fake.interact(name, options, user, &[], channel);
    answers(fake, &token, has_answer)
}

fn sub(name: &str, options: Value) -> Value {
    json!([{"name": name, "type": 1, "options": options}])
}

fn opt(name: &str, value: Value) -> Value {
    let kind = match &value {
        Value::Number(n) if n.is_i64() => 4,
        Value::Bool(_) => 5,
        _ => 3,
    };
    json!({"name": name, "type": kind, "value": value})
}

#[test]
fn slash_commands_permissions_deferral_alerts_and_summaries() {
    let fake = FakeDiscord::start(TOKEN);
    let dir = project(&fake.api_base());
    let mut daemon = Daemon::start(dir.path(), TOKEN);

    // Connects, identifies and registers every built-in in the configured guild.
    let register = fake
        .wait_call(WAIT, |c| {
            c.method == "PUT"
                && c.path == format!("/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands")
        })
        .unwrap_or_else(|| {
            panic!(
                "commands not registered; calls {:#?}\nstderr {}",
                fake.calls(),
                daemon.stderr()
            )
        });
    let names: Vec<&str> = register
        .body
        .as_array()
        .expect("array of commands")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for builtin in [
        "agents",
        "agent",
        "send",
        "broadcast",
        "captain",
        "tasks",
        "task",
        "logs",
        "status",
        "schedule",
        "run",
    ] {
        assert!(names.contains(&builtin), "{builtin} missing from {names:?}");
    }

    // The greeter agent's Lua command is registered beside the built-ins.
    let registered_with = |name: &'static str| {
        move |c: &Call| {
            c.method == "PUT"
                && c.body
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["name"] == name))
        }
    };
    let hello_def = fake
        .wait_call(WAIT, registered_with("hello"))
        .expect("/hello registered");
    let hello = hello_def
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(hello["options"][1]["type"], 4, "{hello}");
    let hi = ask(
        &fake,
        "hello",
        json!([opt("who", json!("Ada")), opt("times", json!(2))]),
        USER,
        OPS,
    );
    assert_eq!(shown(&hi), format!("hello Ada Ada from user{USER}"));
    let hi_elsewhere = ask(
        &fake,
        "hello",
        json!([opt("who", json!("Ada"))]),
        USER,
        ELSEWHERE,
    );
    assert!(
        shown(&hi_elsewhere).contains("(the permissions of /hello: channels)"),
        "{}",
        shown(&hi_elsewhere)
    );
    fake.message("ping 42", USER, OPS);
    let pong = fake
        .wait_call(WAIT, |c| {
            c.path == format!("/channels/{OPS}/messages") && c.content() == "pong 42"
        })
        .expect("on_message answered through discord.send");
    assert_eq!(pong.method, "POST");

    // /agents: the live table, answered directly.
    let agents = ask(&fake, "agents", json!([]), USER, OPS);
    assert!(!is_deferred(&agents));
    let table = shown(&agents);
    assert!(
        table.contains("worker") && table.contains("captain"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("worker") && l.contains("running")),
        "{table}"
    );

    // Lifecycle commands are admin-only: an ephemeral refusal naming the rule.
    let refused = ask(
        &fake,
        "agent",
        sub("stop", json!([opt("name", json!("worker"))])),
        USER,
        OPS,
    );
    assert_eq!(refused[0].body["data"]["flags"], 64, "{refused:#?}");
    assert!(
        shown(&refused).contains("/agent is for admins only ([discord.admins]"),
        "{}",
        shown(&refused)
    );

    // An admin's /agent status is deferred first, then completed with a follow-up.
    let status = ask(
        &fake,
        "agent",
        sub("status", json!([opt("name", json!("worker"))])),
        ADMIN,
        OPS,
    );
    assert!(is_deferred(&status), "{status:#?}");
    assert!(
        shown(&status).contains("**worker**: running"),
        "{}",
        shown(&status)
    );
    let unknown = ask(
        &fake,
        "agent",
        sub("status", json!([opt("name", json!("nobody"))])),
        ADMIN,
        OPS,
    );
    assert!(
        shown(&unknown).contains("no agent named 'nobody'"),
        "{}",
        shown(&unknown)
    );

    // /send: channel rule, unknown agent, malformed JSON, then a real send.
    let wrong_place = ask(
        &fake,
        "send",
        json!([opt("name", json!("worker")), opt("message", json!("hi"))]),
        USER,
        ELSEWHERE,
    );
    assert!(
        shown(&wrong_place)
            .contains("not allowed in this channel ([discord.commands.send]: channels)"),
        "{}",
        shown(&wrong_place)
    );
    let typo = ask(
        &fake,
        "send",
        json!([opt("name", json!("wroker")), opt("message", json!("hi"))]),
        USER,
        OPS,
    );
    assert!(
        shown(&typo).contains("no agent named 'wroker' (did you mean 'worker'?)"),
        "{}",
        shown(&typo)
    );
    let bad_json = ask(
        &fake,
        "send",
        json!([
            opt("name", json!("worker")),
            opt("message", json!("{\"a\": "))
        ]),
        USER,
        OPS,
    );
    assert!(
        shown(&bad_json).contains("looks like JSON but does not parse"),
        "{}",
        shown(&bad_json)
    );
    let sent = ask(
        &fake,
        "send",
        json!([opt("name", json!("worker")), opt("message", json!("hello"))]),
        USER,
        OPS,
    );
    assert!(
        shown(&sent).starts_with("sent to worker"),
        "{}",
        shown(&sent)
    );

    // /captain waits for the Captain's reply (deferred: it may take up to 30 s).
    let captain = ask(
        &fake,
        "captain",
        json!([opt("message", json!("report"))]),
        USER,
        OPS,
    );
    assert!(is_deferred(&captain));
    assert!(
        shown(&captain).contains("aye: report"),
        "{}",
        shown(&captain)
    );

    // Tasks, read back live.
    let added = ask(
        &fake,
        "task",
        sub(
            "add",
            json!([
                opt("title", json!("write the docs")),
                opt("priority", json!("high"))
            ]),
        ),
        USER,
        OPS,
    );
    assert!(
        shown(&added).contains("added: write the docs"),
        "{}",
        shown(&added)
    );
    let id: i64 = shown(&added)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("task id");
    let show = ask(
        &fake,
        "task",
        sub("show", json!([opt("id", json!(id))])),
        USER,
        OPS,
    );
    assert!(
        shown(&show).contains("write the docs") && shown(&show).contains("priority high"),
        "{}",
        shown(&show)
    );
    let list = ask(&fake, "tasks", json!([]), USER, OPS);
    assert!(shown(&list).contains("write the docs"), "{}", shown(&list));

    // /status is an embed of live numbers; its 1 h cooldown refuses a second try.
    let status = ask(&fake, "status", json!([]), USER, OPS);
    let embed = &status[0].embeds()[0];
    assert_eq!(embed["title"], "Dream.OS status");
    assert!(embed.to_string().contains("running of 3"), "{embed}");
    let again = ask(&fake, "status", json!([]), USER, OPS);
    assert!(shown(&again).contains("cooling down"), "{}", shown(&again));

    // /broadcast reaches every inbox; /logs shows the worker's lines from the log file.
    let broadcast = ask(
        &fake,
        "broadcast",
        json!([opt("message", json!("{\"all\": true}"))]),
        USER,
        OPS,
    );
    assert!(
        shown(&broadcast).contains("broadcast sent"),
        "{}",
        shown(&broadcast)
    );
    let logs = ask(
        &fake,
        "logs",
        json!([opt("agent", json!("worker")), opt("n", json!(5))]),
        USER,
        OPS,
    );
    assert!(shown(&logs).contains("got hello"), "{}", shown(&logs));
    let bad_level = ask(
        &fake,
        "logs",
        json!([opt("level", json!("loud"))]),
        USER,
        OPS,
    );
    assert!(
        shown(&bad_level).contains("level 'loud' is not one of"),
        "{}",
        shown(&bad_level)
    );

    // Schedules.
    let schedules = ask(&fake, "schedule", sub("list", json!([])), ADMIN, OPS);
    assert!(
        shown(&schedules).contains("nightly"),
        "{}",
        shown(&schedules)
    );

    // /run: a script on the script paths, its output returned; outside them, refused.
    let run = ask(
        &fake,
        "run",
        json!([opt("script", json!("hello")), opt("args", json!("discord"))]),
        ADMIN,
        OPS,
    );
    assert!(is_deferred(&run));
    assert!(
        shown(&run).contains("hello from discord"),
        "{}",
        shown(&run)
    );
    let escape = ask(
        &fake,
        "run",
        json!([opt("script", json!("../secret"))]),
        ADMIN,
        OPS,
    );
    assert!(
        shown(&escape).contains("only scripts on runtime.script_paths may run"),
        "{}",
        shown(&escape)
    );
    assert!(!shown(&escape).contains("should not run"));

    // Long output goes as a file.
    let big = ask(
        &fake,
        "run",
        json!([opt("script", json!("big"))]),
        ADMIN,
        OPS,
    );
    let with_file = big
        .iter()
        .find(|c| !c.files.is_empty())
        .expect("an attachment");
    assert_eq!(with_file.files[0].0, "output.txt");
    assert!(with_file.files[0].1.contains("line 200"));

    let global = format!("/channels/{ALERTS}/messages");
    // An error-level log line from a script is an alert too.
    ask(
        &fake,
        "send",
        json!([opt("name", json!("captain")), opt("message", json!("oops"))]),
        USER,
        OPS,
    );
    fake.wait_call(WAIT, |c| {
        (c.path == global || c.path == HOOK_PATH)
            && c.embeds()
                .iter()
                .any(|e| e["description"] == "disk full on /data")
    })
    .unwrap_or_else(|| {
        let titles: Vec<String> = fake
            .calls()
            .iter()
            .filter(|c| c.path == global || c.path == HOOK_PATH)
            .flat_map(|c| c.embeds())
            .map(|e| format!("{} | {}", e["title"], e["description"]))
            .collect();
        panic!(
            "no alert for the error log line; alerts {titles:#?}\nstderr {}",
            daemon.stderr()
        )
    });

    // A crash loop: one alert at once, then one with the count — not one per crash.
    for _ in 0..4 {
        ask(
            &fake,
            "send",
            json!([opt("name", json!("worker")), opt("message", json!("crash"))]),
            USER,
            OPS,
        );
    }
    // The worker's alerts go to its own webhook ([discord.agents.worker]).
    let alerts_path = HOOK_PATH.to_string();
    let counted = fake
        .wait_call(WAIT, |c| {
            c.path == alerts_path
                && c.embeds().iter().any(|e| {
                    e["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("agent worker crashed ×"))
                })
        })
        .unwrap_or_else(|| {
            let posted: Vec<Call> = fake
                .calls()
                .into_iter()
                .filter(|c| c.path.starts_with("/channels/"))
                .collect();
            panic!(
                "no counted crash alert; channel posts {posted:#?}\nstderr {}",
                daemon.stderr()
            )
        });
    let title = counted.embeds()[0]["title"].as_str().unwrap().to_string();
    let n: u64 = title
        .trim_start_matches("agent worker crashed ×")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(n >= 2, "{title}");
    let single = fake
        .calls()
        .iter()
        .filter(|c| c.path == alerts_path)
        .filter(|c| {
            c.embeds()
                .iter()
                .any(|e| e["title"] == "agent worker crashed")
        })
        .count();
    assert_eq!(single, 1, "the burst sent more than one immediate alert");
    assert_eq!(counted.embeds()[0]["color"], 0xe74c3c);
    // Dead letters concern no agent: the global channel.
    fake.wait_call(WAIT, |c| {
        c.path == global
            && c.embeds().iter().any(|e| {
                e["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("dead-lettered"))
            })
    })
    .expect("a dead-letter alert in the global channel");

    // The periodic summary: one embed per agent.
    let summary = fake
        .wait_call(WAIT, |c| c.path == format!("/channels/{SUMMARY}/messages"))
        .expect("a summary");
    let titles: Vec<String> = summary
        .embeds()
        .iter()
        .map(|e| e["title"].to_string())
        .collect();
    assert!(titles.iter().any(|t| t.contains("worker")), "{titles:?}");
    assert!(titles.iter().any(|t| t.contains("captain")), "{titles:?}");

    // Stopping the agent removes its command from Discord.
    let puts_before = fake.calls().iter().filter(|c| c.method == "PUT").count();
    let stopped = ask(
        &fake,
        "agent",
        sub("stop", json!([opt("name", json!("greeter"))])),
        ADMIN,
        OPS,
    );
    assert!(
        shown(&stopped).contains("greeter: stopped"),
        "{}",
        shown(&stopped)
    );
    let mut puts_seen = 0;
    let without = fake.wait(WAIT, |s| {
        let puts: Vec<&Call> = s.calls.iter().filter(|c| c.method == "PUT").collect();
        puts_seen = puts.len();
        puts.len() > puts_before && !registered_with("hello")(puts[puts.len() - 1])
    });
    assert!(
        without,
        "/hello still registered after its agent stopped ({puts_seen} PUTs)"
    );
    let gone = ask(&fake, "hello", json!([opt("who", json!("Ada"))]), USER, OPS);
    assert!(
        shown(&gone).contains("is not a command of this bot"),
        "{}",
        shown(&gone)
    );

    // The connection drops: the bot resumes and answers commands sent after it.
    fake.drop_connection();
    assert!(
        fake.wait(WAIT, |s| s.resumes + s.identifies >= 2 && s.connected),
        "no reconnect"
    );
    let after = ask(&fake, "agents", json!([]), USER, OPS);
    assert!(shown(&after).contains("worker"));

    // Discord unreachable: summaries queue durably in the store, and are posted once the
    // bot is back.
    fake.hold(true);
    fake.drop_connection();
    assert!(fake.wait(WAIT, |s| !s.connected), "still connected");
    let db = dir.path().join("data/dreamos.db");
    poll("a summary queued while disconnected", || queued(&db) > 0);
    let summaries = |s: &fakes::discord::State| {
        s.calls
            .iter()
            .filter(|c| c.path == format!("/channels/{SUMMARY}/messages"))
            .count()
    };
    let before = summaries(&fake.shared.state.lock().unwrap());
    fake.hold(false);
    assert!(
        fake.wait(WAIT, |s| s.connected && summaries(s) > before),
        "queued summaries were not posted after reconnecting"
    );

    let stderr = daemon.stop();
    assert!(!stderr.contains("Discord disabled"), "{stderr}");
}

/// Posts waiting in the store's Discord outbox.
fn queued(db: &Path) -> usize {
    let db = db.to_path_buf();
    dreamos::runtime::block_on(async move {
        let store = dreamos::store::open_sqlite(&db).await.expect("open store");
        store.outbox_peek(1000).await.expect("peek").len()
    })
    .expect("runtime")
}

/// Polls a condition the daemon makes true in its own process (nothing to wait on here).
fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_missing_token_is_named_and_the_daemon_runs_on() {
    let fake = FakeDiscord::start(TOKEN);
    let dir = project(&fake.api_base());
    let child = Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("DREAMOS_CONFIG")
        .env_remove(TOKEN_VAR)
        .env("DREAMOS_LOG_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut daemon = Daemon(Some(child), dir.path().join("unused"));
    let data = dir.path().join("data/daemon.json");
    poll("the daemon to come up", || data.exists());
    let child = daemon.0.take().unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Discord disabled: the environment variable ${TOKEN_VAR} ([discord] token_env) is not set"
        )),
        "{stderr}"
    );
    assert!(fake.calls().is_empty(), "it called Discord without a token");
}

#[test]
fn a_refused_token_leaves_the_daemon_running_without_discord() {
    let fake = FakeDiscord::start(TOKEN);
    let dir = project(&fake.api_base());
    let mut daemon = Daemon::start(dir.path(), "not-the-token");
    let data = dir.path().join("data/daemon.json");
    poll("the daemon to come up", || data.exists());
    let list = Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .args(["agent", "list"])
        .current_dir(dir.path())
        .env_remove("DREAMOS_CONFIG")
        .output()
        .expect("agent list");
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("worker"));
    let stderr = daemon.stop();
    assert!(
        stderr.contains(&format!(
            "Discord disabled: Discord refused the token in ${TOKEN_VAR} (401"
        )),
        "{stderr}"
    );
    // It never connected to the gateway.
    assert_eq!(fake.shared.state.lock().unwrap().identifies, 0);
}
