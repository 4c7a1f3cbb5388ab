//! The shipped strategies (`scripts/social/`) end to end through the real binary, each
//! against its platform's fake: `dreamos run` queues, `dreamos social send` (or the daemon)
//! sends. Also a strategy fired by a cron schedule inside `dreamos serve`.

mod fakes;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fakes::social::facebook::{FakeFacebook, PAGE_ID, PAGE_TOKEN};
use fakes::social::instagram::{FakeInstagram, IG_TOKEN, IG_USER};
use fakes::social::linkedin::{FakeLinkedin, AUTHOR, TOKEN as LI_TOKEN};
use fakes::social::reddit::{FakeReddit, CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};
use fakes::social::stocktwits::{FakeStocktwits, TOKEN as ST_TOKEN};
use fakes::social::x::FakeX;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/social")
        .join(name)
        .display()
        .to_string()
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamos"));
    c.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("T_TOKEN", "x-access-0")
        .env("T_RD_SECRET", CLIENT_SECRET)
        .env("T_RD_PASSWORD", PASSWORD)
        .env("T_FB_TOKEN", PAGE_TOKEN)
        .env("T_IG_TOKEN", IG_TOKEN)
        .env("T_LI_TOKEN", LI_TOKEN)
        .env("T_ST_TOKEN", ST_TOKEN)
        .args(args);
    c
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o: Output = command(dir, args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{args:?} failed: {text}");
    text
}

fn setup(accounts: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[log]\nconsole = \"off\"\n[daemon]\nport = 0\n{accounts}\n");
    std::fs::write(dir.path().join("dreamos.toml"), text).unwrap();
    std::fs::create_dir_all(dir.path().join("data/social")).unwrap();
    dir
}

fn devlog(dir: &Path, category: &str, text: &str) {
    let code = format!("require('dreamos.log').devlog({category:?}, {text:?})");
    ok(dir, &["run", "-e", &code]);
}

#[test]
fn reddit_posts_the_latest_devlog_and_comments_on_it() {
    let rt = rt();
    let fake = rt.block_on(FakeReddit::start());
    let dir = setup(&format!(
        "[social.accounts.rd]\nplatform = \"reddit\"\nbase_url = \"{u}\"\nauth_url = \"{u}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret_env = \"T_RD_SECRET\"\nusername = \"{USERNAME}\"\n\
         password_env = \"T_RD_PASSWORD\"\nuser_agent = \"linux:dreamos.test:v1 (by /u/{USERNAME})\"\n",
        u = fake.url
    ));
    std::fs::write(
        dir.path().join("data/social/reddit.json"),
        r#"{"subreddit": "dreamos", "comment": "Ask me anything about it."}"#,
    )
    .unwrap();
    devlog(
        dir.path(),
        "development",
        "Shipped the durable social outbox. It never double-posts",
    );
    ok(dir.path(), &["run", &script("reddit_post.lua")]);
    assert!(fake.things().is_empty(), "the script only queues");
    ok(dir.path(), &["social", "send"]);
    let things = fake.things();
    assert_eq!(things.len(), 2, "{things:?}");
    assert_eq!(things[0].subreddit, "dreamos");
    assert_eq!(things[0].title, "Shipped the durable social outbox");
    assert_eq!(things[1].body, "Ask me anything about it.");
    // Running the strategy again the same day posts nothing new.
    ok(dir.path(), &["run", &script("reddit_post.lua")]);
    ok(dir.path(), &["social", "send"]);
    assert_eq!(fake.things().len(), 2);
}

#[test]
fn facebook_posts_the_weekly_devlog_summary() {
    let rt = rt();
    let fake = rt.block_on(FakeFacebook::start());
    let dir = setup(&format!(
        "[social.accounts.fb]\nplatform = \"facebook\"\nbase_url = \"{}\"\npage_id = \"{PAGE_ID}\"\n\
         access_token_env = \"T_FB_TOKEN\"\n",
        fake.base()
    ));
    devlog(dir.path(), "development", "Added the outbox");
    devlog(dir.path(), "tasks", "Planned the dashboard");
    ok(dir.path(), &["run", &script("facebook_page.lua")]);
    ok(dir.path(), &["social", "send"]);
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].message,
        "This week in the project:\n• Added the outbox\n• Planned the dashboard\n\n#devlog"
    );
}

#[test]
fn instagram_posts_an_image_by_its_public_url() {
    let rt = rt();
    let fake = rt.block_on(FakeInstagram::start());
    let dir = setup(&format!(
        "[social.accounts.ig]\nplatform = \"instagram\"\nbase_url = \"{}\"\nuser_id = \"{IG_USER}\"\n\
         access_token_env = \"T_IG_TOKEN\"\n",
        fake.base()
    ));
    std::fs::write(
        dir.path().join("data/social/today.jpg"),
        b"\xff\xd8\xff\xe0 jpeg",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data/social/instagram.json"),
        r#"{"image": "data/social/today.jpg", "url": "https://cdn.example/today.jpg",
            "caption": "Today's build", "tags": ["rust", "lua"]}"#,
    )
    .unwrap();
    ok(dir.path(), &["run", &script("instagram_image.lua")]);
    ok(dir.path(), &["social", "send"]);
    let media = fake.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].caption, "Today's build\n\n#rust #lua");
    let container = fake
        .with(|s| s.containers.values().next().cloned())
        .unwrap();
    assert_eq!(container.image_url, "https://cdn.example/today.jpg");
}

#[test]
fn linkedin_posts_the_latest_devlog_with_hashtags() {
    let rt = rt();
    let fake = rt.block_on(FakeLinkedin::start());
    let dir = setup(&format!(
        "[social.accounts.li]\nplatform = \"linkedin\"\nbase_url = \"{}\"\nauthor_urn = \"{AUTHOR}\"\n\
         access_token_env = \"T_LI_TOKEN\"\n",
        fake.url
    ));
    devlog(
        dir.path(),
        "research",
        "Compared four rate-limit header formats",
    );
    ok(dir.path(), &["run", &script("linkedin_devlog.lua")]);
    ok(dir.path(), &["social", "send"]);
    let posts = fake.with(|s| s.posts.clone());
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["author"], AUTHOR);
    // Reserved characters of LinkedIn's little-text format arrive escaped.
    assert_eq!(
        posts[0].body["commentary"],
        "Dev update \\(research\\): Compared four rate-limit header formats\n\n\\#buildinpublic \\#research"
    );
    let queue = ok(dir.path(), &["social", "queue", "--all", "--json"]);
    let queue: serde_json::Value = serde_json::from_str(&queue).unwrap();
    assert_eq!(queue[0]["platform_id"], posts[0].urn.as_str());
}

#[test]
fn stocktwits_posts_the_watchlist_with_cashtags_and_sentiment() {
    let rt = rt();
    let fake = rt.block_on(FakeStocktwits::start());
    let dir = setup(&format!(
        "[social.accounts.st]\nplatform = \"stocktwits\"\nbase_url = \"{}\"\naccess_token_env = \"T_ST_TOKEN\"\n\
         [social.accounts.st-demo]\nplatform = \"stocktwits\"\nbase_url = \"{}\"\n",
        fake.url, fake.url
    ));
    std::fs::write(
        dir.path().join("data/social/watchlist.json"),
        r#"{"symbols": ["aapl", "NVDA"], "sentiment": "bullish", "note": "earnings week"}"#,
    )
    .unwrap();
    ok(dir.path(), &["run", &script("stocktwits_watchlist.lua")]);
    ok(dir.path(), &["social", "send"]);
    let messages = fake.with(|s| s.messages.clone());
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].body,
        "$AAPL $NVDA on my watchlist today: earnings week"
    );
    assert_eq!(messages[0].sentiment.as_deref(), Some("bullish"));

    // An account without a token (StockTwits registers no new apps) previews only, and says so.
    let o = command(
        dir.path(),
        &["social", "post", "st-demo", "$SPY looks heavy"],
    )
    .output()
    .unwrap();
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("dry run: account 'st-demo' has no StockTwits credentials"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with(&format!("POST {}/messages/create.json", fake.url)),
        "{stdout}"
    );
    assert_eq!(fake.with(|s| s.messages.len()), 1, "nothing sent");
}

#[test]
fn devlog_to_social_posts_each_entry_once_per_account() {
    let rt = rt();
    let x = rt.block_on(FakeX::start());
    let li = rt.block_on(FakeLinkedin::start());
    let dir = setup(&format!(
        "[social.accounts.x-main]\nplatform = \"x\"\nbase_url = \"{}\"\naccess_token_env = \"T_TOKEN\"\n\
         [social.accounts.li]\nplatform = \"linkedin\"\nbase_url = \"{}\"\nauthor_urn = \"{AUTHOR}\"\n\
         access_token_env = \"T_LI_TOKEN\"\n",
        x.url, li.url
    ));
    devlog(dir.path(), "development", "Rate limits reschedule posts");
    devlog(dir.path(), "system", "Tokens refresh and are stored");
    for _ in 0..2 {
        ok(dir.path(), &["run", &script("devlog_to_social.lua")]);
        ok(dir.path(), &["social", "send"]);
    }
    let tweets: Vec<String> = x.tweets().into_iter().map(|t| t.text).collect();
    assert_eq!(
        tweets,
        vec![
            "Rate limits reschedule posts #development",
            "Tokens refresh and are stored #system"
        ]
    );
    assert_eq!(li.with(|s| s.posts.len()), 2);
}

/// A running daemon; killed if the test fails before it stops.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn a_cron_scheduled_x_thread_fires_through_the_scheduler_and_posts_once() {
    let rt = rt();
    let fake = rt.block_on(FakeX::start());
    let dir = setup(&format!(
        "[social]\npoll_interval = \"100ms\"\n\
         [social.accounts.x-main]\nplatform = \"x\"\nbase_url = \"{}\"\naccess_token_env = \"T_TOKEN\"\n\
         [[schedules]]\nname = \"x-thread\"\ncron = \"* * * * * *\"\nscript = \"{}\"\n",
        fake.url,
        script("x_thread.lua")
    ));
    devlog(
        dir.path(),
        "development",
        "Outbox: every post is stored before any HTTP call",
    );
    devlog(
        dir.path(),
        "research",
        "Read how each platform signals rate limits",
    );
    let child = command(dir.path(), &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(Some(child));
    wait_until("the thread on X", || fake.tweets().len() >= 3);
    // The schedule keeps firing every second; the thread is not posted again.
    wait_until("three more runs", || {
        let h = ok(dir.path(), &["schedule", "history", "x-thread"]);
        h.lines().filter(|l| l.contains(" ok")).count() >= 4
    });
    let child = daemon.0.take().unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait_with_output().unwrap().status;
    assert!(status.success());
    let tweets = fake.tweets();
    assert_eq!(tweets.len(), 3, "{tweets:?}");
    assert_eq!(tweets[0].text, "What got built today (2 updates) 🧵");
    assert_eq!(
        tweets[1].text,
        "Outbox: every post is stored before any HTTP call"
    );
    // Each part replies to the one before.
    let posts: Vec<serde_json::Value> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .map(|r| r.json())
        .collect();
    assert_eq!(posts.len(), 3);
    assert_eq!(
        posts[1]["reply"]["in_reply_to_tweet_id"],
        tweets[0].id.as_str()
    );
    assert_eq!(
        posts[2]["reply"]["in_reply_to_tweet_id"],
        tweets[1].id.as_str()
    );
}
