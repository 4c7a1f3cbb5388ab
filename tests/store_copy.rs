//! `dreamos store copy` through the real binary: an embedded deployment built with the
//! commands a user runs (bus messages acked and dead, tasks with a dependency and their
//! events, key/value state, a schedule and its runs, queued social posts), copied into a fresh PostgreSQL
//! schema, then read back on PostgreSQL through the store and compared with what SQLite
//! answered: nothing lost, and new ids continue after the old ones. A copy that cannot go
//! ahead (the target holds rows, the URL is wrong) writes nothing and says why.
//!
//! Needs PostgreSQL: `DREAMOS_TEST_POSTGRES_URL` or a throwaway cluster
//! (`support/postgres.rs`); skipped with one line without either, except under `CI=true`.

#[path = "support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use dreamos::store::{AnyStore, HistoryQuery, SocialStore, StoreTarget};
use dreamos::tasks::ListFilter;

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    // SQLite in `dir`, whatever the environment says: the copy's source.
    cmd.current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("T_X_ACCESS", "x-access-0")
        .env_remove("DREAMOS_STORE_BACKEND")
        .env_remove("DREAMOS_DATABASE_URL")
        .env_remove("DREAMOS_STORE_SCHEMA")
        .env("DREAMOS_LOG_CONSOLE", "off");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    dreamos(dir).args(args).output().expect("run dreamos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "dreamos {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `dreamos ARGS` in `dir` on the PostgreSQL store `schema` (the `[store]` overrides a
/// deployment would set), insisting on success; returns stdout.
fn ok_on_pg(dir: &Path, url: &str, schema: &str, args: &[&str]) -> String {
    let out = dreamos(dir)
        .env("DREAMOS_STORE_BACKEND", "postgres")
        .env("DREAMOS_DATABASE_URL", url)
        .env("DREAMOS_STORE_SCHEMA", schema)
        .args(args)
        .output()
        .expect("run dreamos");
    assert!(
        out.status.success(),
        "dreamos {args:?} on PostgreSQL failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// What the commands a user reads a deployment with print.
const READS: &[&[&str]] = &[
    &["bus", "history", "--json"],
    &["bus", "dlq", "list", "--json"],
    &["bus", "stats"],
    &["task", "list", "--json"],
    &["task", "show", "2", "--json"],
    &["task", "graph"],
    &["schedule", "history", "nightly", "--json"],
    &["social", "queue", "--all", "--json"],
    &[
        "run",
        "-e",
        "print(require('dreamos.kv').get('greeting').text)",
    ],
];

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        !out.status.success(),
        "dreamos {args:?} should have failed: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// A schema of its own on the test server, dropped when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(url: &str, label: &str) -> Schema {
        let schema = Schema {
            url: url.to_string(),
            name: format!("copy_{label}_{}", std::process::id()),
        };
        schema.admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.name));
        schema
    }

    fn target(&self) -> StoreTarget {
        StoreTarget::Postgres {
            url: self.url.clone(),
            schema: Some(self.name.clone()),
        }
    }

    fn admin(&self, sql: &str) {
        let rt = runtime();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client.batch_execute(sql).await.expect("admin statement");
        });
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Builds an embedded deployment in `dir` the way a user would.
fn build_deployment(dir: &Path) {
    // An account whose posts are only queued here (due in an hour), never sent.
    std::fs::write(
        dir.join("dreamos.toml"),
        "[social.accounts.x-main]\nplatform = \"x\"\nbase_url = \"http://127.0.0.1:9\"\n\
         access_token_env = \"T_X_ACCESS\"\n",
    )
    .expect("config");
    ok(
        dir,
        &[
            "social",
            "post",
            "x-main",
            "moving to PostgreSQL",
            "--at",
            "+1h",
        ],
    );
    ok(
        dir,
        &[
            "social",
            "post",
            "x-main",
            "and back to work",
            "--at",
            "+2h",
        ],
    );
    for n in 1..=3 {
        ok(
            dir,
            &["bus", "send", "agent:scout", &format!("{{\"n\":{n}}}")],
        );
    }
    ok(
        dir,
        &[
            "run",
            "-e",
            r#"local bus = require("dreamos.bus")
               for _ = 1, 2 do assert(bus.recv("agent:scout", 10)):ack() end
               require("dreamos.kv").set("greeting", {text = "hello", n = 2})"#,
        ],
    );
    ok(
        dir,
        &["bus", "send", "captain", r#""x""#, "--max-attempts", "1"],
    );
    ok(
        dir,
        &[
            "run",
            "-e",
            r#"assert(require("dreamos.bus").recv("captain", 10)):nack("handler exploded")"#,
        ],
    );
    ok(dir, &["task", "add", "Fetch", "--priority", "high"]);
    ok(dir, &["task", "add", "Build", "--depends-on", "1"]);
    ok(dir, &["task", "claim", "--agent", "w1"]);
    ok(dir, &["task", "progress", "1", "50", "--agent", "w1"]);
    ok(dir, &["task", "done", "1", "--agent", "w1"]);
    std::fs::write(dir.join("hello.lua"), "print('hello from ' .. arg[1])").expect("script");
    ok(
        dir,
        &[
            "schedule",
            "add",
            "nightly",
            "--cron",
            "@daily",
            "--script",
            "hello.lua",
        ],
    );
    ok(dir, &["schedule", "run", "nightly"]);
    ok(dir, &["schedule", "run", "nightly"]);
}

/// What a user can see of a store: history with every transition, dead letters, tasks
/// with their dependencies and events, and the key/value state.
#[derive(Debug, PartialEq)]
struct Seen {
    history: serde_json::Value,
    dead: serde_json::Value,
    tasks: Vec<dreamos::tasks::Task>,
    edges: Vec<(i64, i64)>,
    events: Vec<dreamos::tasks::TaskEvent>,
    kv: Option<serde_json::Value>,
    posts: Vec<dreamos::social::PostRecord>,
}

async fn seen(store: &AnyStore) -> Seen {
    let history = store
        .bus()
        .history(HistoryQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("history");
    let dead = store.bus().dead_letters(100).await.expect("dead letters");
    let tasks = store
        .tasks()
        .list_tasks(ListFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("tasks");
    Seen {
        history: serde_json::to_value(history).expect("json"),
        dead: serde_json::to_value(dead).expect("json"),
        tasks,
        edges: store.tasks().task_edges(None).await.expect("edges"),
        events: store
            .tasks()
            .task_events(0, 100, None)
            .await
            .expect("events"),
        kv: store.kv().kv_get("-e", "greeting").await.expect("kv"),
        posts: posts(store).await,
    }
}

async fn posts(store: &AnyStore) -> Vec<dreamos::social::PostRecord> {
    let filter = dreamos::social::PostFilter::default();
    match store {
        AnyStore::Sqlite(s) => s.list_posts(filter).await,
        AnyStore::Postgres(s) => s.list_posts(filter).await,
    }
    .expect("posts")
}

/// `store status` row counts (the lines after the schema version).
fn counts(dir: &Path, target: &str) -> Vec<String> {
    ok(dir, &["store", "status", "--store", target])
        .lines()
        .skip(3)
        .map(String::from)
        .collect()
}

/// `store copy --to TO --schema SCHEMA`.
fn copy_args<'a>(to: &'a str, schema: &'a str) -> [&'a str; 6] {
    ["store", "copy", "--to", to, "--schema", schema]
}

fn pg_arg(url: &str) -> String {
    format!("postgres:{url}")
}

#[test]
fn a_deployment_moves_to_postgres_with_its_history_and_ids_continue() {
    let Some(url) = postgres::postgres_url("store_copy") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    build_deployment(d);
    let db = d.join("data/dreamos.db");
    let schema = Schema::new(&url, "full");

    let copied = ok(d, &copy_args(&pg_arg(&url), &schema.name));
    assert!(copied.contains("bus_messages       4\n"), "{copied}");
    assert!(copied.contains("tasks              2\n"), "{copied}");
    assert!(copied.contains("schedule_runs      2\n"), "{copied}");
    assert!(copied.contains("social_posts       2\n"), "{copied}");
    assert!(copied.contains("each table's count checked"), "{copied}");
    assert!(
        copied.contains("not copied: bus_sequence (message ids come from the sequence"),
        "{copied}"
    );
    let pg_target = schema.target();
    assert_eq!(
        counts_in(&pg_target),
        counts(d, &format!("sqlite:{}", db.display()))
    );

    // The same commands print the same on PostgreSQL as they did on SQLite.
    for args in READS {
        let before = ok(d, args);
        let after = ok_on_pg(d, &url, &schema.name, args);
        assert_eq!(after, before, "dreamos {args:?}");
    }

    let rt = runtime();
    rt.block_on(async {
        let sqlite = StoreTarget::Sqlite(db.clone())
            .open()
            .await
            .expect("sqlite");
        let pg = pg_target.open().await.expect("postgres");
        let before = seen(&sqlite).await;
        assert_eq!(seen(&pg).await, before);
        assert_eq!(before.tasks.len(), 2);
        assert_eq!(before.edges, vec![(2, 1)]);
        assert!(before.events.len() >= 4, "{:?}", before.events);
        assert_eq!(before.dead.as_array().map(Vec::len), Some(1));
        assert_eq!(before.posts.len(), 2);
    });

    // New rows get new ids, after the copied ones.
    assert_eq!(
        ok_on_pg(d, &url, &schema.name, &["bus", "send", "agent:scout", "{}"]),
        "sent #5 to agent:scout\n"
    );
    assert_eq!(
        ok_on_pg(d, &url, &schema.name, &["task", "add", "Ship"]),
        "added task 3 (ready)\n"
    );
    let queued = ok_on_pg(
        d,
        &url,
        &schema.name,
        &[
            "social",
            "post",
            "x-main",
            "first from PostgreSQL",
            "--at",
            "+3h",
        ],
    );
    assert!(queued.starts_with("post 3 queued"), "{queued}");
}

/// `store status` counts of a PostgreSQL target in a schema (the CLI's `--store` has no
/// schema, so through the store itself).
fn counts_in(target: &StoreTarget) -> Vec<String> {
    runtime().block_on(async {
        let store = target.open().await.expect("open");
        store
            .table_counts()
            .await
            .expect("counts")
            .into_iter()
            .map(|(table, n)| format!("{table:<19}{n}"))
            .collect()
    })
}

#[test]
fn a_copy_that_cannot_go_ahead_writes_nothing_and_says_why() {
    let Some(url) = postgres::postgres_url("store_copy") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    build_deployment(d);
    let schema = Schema::new(&url, "refused");
    let to = pg_arg(&url);

    // A wrong URL: nothing to write to, and the reason.
    let err = fails(
        d,
        &[
            "store",
            "copy",
            "--to",
            "postgres:postgres://nobody:s3cret@127.0.0.1:1/x",
        ],
    );
    assert!(err.contains("nothing was copied"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    // A target that already holds rows.
    ok(d, &copy_args(&to, &schema.name));
    let before = counts_in(&schema.target());
    let err = fails(d, &copy_args(&to, &schema.name));
    assert!(
        err.contains("the PostgreSQL store already holds data (bus_events holds"),
        "{err}"
    );
    assert!(err.contains("bus_messages holds 4 rows"), "{err}");
    assert!(err.contains("nothing was copied"), "{err}");
    assert_eq!(counts_in(&schema.target()), before);

    // The other direction is not what store copy does.
    let err = fails(
        d,
        &["store", "copy", "--from", &to, "--to", "sqlite:back.db"],
    );
    assert!(err.contains("--from must be a SQLite store"), "{err}");
}

#[test]
fn history_with_two_runs_for_one_fire_time_is_named_and_nothing_is_copied() {
    let Some(url) = postgres::postgres_url("store_copy") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    build_deployment(d);
    // History as an older SQLite store could hold it: one fire time run twice.
    let db = rusqlite::Connection::open(d.join("data/dreamos.db")).expect("open SQLite");
    db.execute_batch(
        "INSERT INTO schedule_runs (schedule, kind, scheduled, started, ended, outcome)
         VALUES ('nightly', 'scheduled', 1767225600000, 1767225600000, 1767225601000, 'ok'),
                ('nightly', 'catchup', 1767225600000, 1767225700000, 1767225701000, 'ok')",
    )
    .expect("insert runs");
    drop(db);
    let schema = Schema::new(&url, "twice");

    let err = fails(d, &copy_args(&pg_arg(&url), &schema.name));
    assert!(
        err.contains("of schedule 'nightly' all hold the fire time 2026-01-01T00:00:00+00:00"),
        "{err}"
    );
    assert!(
        err.contains("UPDATE schedule_runs SET outcome = 'interrupted'"),
        "{err}"
    );
    assert!(err.contains("nothing was copied"), "{err}");
    assert!(
        counts_in(&schema.target())
            .iter()
            .all(|line| line.trim_end().ends_with(" 0")),
        "{:?}",
        counts_in(&schema.target())
    );
}
