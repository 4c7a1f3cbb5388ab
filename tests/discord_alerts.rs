//! Discord alerts and summaries end to end: `dreamos serve` against the fake Discord
//! (tests/fakes/discord); agents crash, log errors and dead-letter messages, and the test
//! reads back what the bot posted — deduplicated, routed per agent, and queued while the
//! gateway is unreachable.

mod fakes;
#[path = "discord/harness.rs"]
mod harness;

use fakes::discord::{Call, FakeDiscord};
use harness::*;
use serde_json::json;

#[test]
fn alerts_are_deduplicated_routed_and_queued_while_disconnected() {
    let fake = FakeDiscord::start(TOKEN);
    let dir = project(&fake.api_base());
    let mut daemon = Daemon::start(dir.path(), TOKEN);
    assert!(
        fake.wait(WAIT, |s| s.connected),
        "not connected: {}",
        daemon.stderr()
    );

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
    // Up to the counted alert (the first window), one immediate alert; later crashes open
    // a new window and may alert again, which is right.
    let calls = fake.calls();
    let counted_at = calls
        .iter()
        .position(|c| c.path == alerts_path && c.embeds() == counted.embeds())
        .expect("counted alert recorded");
    let single = calls[..counted_at]
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

    // A schedule that keeps failing: one alert, in the global channel, and then a count.
    let flaky = |c: &Call, prefix: &str| {
        c.path == global
            && c.embeds()
                .iter()
                .any(|e| e["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
    };
    let first = fake
        .wait_call(WAIT, |c| flaky(c, "schedule flaky failed"))
        .expect("a failed-schedule alert");
    assert!(first.embeds()[0]["description"]
        .to_string()
        .contains("the disk is full"));
    fake.wait_call(WAIT, |c| flaky(c, "schedule flaky failed ×"))
        .expect("the repeats counted");
    // Within the first window (up to the counted alert) only one immediate alert went out.
    let calls = fake.calls();
    let counted_at = calls
        .iter()
        .position(|c| flaky(c, "schedule flaky failed ×"))
        .expect("counted alert recorded");
    let immediate = calls[..counted_at]
        .iter()
        .filter(|c| c.path == global)
        .flat_map(|c| c.embeds())
        .filter(|e| e["title"] == "schedule flaky failed")
        .count();
    assert_eq!(immediate, 1, "each failure of the schedule was sent");

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

    // Discord unreachable: summaries queue durably in the store, and are posted once the
    // bot is back.
    fake.hold(true);
    fake.drop_connection();
    assert!(fake.wait(WAIT, |s| !s.connected), "still connected");
    let db = dir.path().join("data/dreamos.db");
    assert!(
        poll(|| queued(&db).contains(&format!("channel:{SUMMARY}"))),
        "no summary queued while disconnected\nstderr {}",
        daemon.stderr()
    );
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
