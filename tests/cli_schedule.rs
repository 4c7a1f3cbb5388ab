//! `dreamos schedule ...` through the real binary: previews with offsets across DST, bad
//! expressions and zones refused with the position and an example, add/list/pause/resume/
//! run/history/rm on the store, and configured schedules refused when their script is
//! missing. Each test works in its own temporary directory.

#[path = "support/backend.rs"]
mod backend;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn dreamos(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("dreamos").expect("binary built");
    cmd.current_dir(dir)
        .envs(backend::store_env(dir))
        .env_remove("DREAMOS_CONFIG")
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

#[test]
fn next_previews_times_with_the_zone_offset_across_dst() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "schedule",
            "next",
            "0 9 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-28T00:00:00Z",
            "-n",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2026-03-28T09:00:00+01:00\n2026-03-29T09:00:00+02:00\n2026-03-30T09:00:00+02:00\n"
    );
    // Fall-back day: 02:30 happens twice in Berlin, the job runs once.
    let out = run(
        dir.path(),
        &[
            "schedule",
            "next",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-10-24T12:00:00Z",
            "-n",
            "2",
        ],
    );
    assert_eq!(
        stdout(&out),
        "2026-10-25T02:30:00+02:00\n2026-10-26T02:30:00+01:00\n"
    );
    let out = run(dir.path(), &["schedule", "next", "@hourly"]);
    assert_eq!(stdout(&out).lines().count(), 5);
    assert!(!dir.path().join("data").exists(), "next needs no store");
}

#[test]
fn bad_expressions_and_zones_are_refused_with_position_and_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["schedule", "next", "0 9 * * FUNDAY"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("field 5 (day of week) 'FUNDAY' at position 9"),
        "{err}"
    );
    assert!(err.contains("'0 9 * * MON-FRI'"), "{err}");
    let out = run(
        dir.path(),
        &["schedule", "next", "@daily", "--tz", "Europe/Berln"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean 'Europe/Berlin'"),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir.path(),
        &[
            "schedule",
            "add",
            "x",
            "--cron",
            "61 * * * *",
            "--script",
            "x.lua",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("field 1 (minute) '61' at position 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_script_is_refused_at_add_and_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "schedule", "add", "x", "--cron", "@daily", "--script", "nope.lua",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("script nope.lua does not exist"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("dreamos.toml"),
        "[[schedules]]\nname = 'nightly'\ncron = '0 3 * * *'\nscript = 'gone.lua'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["schedule", "run", "nightly"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("script gone.lua does not exist"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("dreamos.toml"),
        "[[schedules]]\nname = 'nightly'\ncron = '0 3 * * * * * *'\nscript = 'gone.lua'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["schedule", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("schedules[0]"), "{}", stderr(&out));
}

#[test]
fn add_list_pause_resume_run_history_rm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.lua"),
        "print('hello from ' .. arg[1])",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "schedule",
            "add",
            "morning",
            "--cron",
            "0 9 * * MON-FRI",
            "--tz",
            "Europe/Berlin",
            "--script",
            "hello.lua",
            "--overlap",
            "queue",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("added morning: 0 9 * * MON-FRI (Europe/Berlin)"));

    let out = run(dir.path(), &["schedule", "list"]);
    let text = stdout(&out);
    assert!(
        text.contains("morning  [active]  0 9 * * MON-FRI  (Europe/Berlin)  script hello.lua"),
        "{text}"
    );
    let next_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("next:"))
        .unwrap();
    assert_eq!(next_line.matches("T09:00:00+0").count(), 3, "{next_line}");

    let out = run(dir.path(), &["schedule", "pause", "morning"]);
    assert!(out.status.success());
    assert!(stdout(&run(dir.path(), &["schedule", "list"])).contains("[paused]"));
    let out = run(dir.path(), &["schedule", "resume", "morning"]);
    assert!(out.status.success());
    assert!(stdout(&run(dir.path(), &["schedule", "list"])).contains("[active]"));

    let out = run(dir.path(), &["schedule", "run", "morning"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello from morning"),
        "{}",
        stdout(&out)
    );
    let out = run(dir.path(), &["schedule", "history", "morning"]);
    let text = stdout(&out);
    assert!(text.contains("manual") && text.contains("ok"), "{text}");

    std::fs::write(dir.path().join("hello.lua"), "error('no coffee')").unwrap();
    let out = run(dir.path(), &["schedule", "run", "morning"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no coffee"), "{}", stderr(&out));
    let text = stdout(&run(
        dir.path(),
        &["schedule", "history", "morning", "--json"],
    ));
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "failed");
    assert!(last["error"]
        .as_str()
        .unwrap()
        .contains("hello.lua:1: no coffee"));

    let out = run(dir.path(), &["schedule", "rm", "morning"]);
    assert!(out.status.success());
    assert!(stdout(&run(dir.path(), &["schedule", "list"])).contains("no schedules"));
    let out = run(dir.path(), &["schedule", "rm", "morning"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no schedule named 'morning'"));
}

#[test]
fn configured_schedules_are_listed_before_the_daemon_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.lua"), "").unwrap();
    std::fs::write(
        dir.path().join("dreamos.toml"),
        "[scheduler]\ntimezone = 'America/New_York'\n\n[[schedules]]\nname = 'report'\n\
         cron = '@daily'\nscript = 'r.lua'\nmissed = 'run_all'\n",
    )
    .unwrap();
    let out = run(dir.path(), &["schedule", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(info["name"], "report");
    assert_eq!(info["timezone"], "America/New_York");
    assert_eq!(info["source"], "config");
    let next = info["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    assert!(
        next[0].as_str().unwrap().contains("T00:00:00-0"),
        "{next:?}"
    );
}
