//! The Discord bot end to end: `dreamos serve` with `[discord]` pointed at a fake Discord
//! (REST + gateway on 127.0.0.1, tests/fakes/discord). The tests send interactions as
//! Discord would and assert what the bot posted back to the fake's REST API.

mod fakes;
#[path = "discord/harness.rs"]
mod harness;

use std::process::{Command, Stdio};

use fakes::discord::{Call, FakeDiscord, APPLICATION_ID, GUILD_ID};
use harness::*;
use serde_json::json;

#[test]
fn slash_commands_answer_from_live_state_with_rules_and_deferral() {
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

    // The connection drops: the bot resumes its session (RESUME, not a new IDENTIFY), and
    // a command sent while it was away is delivered on the resumed session and answered.
    fake.hold(true);
    fake.drop_connection();
    assert!(fake.wait(WAIT, |s| !s.connected), "still connected");
    let during = fake.interact("agents", json!([]), USER, &[], OPS);
    fake.hold(false);
    assert!(
        fake.wait(WAIT, |s| s.resumes >= 1 && s.connected),
        "the session was not resumed"
    );
    let after = answers(&fake, &during, has_answer);
    assert!(shown(&after).contains("worker"), "{}", shown(&after));
    assert_eq!(fake.shared.state.lock().unwrap().identifies, 1);

    let stderr = daemon.stop();
    assert!(!stderr.contains("Discord disabled"), "{stderr}");
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
    assert!(poll(|| data.exists()), "the daemon did not come up");
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
    assert!(poll(|| data.exists()), "the daemon did not come up");
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

/// `global = true` registers the commands for every guild (`/applications/{id}/commands`)
/// instead of per guild.
#[test]
fn global_registration_puts_the_commands_on_the_application() {
    let fake = FakeDiscord::start(TOKEN);
    let dir = project(&fake.api_base());
    let toml = dir.path().join("dreamos.toml");
    let text = std::fs::read_to_string(&toml).expect("config");
    let global = text.replace(&format!("guilds = [\"{GUILD_ID}\"]"), "global = true");
    assert_ne!(text, global, "the test config names its guild");
    std::fs::write(&toml, global).expect("write config");
    let mut daemon = Daemon::start(dir.path(), TOKEN);
    let register = fake
        .wait_call(WAIT, |c| {
            c.method == "PUT" && c.path == format!("/applications/{APPLICATION_ID}/commands")
        })
        .unwrap_or_else(|| {
            panic!(
                "commands not registered globally; calls {:#?}\nstderr {}",
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
    assert!(names.contains(&"agents"), "{names:?}");
    assert!(
        !fake.calls().iter().any(|c| c.path.contains("/guilds/")),
        "also registered per guild"
    );
    daemon.stop();
}
