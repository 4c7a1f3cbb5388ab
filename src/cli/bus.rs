//! `dreamos bus ...`: send, tail, history, export, dead letters and stats, straight on the
//! store (the daemon need not run).
//!
//! A message sent here is on disk when the command returns; a running daemon's agents
//! pick it up within a second (their cross-process re-check). `tail --follow` reads new
//! messages from the store twice a second for the same reason: another process's commits
//! cannot wake this one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::bus::history::summary_line;
use crate::bus::{
    Bus, BusConfig, HistoryQuery, HistoryRecord, MessageId, Millis, Priority, SendOptions,
};
use crate::store::{format_millis, SharedStore};
use crate::units::{format_duration, parse_duration};

#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Send a durable message, e.g. `dreamos bus send agent:scout '{"task":"look"}'`.
    Send(SendArgs),
    /// Show the latest messages; with --follow, keep printing new ones.
    Tail {
        /// Only this channel (agent:<name>, captain, ...).
        #[arg(long)]
        channel: Option<String>,
        /// Keep watching for new messages until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// How many recent messages to show first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON record per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Query message history with every status change.
    History(HistoryArgs),
    /// Write history as one JSON document (default: bus.export_path).
    Export {
        /// Where to write (default: data/message_history.json, or bus.export_path).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: Filter,
    },
    /// The dead-letter queue: messages that failed or ran out of attempts.
    Dlq {
        #[command(subcommand)]
        action: DlqCommand,
    },
    /// Queue depth per channel, in flight, dead letters and totals.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient: agent:<name>, captain, broadcast, or a named queue.
    pub to: String,
    /// The payload as JSON (quote it for the shell: '{"text":"hi"}').
    pub payload_json: String,
    /// Wait until the message is acked, failed or dead, and exit non-zero unless acked.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// critical, high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// Sender name recorded in history.
    #[arg(long, default_value = "cli")]
    pub from: String,
    /// Deliveries before the message goes to the dead-letter queue.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Expire the message if nobody takes it within this long.
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// A header as NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Correlation id to tie this message to a conversation.
    #[arg(long)]
    pub correlation_id: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct Filter {
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only messages to or from this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Created at or after: RFC 3339 time, a date (2026-01-31), or an age ("1h" = an hour ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Created at or before, in the same forms.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Most records to show (the newest ones).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print a JSON array of records (the export shape).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters with their last error.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Queue a dead letter (or --all of them) again with fresh attempts.
    Retry {
        /// Message id, as shown by `dlq list`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<MessageId>,
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter.
    Purge,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("invalid header '{text}': write NAME=VALUE")),
    }
}

/// Runs a bus command with the default `[bus]` settings.
pub async fn run(cmd: BusCommand, store: SharedStore) -> anyhow::Result<()> {
    run_with_config(cmd, store, BusConfig::default()).await
}

/// Runs a bus command with the configured `[bus]` settings, printing to stdout.
pub async fn run_with_config(
    cmd: BusCommand,
    store: SharedStore,
    config: BusConfig,
) -> anyhow::Result<()> {
    let bus = Bus::new(store, config)?;
    let stdout = std::io::stdout();
    execute(cmd, &bus, &mut stdout.lock()).await
}

/// Runs a command against `bus`, writing what it prints to `out`.
pub async fn execute(cmd: BusCommand, bus: &Bus, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        BusCommand::Send(args) => send(bus, args, out).await,
        BusCommand::Tail {
            channel,
            follow,
            limit,
            json,
        } => tail(bus, channel, follow, limit, json, out).await,
        BusCommand::History(args) => {
            let mut query = args.filter.query(bus.now())?;
            query.limit = args.limit;
            let records = bus.history(query).await?;
            print_records(&records, args.json, out)
        }
        BusCommand::Export { out: path, filter } => {
            let query = filter.query(bus.now())?;
            let report = bus.export(query, path.as_deref()).await?;
            writeln!(
                out,
                "wrote {} records to {}",
                report.records,
                report.path.display()
            )?;
            Ok(())
        }
        BusCommand::Dlq { action } => dlq(bus, action, out).await,
        BusCommand::Stats { json } => stats(bus, json, out).await,
    }
}

async fn send(bus: &Bus, args: SendArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload_json).with_context(|| {
            format!(
            "PAYLOAD_JSON is not valid JSON: {} (quote it for the shell: '{{\"text\":\"hi\"}}')",
            args.payload_json
        )
        })?;
    let opts = SendOptions {
        priority: args.priority,
        max_attempts: args.max_attempts,
        ttl: args.ttl,
        headers: args.headers.into_iter().collect::<BTreeMap<_, _>>(),
        correlation_id: args.correlation_id,
        ..SendOptions::default()
    };
    let receipt = bus.send(&args.from, &args.to, &payload, opts).await?;
    let ids: Vec<String> = receipt.ids().iter().map(|id| format!("#{id}")).collect();
    writeln!(out, "sent {} to {}", ids.join(", "), args.to)?;
    if !args.wait {
        return Ok(());
    }
    out.flush()?;
    match receipt.wait(args.timeout).await {
        Ok(outcome) => {
            writeln!(out, "{outcome}")?;
            if outcome != crate::bus::Outcome::Acked {
                bail!("message was not handled: {outcome} (see `dreamos bus dlq list`)");
            }
            Ok(())
        }
        Err(e) if e.kind() == "timeout" => bail!(
            "no confirmation within {}: the message is stored and still pending",
            format_duration(args.timeout)
        ),
        Err(e) => Err(e.into()),
    }
}

/// How often `tail --follow` looks for new messages.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

async fn tail(
    bus: &Bus,
    channel: Option<String>,
    follow: bool,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let query = HistoryQuery {
        channel,
        limit: limit.max(1),
        ..HistoryQuery::default()
    };
    let recent = bus.history(query.clone()).await?;
    let mut last = recent.last().map_or(0, |r| r.id);
    print_lines(&recent, json, out)?;
    if !follow {
        return Ok(());
    }
    loop {
        out.flush()?;
        tokio::time::sleep(FOLLOW_EVERY).await;
        let fresh = bus
            .history(HistoryQuery {
                after_id: Some(last),
                limit: 1000,
                ..query.clone()
            })
            .await?;
        if let Some(r) = fresh.last() {
            last = r.id;
        }
        print_lines(&fresh, json, out)?;
    }
}

fn print_lines(records: &[HistoryRecord], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    for r in records {
        if json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        } else {
            writeln!(out, "{}", summary_line(r))?;
        }
    }
    Ok(())
}

fn print_records(records: &[HistoryRecord], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(records)?)?;
        return Ok(());
    }
    if records.is_empty() {
        writeln!(out, "no messages match")?;
    }
    for r in records {
        writeln!(out, "{}", summary_line(r))?;
        for t in &r.transitions {
            let error = t
                .error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            writeln!(
                out,
                "    {} {:<9} attempt {}{error}",
                format_millis(t.at),
                t.status,
                t.attempt
            )?;
        }
    }
    Ok(())
}

async fn dlq(bus: &Bus, action: DlqCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match action {
        DlqCommand::List { limit, json } => {
            let dead = bus.dead_letters(limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&dead)?)?;
            } else if dead.is_empty() {
                writeln!(out, "the dead-letter queue is empty")?;
            } else {
                print_lines(&dead, false, out)?;
            }
        }
        DlqCommand::Retry { id: Some(id), .. } => {
            bus.retry_dead(id).await?;
            writeln!(out, "requeued #{id}")?;
        }
        DlqCommand::Retry { id: None, .. } => {
            let n = bus.retry_all_dead().await?;
            writeln!(out, "requeued {n} dead letters")?;
        }
        DlqCommand::Purge => {
            let n = bus.purge_dead().await?;
            writeln!(out, "purged {n} dead letters")?;
        }
    }
    Ok(())
}

async fn stats(bus: &Bus, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let s = bus.stats().await?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        return Ok(());
    }
    let width = s
        .channels
        .iter()
        .map(|c| c.channel.len())
        .max()
        .unwrap_or(0)
        .max(7);
    writeln!(
        out,
        "{:<width$}  {:>8}  {:>9}",
        "channel", "queued", "in flight"
    )?;
    for c in &s.channels {
        writeln!(
            out,
            "{:<width$}  {:>8}  {:>9}",
            c.channel, c.queued, c.in_flight
        )?;
    }
    writeln!(
        out,
        "total {} messages: {} queued, {} in flight, {} acked, {} dead, {} expired",
        s.total, s.queued, s.in_flight, s.acked, s.dead, s.expired
    )?;
    Ok(())
}

impl Filter {
    fn query(&self, now: Millis) -> anyhow::Result<HistoryQuery> {
        Ok(HistoryQuery {
            channel: self.channel.clone(),
            agent: self.agent.clone(),
            since: self
                .since
                .as_deref()
                .map(|t| parse_time(t, now, "--since"))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| parse_time(t, now, "--until"))
                .transpose()?,
            ..HistoryQuery::default()
        })
    }
}

/// A point in time as an operator types it: RFC 3339, a date (midnight UTC), or an age.
fn parse_time(text: &str, now: Millis, flag: &str) -> anyhow::Result<Millis> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(age) = parse_duration(text) {
        return Ok(now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX / 2));
    }
    bail!(
        "{flag} '{text}': use an RFC 3339 time (2026-01-31T12:00:00Z), a date (2026-01-31) \
         or an age such as 90m or 2d"
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: BusCommand,
    }

    fn parse(args: &[&str]) -> Result<BusCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("bus").chain(args.iter().copied())).map(|c| c.cmd)
    }

    async fn bus() -> (tempfile::TempDir, Bus) {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::open_sqlite(&dir.path().join("b.db"))
            .await
            .expect("open");
        let config = BusConfig {
            export_path: dir.path().join("data/message_history.json"),
            ..BusConfig::default()
        };
        (dir, Bus::new(store, config).expect("bus"))
    }

    async fn output(bus: &Bus, args: &[&str]) -> anyhow::Result<String> {
        let mut out = Vec::new();
        execute(parse(args)?, bus, &mut out).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn arguments_parse_as_documented() {
        let cmd = parse(&[
            "send",
            "agent:scout",
            r#"{"a":1}"#,
            "--wait",
            "--priority",
            "high",
            "--header",
            "k=v",
            "--ttl",
            "5m",
        ])
        .expect("parse");
        let BusCommand::Send(args) = cmd else {
            panic!("{cmd:?}")
        };
        assert!(args.wait);
        assert_eq!(args.priority, Priority::High);
        assert_eq!(args.headers, [("k".to_string(), "v".to_string())]);
        assert_eq!(args.ttl, Some(Duration::from_secs(300)));
        assert!(parse(&["send", "captain", "{}", "--priority", "urgent"]).is_err());
        assert!(
            parse(&["dlq", "retry"]).is_err(),
            "retry needs an id or --all"
        );
        assert!(parse(&["dlq", "retry", "3", "--all"]).is_err());
        assert!(parse(&["dlq", "retry", "--all"]).is_ok());
        assert!(parse(&["history", "--channel", "captain", "--since", "1h", "--json"]).is_ok());
    }

    #[tokio::test]
    async fn send_then_history_stats_and_export() {
        let (dir, bus) = bus().await;
        let sent = output(&bus, &["send", "agent:scout", r#"{"task":"look"}"#])
            .await
            .expect("send");
        assert_eq!(sent, "sent #1 to agent:scout\n");
        let history = output(&bus, &["history", "--agent", "scout"])
            .await
            .expect("history");
        assert!(
            history.contains(r#"cli -> agent:scout [queued, 0 attempts] {"task":"look"}"#),
            "{history}"
        );
        assert!(history.contains("queued    attempt 0"), "{history}");
        let stats = output(&bus, &["stats"]).await.expect("stats");
        assert!(
            stats.contains("agent:scout") && stats.contains("total 1 messages: 1 queued"),
            "{stats}"
        );
        let exported = output(&bus, &["export"]).await.expect("export");
        assert!(exported.starts_with("wrote 1 records to "), "{exported}");
        assert!(dir.path().join("data/message_history.json").exists());
        let json = output(&bus, &["history", "--json", "--since", "1h"])
            .await
            .expect("json");
        let records: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json array");
        assert_eq!(records[0]["to"], "agent:scout");
        let none = output(&bus, &["history", "--until", "2000-01-01"])
            .await
            .expect("history");
        assert_eq!(none, "no messages match\n");
    }

    #[tokio::test]
    async fn send_wait_reports_the_outcome() {
        let (_dir, bus) = bus().await;
        let consumer = {
            let bus = bus.clone();
            tokio::spawn(async move {
                let d = bus
                    .recv("agent:w", Some(Duration::from_secs(5)))
                    .await
                    .expect("recv");
                bus.ack(&d.expect("message")).await.expect("ack");
            })
        };
        let out = output(&bus, &["send", "agent:w", "1", "--wait", "--timeout", "5s"])
            .await
            .expect("send");
        assert_eq!(out, "sent #1 to agent:w\nacked\n");
        consumer.await.expect("join");
    }

    #[tokio::test]
    async fn dead_letters_list_retry_and_purge() {
        let (_dir, bus) = bus().await;
        assert_eq!(
            output(&bus, &["dlq", "list"]).await.expect("list"),
            "the dead-letter queue is empty\n"
        );
        output(&bus, &["send", "captain", r#""x""#, "--max-attempts", "1"])
            .await
            .expect("send");
        let d = bus
            .recv("captain", Some(Duration::from_secs(5)))
            .await
            .expect("recv")
            .expect("msg");
        bus.nack(&d, "handler exploded", true).await.expect("nack");
        let list = output(&bus, &["dlq", "list"]).await.expect("list");
        assert!(
            list.contains("[dead, 1 attempt]") && list.contains("error: handler exploded"),
            "{list}"
        );
        assert_eq!(
            output(&bus, &["dlq", "retry", "1"]).await.expect("retry"),
            "requeued #1\n"
        );
        let err = output(&bus, &["dlq", "retry", "1"])
            .await
            .expect_err("not dead")
            .to_string();
        assert!(err.contains("not in the dead-letter queue"), "{err}");
        assert_eq!(
            output(&bus, &["dlq", "purge"]).await.expect("purge"),
            "purged 0 dead letters\n"
        );
    }

    #[tokio::test]
    async fn bad_input_explains_itself() {
        let (_dir, bus) = bus().await;
        let err = output(&bus, &["send", "captain", "{oops"])
            .await
            .expect_err("bad json");
        assert!(
            format!("{err:#}").contains("PAYLOAD_JSON is not valid JSON"),
            "{err:#}"
        );
        let err = output(&bus, &["send", "agent:", "{}"])
            .await
            .expect_err("bad channel");
        assert!(
            err.to_string().starts_with("invalid channel 'agent:'"),
            "{err}"
        );
        let err = output(&bus, &["history", "--since", "yesterday"])
            .await
            .expect_err("bad time");
        assert!(err.to_string().contains("--since 'yesterday'"), "{err}");
    }
}
