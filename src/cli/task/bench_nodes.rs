//! `dreamos bench tasks --nodes N`: N-1 more `dreamos` processes run their share of the
//! cycles on the same database, started together with this one, as N nodes would.
//!
//! Each extra process is this executable with this command line plus `--node-child`. It
//! opens the store and prepares its Lua states, says `ready`, waits for `go` on stdin,
//! runs its share and prints one line of claim latencies. The parent times from `go` to
//! the last node done.

use std::process::Stdio;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Cycles, TaskBenchArgs};
use crate::bus::Bus;
use crate::config::Config;
use crate::store::AnyStore;

/// The extra nodes, ready to start.
pub(super) struct Children {
    nodes: Vec<Node>,
}

struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Children {
    /// Starts `n` extra nodes and waits until each is ready.
    pub(super) async fn start(n: usize) -> anyhow::Result<Children> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut child = Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .arg("--node-child")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start node {} ({})", i + 2, exe.display()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("node {}: no pipes to talk to it", i + 2);
            };
            nodes.push(Node {
                child,
                stdin: Some(stdin),
                lines: BufReader::new(stdout).lines(),
            });
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            match node.lines.next_line().await? {
                Some(line) if line == "ready" => {}
                other => bail!("node {} did not start: {other:?}", i + 2),
            }
        }
        Ok(Children { nodes })
    }

    /// Waits for every node; their claim latencies (seconds).
    pub(super) async fn finish(mut self) -> anyhow::Result<Vec<f64>> {
        let mut latencies = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let line = node.lines.next_line().await?;
            let Some(line) = line else {
                bail!("node {} ended without its figures", i + 2);
            };
            for value in line.split_whitespace() {
                latencies.push(
                    value
                        .parse::<f64>()
                        .with_context(|| format!("node {}: bad figure '{value}'", i + 2))?,
                );
            }
            let status = node.child.wait().await?;
            if !status.success() {
                bail!("node {} failed: {status}", i + 2);
            }
        }
        Ok(latencies)
    }
}

impl Children {
    /// Sends `go` to every node (they start as close together as pipes allow).
    pub(super) async fn go(&mut self) -> anyhow::Result<()> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(mut stdin) = node.stdin.take() else {
                continue;
            };
            stdin
                .write_all(b"go\n")
                .await
                .with_context(|| format!("node {} went away", i + 2))?;
        }
        Ok(())
    }
}

/// An extra node: prepares, says `ready`, waits for `go`, runs, prints its latencies.
pub(super) async fn child(
    config: &Arc<Config>,
    args: &TaskBenchArgs,
    store: &AnyStore,
    bus: &Bus,
    cycles: usize,
) -> anyhow::Result<()> {
    let run = Cycles::prepare(config, store, bus, args.workers, args.lanes, cycles)?;
    println!("ready");
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    if line.trim() != "go" {
        bail!("expected 'go' from the first node, got {line:?}");
    }
    let (latencies, _) = run.run().await?;
    let text: Vec<String> = latencies.iter().map(|l| format!("{l:.6}")).collect();
    println!("{}", text.join(" "));
    Ok(())
}
