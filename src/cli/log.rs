//! `dreamos log tail` and `dreamos log search`: the JSON-lines logs (current file, numbered
//! backups and gzip archives) read back with the same filters as the dashboard's Logs page
//! ([`LogFilterArgs`]).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::config::Config;
use crate::logging::{search, Follower, LogFilterArgs};

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// The newest lines, then (with --follow) new lines as they are written.
    Tail {
        #[command(flatten)]
        filter: LogFilterArgs,
        /// How many of the newest matching lines to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new lines until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Print the JSON records as stored.
        #[arg(long)]
        json: bool,
    },
    /// Lines containing QUERY (case-insensitive, message or any field), oldest first.
    Search {
        /// Text to look for.
        query: String,
        #[command(flatten)]
        filter: LogFilterArgs,
        /// Show at most this many of the newest matches.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Config, cmd: LogCommand) -> anyhow::Result<ExitCode> {
    if config.log.dir.as_os_str().is_empty() {
        anyhow::bail!("no log files: [logging] dir is empty in the configuration");
    }
    let dir = config.resolve(&config.log.dir);
    let now = chrono::Utc::now();
    match cmd {
        LogCommand::Tail {
            filter,
            lines,
            follow,
            json,
        } => {
            let mut query = filter.query(now).map_err(anyhow::Error::msg)?;
            // Start following before reading the backlog, so no line falls between.
            let mut follower = Follower::at_end(dir.join(query.source.file_name()));
            query.limit = Some(lines);
            print_all(&search(&dir, &query)?, json)?;
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            query.limit = None;
            loop {
                let fresh = follower.poll()?;
                let matching: Vec<Value> = fresh.into_iter().filter(|r| query.matches(r)).collect();
                print_all(&matching, json)?;
                std::thread::sleep(FOLLOW_EVERY);
            }
        }
        LogCommand::Search {
            query: text,
            mut filter,
            limit,
            json,
        } => {
            filter.text = Some(text);
            let mut query = filter.query(now).map_err(anyhow::Error::msg)?;
            query.limit = Some(limit);
            let hits = search(&dir, &query)?;
            if hits.is_empty() {
                eprintln!("no matching lines in {}", dir.display());
            }
            print_all(&hits, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_all(records: &[Value], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in records {
        let line = if json {
            r.to_string()
        } else {
            format_record(r)
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (`| head`) ends the listing quietly.
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

/// `2025-01-02T03:04:05.678Z WARN  scout  Disk nearly full free_mb=12`
pub fn format_record(r: &Value) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    let source = [s("agent"), s("script"), s("target")]
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or("");
    let mut line = format!("{} {:<5} {source}  {}", s("ts"), s("level"), s("message"));
    if let Some(fields) = r.as_object() {
        for (k, v) in fields {
            if matches!(
                k.as_str(),
                "ts" | "level" | "target" | "message" | "script" | "agent"
            ) {
                continue;
            }
            match v {
                Value::String(text) => line.push_str(&format!(" {k}={text}")),
                other => line.push_str(&format!(" {k}={other}")),
            }
        }
    }
    line
}
