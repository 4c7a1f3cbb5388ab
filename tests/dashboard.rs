//! The dashboard in a real browser: headless Chromium driven through chromedriver against
//! a daemon started here (see `tests/daemon_http.rs` for the HTTP side without a browser).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them the test prints one line and passes — unless `CI=true`, where it fails.

#[path = "support/backend.rs"]
mod backend;

#[path = "support/daemon.rs"]
mod daemon;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::path::{Path, PathBuf};

use daemon::{dreamos, runtime, start_daemon, Daemon};
use webdriver::{wait_for, Driver, Session};

/// Where the browser and its driver are, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(n))
                    .find(|p| p.is_file())
            })
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Ok((c, d)),
        _ => Err("chromium or chromedriver not found; install them with \
                  `apt-get install -y chromium chromium-driver` (as root) to run it"
            .into()),
    }
}

fn screenshots_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[test]
fn dashboard_in_headless_chromium() {
    let (chromium, chromedriver) = match browser() {
        Ok(found) => found,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("browser test cannot run with CI=true: {why}")
        }
        Err(why) => {
            // Straight to stderr, past the harness's capture of a passing test's output.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped dashboard_in_headless_chromium: {why}"
            );
            return;
        }
    };
    let d = start_daemon();
    let shots = screenshots_dir();
    let profile = tempfile::tempdir().expect("profile dir");
    runtime().block_on(async {
        let driver = Driver::start(&chromedriver).await;
        let b = Session::new(&driver, &chromium, profile.path()).await;
        let result = drive(&b, &d, &shots).await;
        b.close().await;
        result
    });
}

async fn drive(b: &Session, d: &Daemon, shots: &Path) {
    let dir = d.dir.path();
    // Log in.
    b.goto(&format!("http://{}/", d.addr)).await;
    b.type_into("#token", &d.token).await;
    b.click("#login button[type=submit]").await;

    // Agents: both listed and running.
    let scout_state = "tr[data-agent=\"scout\"] .agent-state";
    b.wait_text(scout_state, "running", |t| t == "running")
        .await;
    b.wait_text("tr[data-agent=\"worker\"] .agent-state", "running", |t| {
        t == "running"
    })
    .await;
    b.screenshot(&shots.join("agents.png")).await;

    // Restart: the page follows the state without reloading. The scout waits in
    // `starting` until the gate opens.
    b.eval("window.__same_page = true;").await;
    b.click("tr[data-agent=\"scout\"] button[data-action=\"restart\"]")
        .await;
    b.wait_text(scout_state, "starting", |t| t == "starting")
        .await;
    dreamos(dir, &["bus", "send", "gate.scout", "\"go\""]);
    b.wait_text(scout_state, "running again", |t| t == "running")
        .await;
    assert_eq!(b.text("tr[data-agent=\"scout\"] .restarts").await, "1");
    assert_eq!(
        b.eval("return window.__same_page === true;").await,
        true,
        "the page reloaded"
    );

    // Tasks: the progress bar follows the script's reports.
    b.click("#nav a[data-page=\"tasks\"]").await;
    dreamos(dir, &["task", "add", "demo task", "--category", "demo"]);
    let progress = "#board .card[data-task=\"1\"] .progress-text";
    b.wait_text(progress, "30%", |t| t == "30%").await;
    let width = "return document.querySelector('.card[data-task=\"1\"] .fill').style.width;";
    assert_eq!(b.eval(width).await, "30%");
    b.screenshot(&shots.join("tasks.png")).await;
    dreamos(dir, &["bus", "send", "gate.task", "\"go\""]);
    b.wait_text(progress, "80%", |t| t == "80%").await;
    assert_eq!(b.eval(width).await, "80%");
    // The dependency view of one task: a report that waits for the demo task.
    dreamos(dir, &["task", "add", "report", "--depends-on", "1"]);
    b.click("#board .card[data-task=\"1\"]").await;
    b.wait_text("#task-detail", "what needs it", |t| t.contains("#2 report"))
        .await;
    b.click("#board .card[data-task=\"2\"]").await;
    b.wait_text("#task-detail", "what it needs", |t| {
        t.contains("#2 report") && t.contains("#1 demo task")
    })
    .await;
    dreamos(dir, &["bus", "send", "gate.task", "\"go\""]);
    b.wait_text("#board .column[data-status=\"done\"] h3", "one done", |t| {
        t.eq_ignore_ascii_case("done (1)")
    })
    .await;

    // Logs: a live tail filtered to one agent shows its lines and not the other's.
    b.click("#nav a[data-page=\"logs\"]").await;
    b.wait_find("#log-agent").await;
    b.type_into("#log-agent", "scout").await;
    // The tail reconnects with the filter on input; wait until it is connected.
    b.wait_find("#logs[data-tail=\"agent=scout\"]").await;
    dreamos(dir, &["agent", "message", "worker", "\"for-worker\""]);
    wait_for("the worker's line in the log file", || async {
        let out = dreamos(dir, &["log", "search", "for-worker", "--json"]);
        (!out.stdout.is_empty()).then_some(())
    })
    .await;
    dreamos(dir, &["agent", "message", "scout", "\"for-scout\""]);
    b.wait_text("#logs tbody", "the scout's line", |t| {
        t.contains("scout got for-scout")
    })
    .await;
    assert!(
        !b.text("#logs tbody").await.contains("for-worker"),
        "filter let the worker's line through"
    );
    b.screenshot(&shots.join("logs.png")).await;
    // Search over the files: text from scripts is shown as text, never as markup.
    b.type_into("#log-text", "ready").await;
    b.click("#log-search").await;
    b.wait_text("#logs tbody", "the search result", |t| {
        t.contains("scout <b>ready</b>")
    })
    .await;
    assert_eq!(
        b.eval("return document.querySelectorAll('#logs b').length;")
            .await,
        0
    );

    // Bus and Schedules.
    b.click("#nav a[data-page=\"bus\"]").await;
    b.wait_text("#bus-messages tbody", "messages", |t| {
        t.contains("gate.task")
    })
    .await;
    b.screenshot(&shots.join("bus.png")).await;
    b.click("#nav a[data-page=\"schedules\"]").await;
    b.wait_text("#schedules tbody", "the nightly schedule", |t| {
        t.contains("nightly")
    })
    .await;
    b.screenshot(&shots.join("schedules.png")).await;

    // Social: outbox posts by state and one post's engagement over time.
    let (posted, queued) = seed_social(dir).await;
    b.click("#nav a[data-page=\"social\"]").await;
    b.wait_text(
        &format!("#social-posts tr[data-post=\"{posted}\"]"),
        "the posted post",
        |t| t.contains("posted") && t.contains("hello from the swarm"),
    )
    .await;
    // Text from scripts is text: the markup in the queued post is shown, not run.
    b.wait_text(
        &format!("#social-posts tr[data-post=\"{queued}\"]"),
        "the queued post",
        |t| t.contains("<img src=x onerror=alert(1)>"),
    )
    .await;
    assert_eq!(
        b.eval("return document.querySelectorAll('#social-posts img').length;")
            .await,
        0
    );
    b.click(&format!("#social-posts tr[data-post=\"{posted}\"]"))
        .await;
    b.wait_text(
        "#social-detail .chart[data-metric=\"likes\"] figcaption",
        "likes",
        |t| t == "likes: 9",
    )
    .await;
    let points = "return document.querySelectorAll('.chart[data-metric=\"likes\"] circle').length;";
    assert_eq!(b.eval(points).await, 2);
    b.screenshot(&shots.join("social.png")).await;
}

/// Puts two posts in the daemon's outbox through the store: one posted with two
/// engagement readings, one scheduled for next year (with markup in its text).
async fn seed_social(dir: &Path) -> (i64, i64) {
    use dreamos::clients::social::Platform;
    use dreamos::social::{Inserted, NewPost, Outcome, PostContent};
    use dreamos::store::SocialStore;
    let db = dir.join("data/dreamos.db");
    {
        let store = dreamos::store::open_sqlite(&db).await.expect("open");
        let now = chrono::Utc::now().timestamp_millis();
        let post = |text: &str, key: &str, not_before: i64| NewPost {
            account: "x-main".into(),
            platform: Platform::X,
            content: PostContent {
                text: text.into(),
                ..PostContent::default()
            },
            idempotency_key: key.into(),
            not_before,
            parent: None,
            source: "test".into(),
            max_attempts: 3,
        };
        let insert = |p: NewPost| {
            let store = store.clone();
            async move {
                let hash = p.content.hash(&p.account);
                match store.insert_post(p, hash, None, now).await.expect("insert") {
                    Inserted::Created(r) => r.id,
                    other => panic!("not created: {other:?}"),
                }
            }
        };
        let posted = insert(post("hello from the swarm", "k1", now)).await;
        let claimed = store
            .claim_posts(now, now + 60_000, 1, Some(posted))
            .await
            .expect("claim");
        assert_eq!(
            claimed.len(),
            1,
            "the test claims its post before the daemon"
        );
        let outcome = Outcome::Posted {
            platform_id: "1001".into(),
            url: Some("https://x.com/i/status/1001".into()),
            at: now,
            metrics_next: None,
        };
        store
            .finish_post(posted, outcome, now)
            .await
            .expect("finish");
        for (at, likes) in [(now + 1_000, 3), (now + 2_000, 9)] {
            let values = vec![("likes".to_string(), likes), ("replies".to_string(), 1)];
            store
                .record_metrics(posted, at, values, None, None)
                .await
                .expect("metrics");
        }
        let next_year = now + 365 * 86_400_000;
        let queued = insert(post("<img src=x onerror=alert(1)>", "k2", next_year)).await;
        (posted, queued)
    }
}
