//! `dreamos social ...` through the real binary against the fake X API: posting now and
//! later, the queue, cancel and retry, dry runs that print the exact request, a 429 that
//! reschedules, a sender that died mid-post reconciled by another process without a double
//! post, and the engagement report.

#[path = "support/backend.rs"]
mod backend;

mod fakes;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use dreamos::clients::social::{connect, PostRequest};
use dreamos::social::{PostContent, PostOrder, Queued};
use dreamos::store::SocialStore;
use fakes::social::common::{spec, MemTokens};
use fakes::social::x::FakeX;

/// The fake runs on its own runtime while the binary runs in the foreground.
fn fake_x() -> (tokio::runtime::Runtime, FakeX) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeX::start());
    (rt, fake)
}

fn write_config(dir: &Path, fake: &FakeX, extra: &str) {
    let text = format!(
        "[log]\nconsole = \"off\"\n\
         [social.accounts.x-main]\nplatform = \"x\"\nbase_url = \"{}\"\n\
         access_token_env = \"T_X_ACCESS\"\n{extra}\n",
        fake.url
    );
    std::fs::write(dir.join("dreamos.toml"), text).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("dreamos")
        .unwrap()
        .current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
        .env("T_X_ACCESS", "x-access-0")
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        out(&o),
        err(&o)
    );
    out(&o)
}

#[test]
fn post_now_and_later_then_queue_cancel_and_retry() {
    let (_rt, fake) = fake_x();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, "");
    let posted = ok(
        dir.path(),
        &["social", "post", "x-main", "hello from the cli"],
    );
    let id = fake.tweets()[0].id.clone();
    assert_eq!(
        posted,
        format!("post 1: posted as {id} https://x.com/i/web/status/{id}\n")
    );

    let later = ok(
        dir.path(),
        &["social", "post", "x-main", "later on", "--at", "+1h"],
    );
    assert!(later.starts_with("post 2 queued for "), "{later}");
    assert_eq!(fake.tweets().len(), 1, "a post for later is not sent now");

    let queue = ok(dir.path(), &["social", "queue"]);
    assert!(queue.contains("    2  queued     x-main"), "{queue}");
    assert!(
        !queue.contains("hello from the cli"),
        "posted posts only with --all: {queue}"
    );
    let all: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["social", "queue", "--all", "--json"])).unwrap();
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["queued", "posted"]);

    assert_eq!(
        ok(dir.path(), &["social", "cancel", "2"]),
        "post 2 cancelled (account x-main)\n"
    );
    let again = run(dir.path(), &["social", "cancel", "2"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        err(&again),
        "error: cannot cancel post 2: it is cancelled, and only queued posts can be\n"
    );
    assert_eq!(
        ok(dir.path(), &["social", "retry", "2"]),
        "post 2 queued again (account x-main)\n"
    );
    let missing = run(dir.path(), &["social", "retry", "99"]);
    assert!(
        err(&missing).contains("there is no such post"),
        "{}",
        err(&missing)
    );

    // The same words again within the dedup window are refused, naming the earlier post.
    let dup = run(
        dir.path(),
        &["social", "post", "x-main", "hello from the cli"],
    );
    assert_eq!(dup.status.code(), Some(1));
    assert!(
        err(&dup).contains("duplicate of post 1 (posted"),
        "{}",
        err(&dup)
    );
    let unknown = run(dir.path(), &["social", "post", "x-mian", "hi"]);
    assert!(
        err(&unknown).contains("unknown account 'x-mian' (did you mean 'x-main'?)"),
        "{}",
        err(&unknown)
    );
    assert_eq!(fake.tweets().len(), 1);
}

#[test]
fn dry_run_prints_the_exact_request_and_sends_nothing() {
    let (_rt, fake) = fake_x();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, "");
    let shown = ok(
        dir.path(),
        &["social", "post", "x-main", "just looking", "--dry-run"],
    );
    let first = shown.lines().next().unwrap();
    assert_eq!(first, format!("POST {}/2/tweets", fake.url));
    assert!(shown.contains("\"text\":\"just looking\""), "{shown}");
    assert!(!shown.contains("x-access-0"), "secrets are masked: {shown}");
    assert!(fake.requests().is_empty());
    assert!(ok(dir.path(), &["social", "queue", "--all"]).starts_with("the outbox is empty"));

    // An account set to dry_run says so and previews too.
    write_config(dir.path(), &fake, "dry_run = true");
    let o = run(dir.path(), &["social", "post", "x-main", "config says dry"]);
    assert!(o.status.success());
    assert!(
        err(&o).contains("account 'x-main' has dry_run = true"),
        "{}",
        err(&o)
    );
    assert!(out(&o).starts_with("POST "), "{}", out(&o));
    assert!(fake.requests().is_empty());
}

#[test]
fn a_429_from_x_reschedules_the_post_to_the_reset() {
    let (_rt, fake) = fake_x();
    fake.with(|s| s.post_limit = 0);
    let reset = fake.with(|s| s.window_reset) * 1000;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, "");
    let o = ok(dir.path(), &["social", "post", "x-main", "slow down"]);
    let when = dreamos::scheduler::trigger::format_time(reset, chrono_tz::Tz::UTC);
    assert!(
        o.starts_with(&format!(
            "post 1: queued, next attempt {when} (x post: rate_limited"
        )),
        "{o}"
    );
    // `social send` before the reset sends nothing more.
    assert_eq!(ok(dir.path(), &["social", "send"]), "no post is due\n");
    let accounts = ok(dir.path(), &["social", "accounts"]);
    assert!(
        accounts.starts_with("x-main (x): daily_max 0, hourly_max 0, min_gap 0s\n"),
        "{accounts}"
    );
    assert!(
        accounts.contains(&format!("    post rate-limited: blocked until {when}")),
        "{accounts}"
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/2/tweets")
            .count(),
        1
    );
}

#[test]
fn a_sender_killed_mid_post_is_reconciled_by_the_next_process() {
    let (rt, fake) = fake_x();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, "[social]\nsend_lease = \"1s\"");
    // Another process queued the post, claimed it and sent it, and died before recording
    // the answer: the row is `sending` with a lease that has run out, and X has the tweet.
    rt.block_on(async {
        let config =
            Arc::new(dreamos::config::Config::load_file(&dir.path().join("dreamos.toml")).unwrap());
        let store = backend::open(dir.path()).await as Arc<dyn SocialStore>;
        let outbox = dreamos::social::Outbox::new(
            store.clone(),
            config,
            dreamos::social::platform_connect(),
            None,
        )
        .with_env(Arc::new(|_: &str| Some("x-access-0".to_string())));
        let order = PostOrder {
            account: "x-main".into(),
            content: PostContent {
                text: "sent just before the crash".into(),
                ..Default::default()
            },
            source: "test".into(),
            ..Default::default()
        };
        let Queued::Created(p) = outbox
            .enqueue(order, chrono::Utc::now().timestamp_millis())
            .await
            .unwrap()
        else {
            panic!("not queued")
        };
        let now = chrono::Utc::now().timestamp_millis();
        let claimed = store.claim_posts(now, now + 1, 1, None).await.unwrap();
        assert_eq!(claimed[0].id, p.id);
        let x = connect(
            spec(
                dreamos::clients::social::Platform::X,
                &fake.url,
                &[("access_token", "x-access-0")],
            ),
            reqwest::Client::new(),
            MemTokens::new(),
        )
        .unwrap();
        let req = PostRequest {
            text: "sent just before the crash".into(),
            idempotency_key: p.idempotency_key.clone(),
            ..Default::default()
        };
        x.post(&req).await.unwrap();
    });
    assert_eq!(fake.tweets().len(), 1);
    let sent = ok(dir.path(), &["social", "send"]);
    assert!(sent.contains("    1  posted"), "{sent}");
    assert_eq!(fake.tweets().len(), 1, "not posted twice");
    let queue: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["social", "queue", "--all", "--json"])).unwrap();
    assert_eq!(queue[0]["platform_id"], fake.tweets()[0].id.as_str());
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/2/tweets")
            .count(),
        1
    );
}

#[test]
fn the_report_shows_a_sparkline_per_metric() {
    let (_rt, fake) = fake_x();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &fake,
        "[social]\nmetrics_after = [\"1ms\", \"1h\"]",
    );
    ok(dir.path(), &["social", "post", "x-main", "measure me"]);
    fake.with(|s| s.tweets[0].likes = 2);
    assert!(ok(dir.path(), &["social", "send"]).contains("read metrics of 1 post(s)"));
    fake.with(|s| s.tweets[0].likes = 9);
    // A script reads them now (stored as one more sample).
    let o = ok(
        dir.path(),
        &[
            "run",
            "-e",
            "local m = assert(require('dreamos.social').metrics(1)); print(m.like_count)",
        ],
    );
    assert_eq!(o, "9\n");
    let report = ok(dir.path(), &["social", "report", "--account", "x-main"]);
    assert!(report.starts_with("#1 x-main (x) posted "), "{report}");
    assert!(report.contains("measure me"), "{report}");
    let likes = report
        .lines()
        .find(|l| l.trim_start().starts_with("like_count"))
        .unwrap();
    assert!(likes.ends_with("       9  ▁█"), "{likes:?}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["social", "report", "--json"])).unwrap();
    assert_eq!(
        json[0]["metrics"]["like_count"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn scripts_queue_posts_and_get_the_worlds_answers_as_nil_err() {
    let (_rt, fake) = fake_x();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, "");
    std::fs::write(dir.path().join("secret.png"), b"png").unwrap();
    let code = r#"
local social = require('dreamos.social')
local p = assert(social.post { account = 'x-main', text = 'from lua', at = '+1h' })
print(p.id, p.status, p.platform)
local again = assert(social.post { account = 'x-main', text = 'from lua', idempotency_key = p.idempotency_key })
print(again.id == p.id)
local none, err = social.post { account = 'x-main', text = 'from lua' }
print(none, err.kind, err.id == p.id)
local long, err2 = social.post { account = 'x-main', text = string.rep('字', 141) }
print(long, err2.kind)
local dry = assert(social.post { account = 'x-main', text = 'dry', dry_run = true })
print(dry.status, dry.requests[1].method)
local ok, e = pcall(social.post, { account = 'x-main', text = 'img', media = 'secret.png' })
print(ok, e)
print(#social.list { status = 'queued' })
"#;
    let o = ok(dir.path(), &["run", "-e", code]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "1\tqueued\tx");
    assert_eq!(lines[1], "true");
    assert_eq!(lines[2], "nil\tduplicate\ttrue");
    assert_eq!(lines[3], "nil\tinvalid");
    assert_eq!(lines[4], "dry_run\tPOST");
    assert!(
        lines[5].starts_with("false\t")
            && lines[5].contains(
                "social.post: media: access to 'secret.png' denied: no fs grant covers it"
            ),
        "{}",
        lines[5]
    );
    assert_eq!(lines[6], "1");
    assert!(
        fake.requests().is_empty(),
        "a script only queues; the daemon sends"
    );
}
