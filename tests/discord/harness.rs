//! What the Discord end-to-end tests share: the project (config, agents, scripts), the
//! daemon process, and helpers that send interactions and read back what the bot posted.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::discord::{Call, FakeDiscord, APPLICATION_ID, GUILD_ID};

pub const TOKEN: &str = "fake-bot-token";
pub const TOKEN_VAR: &str = "DREAMOS_TEST_DISCORD_TOKEN";
pub const HOOK_VAR: &str = "DREAMOS_TEST_WORKER_HOOK";
/// The worker's own alert webhook (its URL lives in `HOOK_VAR`).
pub const HOOK_PATH: &str = "/webhooks/42/worker-hook-token";
pub const ADMIN: u64 = 100_000_000_000_000_001;
pub const USER: u64 = 100_000_000_000_000_002;
pub const OPS: u64 = 200_000_000_000_000_001;
pub const ELSEWHERE: u64 = 200_000_000_000_000_002;
pub const ALERTS: u64 = 200_000_000_000_000_003;
pub const SUMMARY: u64 = 200_000_000_000_000_004;
/// Generous: the machine may be busy; nothing waits this long when things work.
pub const WAIT: Duration = Duration::from_secs(60);

pub const WORKER: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  on_message = function(self, msg)
    if msg.payload == "crash" then error("asked to crash") end
    self:log("got " .. tostring(msg.payload))
  end,
}
"#;

pub const CAPTAIN: &str = r#"
local agent = require("dreamos.agent")
return agent.define {
  on_message = function(self, msg)
    if msg.payload == "oops" then require("dreamos.log").error("disk full on /data") return end
    self:reply(msg, "aye: " .. tostring(msg.payload))
  end,
}
"#;

pub const GREETER: &str = r#"
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

pub fn config(api_base: &str) -> String {
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
[[schedules]]
name = "flaky"
every = "1s"
script = "scripts/fail.lua"

[discord]
token_env = "{TOKEN_VAR}"
api_base = "{api_base}"
guilds = ["{GUILD_ID}"]
summary_channel = "{SUMMARY}"
summary_interval = "1s"
alert_channel = "{ALERTS}"
alert_window = "12s"
# The rate limit is unit-tested; here every alert should leave.
alerts_per_minute = 100
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

pub fn project(api_base: &str) -> tempfile::TempDir {
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
    std::fs::write(p.join("scripts/fail.lua"), "error('the disk is full')\n").unwrap();
    // Outside the script paths: /run must refuse it.
    std::fs::write(p.join("secret.lua"), "print('should not run')\n").unwrap();
    dir
}

/// The fake's address, as written into the project's dreamos.toml.
pub fn api_base(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("dreamos.toml")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("api_base = \""))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .unwrap_or_default()
}

pub struct Daemon(pub Option<Child>, pub std::path::PathBuf);

impl Daemon {
    pub fn start(dir: &Path, token: &str) -> Daemon {
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
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM; returns stderr.
    pub fn stop(&mut self) -> String {
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
pub fn answers(fake: &FakeDiscord, token: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
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
pub fn shown(calls: &[Call]) -> String {
    calls
        .iter()
        .filter(|c| c.body.get("type").and_then(Value::as_u64) != Some(5))
        .map(Call::content)
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_deferred(calls: &[Call]) -> bool {
    calls
        .first()
        .is_some_and(|c| c.path.ends_with("/callback") && c.body["type"] == 5)
}

pub fn has_answer(calls: &[Call]) -> bool {
    calls.iter().any(|c| {
        (c.path.ends_with("/callback") && c.body["type"] == 4)
            || c.path.starts_with(&format!("/webhooks/{APPLICATION_ID}/"))
    })
}

/// Asks and waits for the answer.
pub fn ask(fake: &FakeDiscord, name: &str, options: Value, user: u64, channel: u64) -> Vec<Call> {
    let token = fake.interact(name, options, user, &[], channel);
    answers(fake, &token, has_answer)
}

pub fn sub(name: &str, options: Value) -> Value {
    json!([{"name": name, "type": 1, "options": options}])
}

pub fn opt(name: &str, value: Value) -> Value {
    let kind = match &value {
        Value::Number(n) if n.is_i64() => 4,
        Value::Bool(_) => 5,
        _ => 3,
    };
    json!({"name": name, "type": kind, "value": value})
}

/// Where the posts waiting in the store's Discord outbox go (`channel:ID`, `webhook_env:VAR`).
pub fn queued(db: &Path) -> Vec<String> {
    let db = db.to_path_buf();
    dreamos::runtime::block_on(async move {
        let store = dreamos::store::open_sqlite(&db).await.expect("open store");
        dreamos::store::DiscordOutboxStore::outbox_pending(&*store, 1000)
            .await
            .expect("read the outbox")
            .into_iter()
            .map(|row| row.target)
            .collect()
    })
    .expect("runtime")
}

/// Polls a condition the daemon makes true in its own process (nothing to wait on here);
/// false if it did not hold within [`WAIT`].
pub fn poll(mut ok: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while !ok() {
        if start.elapsed() >= WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}
