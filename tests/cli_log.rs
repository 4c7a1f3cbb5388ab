//! `dreamos log tail` and `dreamos log search` through the binary, over a log directory
//! with an archive, a backup and the live file, as rotation leaves them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn dreamos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .args(args)
        .current_dir(dir)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .output()
        .expect("run dreamos")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line(ts: &str, level: &str, agent: &str, message: &str) -> String {
    format!(
        "{{\"ts\":\"{ts}\",\"level\":\"{level}\",\"target\":\"dreamos::lua::agent::methods\",\"message\":\"{message}\",\"agent\":\"{agent}\"}}\n"
    )
}

/// Logs as rotation leaves them: an old gzip archive, a backup, the live file.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::write(p.join("dreamos.toml"), "[log]\ndir = \"logs\"\n").expect("config");
    let logs = p.join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let archived = line(
        "2020-01-01T00:00:00.000Z",
        "WARN",
        "scout",
        "disk nearly full (archived)",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(archived.as_bytes()).expect("gzip");
    std::fs::write(
        logs.join("dreamos.jsonl.20200101T000000.000Z.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("archive");
    let now = chrono::Utc::now();
    let ts = |secs_ago: i64| {
        (now - chrono::Duration::seconds(secs_ago))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    std::fs::write(
        logs.join("dreamos.jsonl.1"),
        line(&ts(30), "INFO", "worker", "task started"),
    )
    .expect("backup");
    std::fs::write(
        logs.join("dreamos.jsonl"),
        line(&ts(20), "ERROR", "scout", "Disk full") + &line(&ts(10), "INFO", "scout", "retrying"),
    )
    .expect("live");
    dir
}

#[test]
fn search_reads_archives_and_filters_like_the_dashboard() {
    let dir = project();
    let p = dir.path();
    let all = stdout(&dreamos(p, &["log", "search", "disk"]));
    assert!(all.contains("disk nearly full (archived)"), "{all}");
    assert!(all.contains("Disk full"), "{all}");
    assert!(!all.contains("retrying"), "{all}");
    // Oldest first: the archived line comes before the live one.
    assert!(all.find("archived").expect("a") < all.find("Disk full").expect("b"));
    let recent = stdout(&dreamos(p, &["log", "search", "disk", "--since", "1d"]));
    assert!(
        !recent.contains("archived") && recent.contains("Disk full"),
        "{recent}"
    );
    let errors = stdout(&dreamos(p, &["log", "search", "", "--level", "error"]));
    assert_eq!(errors.lines().count(), 1, "{errors}");
    let worker = stdout(&dreamos(p, &["log", "search", "task", "--agent", "worker"]));
    assert!(worker.contains("task started"), "{worker}");
    let scout = stdout(&dreamos(p, &["log", "search", "task", "--agent", "scout"]));
    assert!(scout.is_empty(), "{scout}");
}

#[test]
fn tail_shows_the_newest_lines_and_a_bad_filter_names_the_argument() {
    let dir = project();
    let p = dir.path();
    let tail = stdout(&dreamos(p, &["log", "tail", "-n", "2"]));
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(
        lines[0].contains("Disk full") && lines[1].contains("retrying"),
        "{tail}"
    );
    let json = stdout(&dreamos(p, &["log", "tail", "-n", "1", "--json"]));
    let record: serde_json::Value = serde_json::from_str(json.trim()).expect("json line");
    assert_eq!(record["message"], "retrying");
    let bad = dreamos(p, &["log", "tail", "--level", "loud"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("level: 'loud' is not a level"), "{err}");
}

#[test]
fn tail_follow_prints_new_matching_lines() {
    let dir = project();
    let p = dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dreamos"))
        .args(["log", "tail", "-n", "0", "--follow", "--agent", "scout"])
        .current_dir(p)
        .env_remove("DREAMOS_CONFIG")
        .env("DREAMOS_LOG_CONSOLE", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let live = p.join("logs/dreamos.jsonl");
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    // Appended until the follower picks them up (it may start after the first append).
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .expect("open live log");
    let mut seen = Vec::new();
    for _ in 0..100 {
        file.write_all(line(&now, "INFO", "worker", "not for scout").as_bytes())
            .expect("append");
        file.write_all(line(&now, "INFO", "scout", "new for scout").as_bytes())
            .expect("append");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(l);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!seen.is_empty(), "tail --follow printed nothing");
    assert!(seen[0].contains("new for scout"), "{seen:?}");
    while let Ok(l) = rx.try_recv() {
        assert!(!l.contains("not for scout"), "{l}");
    }
}
