//! Nothing acknowledged is lost on kill -9: this test re-runs its own test binary as a
//! child that sends (or consumes) and prints each id once the call returned, kills it with
//! SIGKILL mid-stream, and checks the database afterwards.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

const ROLE: &str = "DREAMOS_BUS_CRASH_ROLE";
const DB: &str = "DREAMOS_BUS_CRASH_DB";
const CHANNEL: &str = "agent:crash";

fn config() -> BusConfig {
    BusConfig {
        visibility_timeout: Duration::from_millis(300),
        ..BusConfig::default()
    }
}

/// The child side; does nothing unless started by `kill_9_loses_nothing_acknowledged`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Ok(role), Ok(db)) = (std::env::var(ROLE), std::env::var(DB)) else {
        return;
    };
    let store = open_sqlite(Path::new(&db)).await.expect("open");
    let bus = Bus::new(store, config()).expect("bus");
    match role.as_str() {
        "sender" => {
            for i in 0.. {
                let receipt = send(&bus, CHANNEL, payload(i)).await;
                println!("sent {}", receipt.id());
            }
        }
        _ => loop {
            if let Some(d) = bus
                .recv(CHANNEL, Some(Duration::from_secs(1)))
                .await
                .expect("recv")
            {
                bus.ack(&d).await.expect("ack");
                println!("acked {}", d.message.id);
            }
        },
    }
}

/// Runs the child until it printed `lines` results, kills it, returns every id it printed.
fn run_and_kill(role: &str, db: &Path, lines: usize) -> Vec<MessageId> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "bus::tests::crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(DB, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut ids = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    while ids.len() < lines {
        let Some(Ok(line)) = reader.next() else { break };
        if let Some(id) = line.split_once(' ').and_then(|(_, id)| id.parse().ok()) {
            ids.push(id);
        }
    }
    child.kill().expect("SIGKILL");
    // Lines already written before the kill still count: their call had returned.
    for line in reader.map_while(Result::ok) {
        if let Some(id) = line.split_once(' ').and_then(|(_, id)| id.parse().ok()) {
            ids.push(id);
        }
    }
    let _ = child.wait();
    ids
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("crash.db");
    let sent = run_and_kill("sender", &db, 500);
    let acked_by_child: HashSet<MessageId> =
        run_and_kill("consumer", &db, 200).into_iter().collect();
    assert!(sent.len() >= 500 && acked_by_child.len() >= 200);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = open_sqlite(&db).await.expect("reopen");
        let bus = Bus::new(store, config()).expect("bus");
        // Every send that returned is stored.
        let stored: HashSet<MessageId> = bus
            .history(HistoryQuery {
                limit: 1_000_000,
                ..HistoryQuery::default()
            })
            .await
            .expect("history")
            .iter()
            .map(|r| r.id)
            .collect();
        let missing: Vec<_> = sent.iter().filter(|id| !stored.contains(id)).collect();
        assert!(missing.is_empty(), "sent but lost: {missing:?}");
        // A restarted consumer gets everything else, in flight at the kill included
        // (after the visibility timeout), and nothing whose ack had returned.
        let mut acked_after = HashSet::new();
        while let Some(d) = bus
            .recv(CHANNEL, Some(Duration::from_secs(2)))
            .await
            .expect("recv")
        {
            assert!(
                !acked_by_child.contains(&d.message.id),
                "redelivered after ack: {}",
                d.message.id
            );
            bus.ack(&d).await.expect("ack");
            acked_after.insert(d.message.id);
        }
        // Everything ends acked: by the killed child (reported or killed between its ack's
        // commit and its print) or by the restarted consumer.
        let stats = bus.stats().await.expect("stats");
        assert_eq!(
            (stats.acked, stats.queued, stats.in_flight),
            (stored.len() as u64, 0, 0),
            "acked before the kill: {}, after: {}",
            acked_by_child.len(),
            acked_after.len()
        );
    });
}
