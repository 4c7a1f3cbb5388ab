//! `dreamos task ...`: add, list, show, claim, progress, done, fail, cancel, import, graph,
//! watch — straight on the store, so the daemon need not run.
//!
//! Everything a command changes is committed when it returns. Holder commands (`progress`,
//! `done`, `fail`) act for `--agent` (default `cli`) on its current claim of the task, so an
//! operator can drive a task by hand exactly as a worker would, and is refused the same way
//! when the task is someone else's. Commands that print data take `--json`.

pub mod bench;
mod print;
mod wake;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};

use crate::bus::Bus;
use crate::config::Config;
use crate::store::SharedStore;
use crate::tasks::plan::Plan;
use crate::tasks::{ClaimRequest, Lease, ListFilter, Priority, Status, TaskId, TaskSpec, Tasks};
use crate::units::parse_duration;

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Add a task, e.g. `dreamos task add "Write the report" --priority high`.
    Add(AddArgs),
    /// List tasks by priority then age, or a per-agent summary with --by agent.
    List(ListArgs),
    /// One task in full, with its dependencies and its history of transitions.
    Show {
        id: TaskId,
        #[arg(long)]
        json: bool,
    },
    /// Claim the best ready task as --agent (prints it; fails if none matched).
    Claim(ClaimArgs),
    /// Report progress (0-100) on a task --agent holds.
    Progress {
        id: TaskId,
        /// Percent done, 0 to 100.
        pct: f64,
        /// A short note shown beside the progress.
        #[arg(long)]
        note: Option<String>,
        #[arg(long, default_value = "cli")]
        agent: String,
    },
    /// Complete a task --agent holds.
    Done {
        id: TaskId,
        /// The result as JSON.
        #[arg(long)]
        result: Option<String>,
        #[arg(long, default_value = "cli")]
        agent: String,
    },
    /// Fail a task --agent holds; it is retried while attempts remain unless --no-retry.
    Fail {
        id: TaskId,
        /// Why it failed.
        error: String,
        /// Fail it for good now; its dependents are blocked.
        #[arg(long)]
        no_retry: bool,
        #[arg(long, default_value = "cli")]
        agent: String,
    },
    /// Cancel a task that is not finished; its dependents are blocked.
    Cancel {
        id: TaskId,
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Create every task of a plan file in one transaction (all or nothing).
    Import {
        plan: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the dependency tree (of the given tasks, or of all), or Graphviz with --dot.
    Graph {
        /// Tasks whose dependencies and dependents to draw (default: every task).
        ids: Vec<TaskId>,
        #[arg(long)]
        dot: bool,
        /// Most tasks to draw when no ids are given.
        #[arg(long, default_value_t = 500)]
        limit: usize,
    },
    /// Live view: counts per status and a progress bar per running task.
    Watch(watch::WatchArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub title: String,
    #[arg(long)]
    pub description: Option<String>,
    /// critical, high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// A task that must be done first (repeatable).
    #[arg(long = "depends-on", value_name = "ID")]
    pub depends_on: Vec<TaskId>,
    /// Only this agent may claim it.
    #[arg(long)]
    pub assignee: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Any JSON for the worker.
    #[arg(long)]
    pub payload: Option<String>,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Time it out if not done within this long ("2h").
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupBy {
    Agent,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_status)]
    pub status: Option<Status>,
    /// Reserved for or held by this agent.
    #[arg(long)]
    pub assignee: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub priority: Option<Priority>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Summarize instead: tasks per status for each agent.
    #[arg(long)]
    pub by: Option<GroupBy>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[arg(long, default_value = "cli")]
    pub agent: String,
    #[arg(long)]
    pub category: Option<String>,
    /// Only tasks with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// How long the claim holds without progress or heartbeat (default tasks.lease).
    #[arg(long, value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// Wait this long for a matching task.
    #[arg(long, value_parser = parse_duration)]
    pub wait: Option<Duration>,
    #[arg(long)]
    pub json: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse()
}

/// The task service over `store`, configured from `config`.
pub fn service(store: SharedStore, config: &Config) -> anyhow::Result<Tasks> {
    let bus = Bus::new(store.clone(), config.bus.clone())?;
    Ok(Tasks::new(store, bus, config.tasks.clone())?)
}

/// Runs a task command, printing to stdout.
pub async fn run(cmd: TaskCommand, store: SharedStore, config: &Config) -> anyhow::Result<()> {
    let db = store.file().map(|p| p.to_path_buf());
    let tasks = service(store, config)?;
    if let TaskCommand::Watch(args) = cmd {
        return watch::watch(&tasks, db.as_deref(), args).await;
    }
    let stdout = std::io::stdout();
    execute(cmd, &tasks, &mut stdout.lock()).await
}

/// Runs a command against `tasks`, writing what it prints to `out`.
pub async fn execute(cmd: TaskCommand, tasks: &Tasks, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::Add(args) => add(tasks, args, out).await,
        TaskCommand::List(args) => list(tasks, args, out).await,
        TaskCommand::Show { id, json } => show(tasks, id, json, out).await,
        TaskCommand::Claim(args) => claim(tasks, args, out).await,
        TaskCommand::Progress {
            id,
            pct,
            note,
            agent,
        } => {
            let lease = held_by(tasks, id, &agent).await?;
            tasks.progress(&lease, pct, note).await?;
            writeln!(out, "task {id}: {pct}%")?;
            Ok(())
        }
        TaskCommand::Done { id, result, agent } => {
            let result = result
                .map(|r| serde_json::from_str(&r).context("--result is not valid JSON"))
                .transpose()?;
            let lease = held_by(tasks, id, &agent).await?;
            tasks.complete(&lease, result).await?;
            writeln!(out, "task {id}: done")?;
            Ok(())
        }
        TaskCommand::Fail {
            id,
            error,
            no_retry,
            agent,
        } => {
            let lease = held_by(tasks, id, &agent).await?;
            let status = tasks.fail(&lease, &error, !no_retry).await?;
            writeln!(out, "task {id}: {status}")?;
            Ok(())
        }
        TaskCommand::Cancel { id, reason } => {
            tasks.cancel(id, &reason).await?;
            writeln!(out, "task {id}: cancelled")?;
            Ok(())
        }
        TaskCommand::Import { plan, json } => import(tasks, &plan, json, out).await,
        TaskCommand::Graph { ids, dot, limit } => graph(tasks, ids, dot, limit, out).await,
        TaskCommand::Watch(_) => bail!("task watch draws on the terminal: use run()"),
    }
}

async fn add(tasks: &Tasks, a: AddArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let payload = a
        .payload
        .map(|p| serde_json::from_str(&p).context("--payload is not valid JSON"))
        .transpose()?;
    let id = tasks
        .add(TaskSpec {
            title: a.title,
            description: a.description,
            priority: a.priority,
            depends_on: a.depends_on,
            assignee: a.assignee,
            category: a.category,
            tags: a.tags,
            payload,
            max_attempts: a.max_attempts,
            deadline: a.deadline,
        })
        .await?;
    if a.json {
        writeln!(out, "{}", serde_json::json!({ "id": id }))?;
    } else {
        let status = tasks.get(id).await?.map_or(Status::Ready, |t| t.status);
        writeln!(out, "added task {id} ({status})")?;
    }
    Ok(())
}

async fn list(tasks: &Tasks, a: ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if a.by == Some(GroupBy::Agent) {
        let summary = tasks.summary_by_agent().await?;
        return print::agent_summary(&summary, a.json, out);
    }
    let found = tasks
        .list(ListFilter {
            status: a.status,
            assignee: a.assignee,
            category: a.category,
            priority: a.priority,
            limit: a.limit,
        })
        .await?;
    print::tasks(&found, a.json, out)
}

async fn show(tasks: &Tasks, id: TaskId, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(task) = tasks.get(id).await? else {
        bail!("no task {id}");
    };
    let history = tasks.store().task_events(0, 1000, Some(id)).await?;
    let mut deps = Vec::new();
    for dep in &task.depends_on {
        if let Some(d) = tasks.store().get_task(*dep).await? {
            deps.push(d);
        }
    }
    print::task_detail(&task, &deps, &history, json, out)
}

async fn claim(tasks: &Tasks, a: ClaimArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let claimed = tasks
        .claim(ClaimRequest {
            agent: a.agent.clone(),
            category: a.category,
            tags: a.tags,
            lease: a.lease,
            wait: a.wait,
        })
        .await?;
    let Some(task) = claimed else {
        bail!("no ready task matched");
    };
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&task)?)?;
    } else {
        let until = task
            .lease_until
            .map(crate::store::format_millis)
            .unwrap_or_default();
        writeln!(
            out,
            "claimed task {} as {} (attempt {} of {}, lease until {until}): {}",
            task.id, a.agent, task.attempts, task.max_attempts, task.title
        )?;
    }
    Ok(())
}

/// The lease `agent` holds on task `id` now: the CLI acts on the current attempt.
async fn held_by(tasks: &Tasks, id: TaskId, agent: &str) -> anyhow::Result<Lease> {
    let Some(task) = tasks.get(id).await? else {
        bail!("no task {id}");
    };
    Ok(Lease {
        id,
        agent: agent.to_string(),
        attempt: task.attempts,
    })
}

async fn import(
    tasks: &Tasks,
    path: &std::path::Path,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let plan = Plan::parse(&text).with_context(|| format!("{}", path.display()))?;
    let ids = tasks
        .import(plan)
        .await
        .with_context(|| format!("{}: nothing was imported", path.display()))?;
    if json {
        let list: Vec<_> = ids
            .iter()
            .map(|(key, id)| serde_json::json!({ "key": key, "id": id }))
            .collect();
        writeln!(out, "{}", serde_json::to_string(&list)?)?;
    } else {
        writeln!(out, "imported {} tasks from {}", ids.len(), path.display())?;
        for (key, id) in &ids {
            writeln!(out, "  {key:<20} #{id}")?;
        }
    }
    Ok(())
}

async fn graph(
    tasks: &Tasks,
    ids: Vec<TaskId>,
    dot: bool,
    limit: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = tasks.store();
    let (shown, edges) = if ids.is_empty() {
        let edges = store.task_edges(None).await?;
        let shown = tasks
            .list(ListFilter {
                limit,
                ..ListFilter::default()
            })
            .await?;
        (shown, edges)
    } else {
        // Everything connected to the given tasks, following edges both ways.
        let mut seen: std::collections::BTreeSet<TaskId> = ids.iter().copied().collect();
        let mut frontier = ids;
        let mut edges = std::collections::BTreeSet::new();
        while !frontier.is_empty() && seen.len() <= limit {
            let found = store.task_edges(Some(frontier.clone())).await?;
            frontier.clear();
            for (task, dep) in found {
                edges.insert((task, dep));
                for id in [task, dep] {
                    if seen.insert(id) {
                        frontier.push(id);
                    }
                }
            }
        }
        let mut shown = Vec::new();
        for id in &seen {
            match store.get_task(*id).await? {
                Some(t) => shown.push(t),
                None => bail!("no task {id}"),
            }
        }
        (shown, edges.into_iter().collect())
    };
    let text = if dot {
        crate::tasks::graph::dot(&shown, &edges)
    } else {
        crate::tasks::graph::tree(&shown, &edges)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
