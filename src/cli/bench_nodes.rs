//! `dreamos bench bus --nodes N`: the full-speed bus run on N node processes at once, all
//! on one database, as N `dreamos serve` nodes would share it. Each process has its own
//! runtime, bus, connections, sender and consumer, on a channel of its own; they start
//! together at a time the parent sets (after each has opened the store), and the total is
//! every message acked over the span from the first start to the last ack.

use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::bench::{durable, print_durable, BusBenchArgs, Durable};
use crate::bus::Bus;
use crate::config::Config;
use crate::store::StoreTarget;

/// The store a node process opens, passed in the environment rather than on its command
/// line, where a password in the URL would show in `ps`.
const STORE_ENV: &str = "DREAMOS_BENCH_STORE";
/// Time the node processes get to start and open the store before the run begins.
const STARTUP: Duration = Duration::from_secs(3);
/// What a node prints as its result, and the parent looks for.
const RESULT: &str = "node-result";

/// The parent: starts the nodes, waits for them, prints each and the total.
pub fn run(config: &Arc<Config>, args: &BusBenchArgs, target: &StoreTarget) -> anyhow::Result<()> {
    let store_arg = match target {
        StoreTarget::Sqlite(path) => format!("sqlite:{}", path.display()),
        StoreTarget::Postgres { url, schema: None } => format!("postgres:{url}"),
        StoreTarget::Postgres {
            schema: Some(_), ..
        } => {
            bail!("--nodes needs a store given as --store postgres:URL (no schema)")
        }
    };
    // Migrated once here, so the nodes do not all start by waiting on the migration lock.
    crate::runtime::block_on(async { target.open().await.map(drop) })?
        .with_context(|| format!("cannot open the store ({})", target.describe()))?;
    let exe = std::env::current_exe().context("cannot find this program to start nodes")?;
    let per_node = (args.messages / args.nodes).max(1);
    let start_at = epoch_seconds() + STARTUP.as_secs_f64();
    println!("store: {}", target.describe());
    println!(
        "durable send -> handler -> ack, {} node processes at once, each: {per_node} messages, \
         {}-byte payloads, {} sends in flight, {} consumer loop(s); latency 1 in {}",
        args.nodes, args.payload_bytes, args.window, args.consumers, args.sample_every
    );
    let mut children = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes {
        let mut cmd = Command::new(&exe);
        if let Some(path) = &config.source {
            cmd.arg("--config").arg(path);
        }
        cmd.args(["bench", "bus", "--publish", "0"])
            .args(["--messages", &per_node.to_string()])
            .args(["--window", &args.window.to_string()])
            .args(["--consumers", &args.consumers.to_string()])
            .args(["--sample-every", &args.sample_every.to_string()])
            .args(["--payload-bytes", &args.payload_bytes.to_string()])
            .args(["--node-start-at", &start_at.to_string()])
            .env(STORE_ENV, &store_arg)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        children.push(
            cmd.spawn()
                .with_context(|| format!("cannot start a node process ({})", exe.display()))?,
        );
    }
    let mut results = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        let out = child
            .wait_with_output()
            .with_context(|| format!("node {} did not finish", i + 1))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find_map(parse_result) {
            Some(d) if out.status.success() => results.push(d),
            _ => bail!("node {} failed ({}): {}", i + 1, out.status, text.trim()),
        }
    }
    for (i, d) in results.iter().enumerate() {
        print_durable(&format!("  node {}", i + 1), d);
    }
    let first = results.iter().map(|d| d.started).fold(f64::MAX, f64::min);
    let last = results.iter().map(|d| d.done_at).fold(f64::MIN, f64::max);
    let total: usize = results.iter().map(|d| d.messages).sum();
    println!(
        "  total          {:>10.0} msg/s   ({total} messages over {:.2} s, first start to last ack)",
        total as f64 / (last - first).max(1e-9),
        last - first
    );
    Ok(())
}

/// One node: opens the store, waits for the common start, runs once, prints one line.
pub async fn node(
    config: Arc<Config>,
    args: BusBenchArgs,
    start_at: f64,
) -> anyhow::Result<ExitCode> {
    let arg = std::env::var(STORE_ENV)
        .with_context(|| format!("a node process needs {STORE_ENV} (started by --nodes)"))?;
    let target = StoreTarget::parse(&arg).map_err(|e| anyhow::anyhow!("{STORE_ENV}: {e}"))?;
    let store = target
        .open()
        .await
        .with_context(|| format!("cannot open the store ({})", target.describe()))?;
    let bus = Bus::new(store.bus(), config.bus.clone())?;
    let wait = start_at - epoch_seconds();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    let d = durable(&config, &store, &bus, &args, 0, "node").await?;
    println!(
        "{RESULT} {} {} {} {} {} {} {} {}",
        d.messages,
        d.samples,
        d.started,
        d.done_at,
        d.p50.as_secs_f64(),
        d.p99.as_secs_f64(),
        d.max.as_secs_f64(),
        d.per_sec
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_result(line: &str) -> Option<Durable> {
    let mut parts = line.strip_prefix(RESULT)?.split_whitespace();
    let mut next = || parts.next()?.parse::<f64>().ok();
    let (messages, samples, started, done_at) = (next()?, next()?, next()?, next()?);
    let (p50, p99, max, per_sec) = (next()?, next()?, next()?, next()?);
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Some(Durable {
        started,
        done_at,
        messages: messages as usize,
        samples: samples as usize,
        per_sec,
        p50: secs(p50),
        p99: secs(p99),
        max: secs(max),
    })
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_result_line_reads_back() {
        let d = parse_result("node-result 500 31 100.5 101.5 0.002 0.01 0.02 500").expect("parsed");
        assert_eq!((d.messages, d.samples), (500, 31));
        assert_eq!((d.started, d.done_at), (100.5, 101.5));
        assert_eq!(d.p99, Duration::from_millis(10));
        assert!(parse_result("node-result 500 x").is_none());
        assert!(parse_result("something else").is_none());
    }
}
