//! `dreamos task watch`: a live view of the task store — counts per status on top, one
//! progress bar per claimed or running task, and a line for every other transition.
//!
//! Where the events come from: this command is its own process, so it cannot hear the
//! in-process bus of the workers. It tails the store's event log instead, reading only the
//! rows after the last one it saw, each time the database's write-ahead log is written
//! (see [`wake`](super::wake): inotify on Linux, so an idle store costs no reads at all;
//! elsewhere it looks every `tasks.watch_interval`). Counts are read once at start and then
//! kept up to date from the events. Every few seconds it also applies lapsed leases and
//! passed deadlines (the same sweep a claim does), so a task whose worker died shows up as
//! ready again even when nobody claims.
//!
//! When stdout is not a terminal (or with `--plain`), it prints one line per event
//! instead; `--json` prints each event as JSON.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use super::print::{clip, event_line};
use super::wake::{WalWatch, SETTLE};
use crate::tasks::{ListFilter, Status, Task, TaskEvent, TaskId, Tasks};

/// How often the watch sweeps lapsed leases and deadlines.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Events read per look at the log.
const BATCH: usize = 1000;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// One line per event instead of the live view (the default when not on a terminal).
    #[arg(long)]
    pub plain: bool,
    /// One JSON event per line.
    #[arg(long)]
    pub json: bool,
    /// Exit once no task is pending, ready, claimed or running.
    #[arg(long)]
    pub until_done: bool,
}

type Counts = BTreeMap<Status, u64>;

/// Runs the watch on `tasks`, whose database file is `db` (`None`: a database server,
/// looked at every `tasks.watch_interval`).
pub async fn watch(
    tasks: &Tasks,
    db: Option<&std::path::Path>,
    args: WatchArgs,
) -> anyhow::Result<()> {
    let store = tasks.store().clone();
    // Watching starts before the first read, so no commit falls between the two.
    let wal = db.and_then(WalWatch::new);
    tasks.sweep().await?;
    // Counts and cursor must describe the same moment: retry if events arrived between.
    let (mut cursor, mut counts) = (0, Counts::new());
    for _ in 0..5 {
        cursor = store.last_task_event().await?;
        counts = store.task_counts().await?.into_iter().collect();
        if store.last_task_event().await? == cursor {
            break;
        }
    }
    let held = held_tasks(tasks).await?;
    let mut view: Box<dyn View> = if args.json {
        Box::new(Lines { json: true })
    } else if args.plain || !std::io::stdout().is_terminal() {
        Box::new(Lines { json: false })
    } else {
        Box::new(Live::new(&held))
    };
    view.counts(&counts);
    let interval = tasks.config().watch_interval;
    let mut last_sweep = Instant::now();
    // Looks left since the last wake (see wake::SETTLE).
    let mut settle = SETTLE.len();
    loop {
        if args.until_done && active(&counts) == 0 {
            break;
        }
        let events = store.task_events(cursor, BATCH, None).await?;
        for e in &events {
            cursor = e.seq;
            apply(&mut counts, e);
            view.event(e);
        }
        if !events.is_empty() {
            view.counts(&counts);
        }
        if events.len() < BATCH {
            match &wal {
                Some(wal) => {
                    let wait = SETTLE
                        .get(SETTLE.len() - settle)
                        .copied()
                        .unwrap_or(SWEEP_EVERY);
                    if wal.changed(wait).await {
                        settle = SETTLE.len();
                    } else {
                        settle = settle.saturating_sub(1);
                    }
                }
                None => tokio::time::sleep(interval).await,
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            tasks.sweep().await?;
        }
    }
    view.finish();
    Ok(())
}

async fn held_tasks(tasks: &Tasks) -> anyhow::Result<Vec<Task>> {
    let mut held = Vec::new();
    for status in [Status::Running, Status::Claimed] {
        held.extend(
            tasks
                .list(ListFilter {
                    status: Some(status),
                    limit: 200,
                    ..ListFilter::default()
                })
                .await?,
        );
    }
    Ok(held)
}

fn apply(counts: &mut Counts, e: &TaskEvent) {
    if e.old == Some(e.new) {
        return;
    }
    if let Some(old) = e.old {
        let n = counts.entry(old).or_default();
        *n = n.saturating_sub(1);
    }
    *counts.entry(e.new).or_default() += 1;
}

fn active(counts: &Counts) -> u64 {
    [
        Status::Pending,
        Status::Ready,
        Status::Claimed,
        Status::Running,
    ]
    .iter()
    .map(|s| counts.get(s).copied().unwrap_or(0))
    .sum()
}

/// `tasks: pending 1, ready 2, running 1, done 5`: the statuses that have tasks (ASCII,
/// so any terminal shows it).
fn counts_line(counts: &Counts) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    if parts.is_empty() {
        "tasks: none yet".into()
    } else {
        format!("tasks: {}", parts.join(", "))
    }
}

trait View {
    fn counts(&mut self, counts: &Counts);
    fn event(&mut self, e: &TaskEvent);
    fn finish(&mut self) {}
}

/// One line per event (and per change of the counts), for pipes and logs.
struct Lines {
    json: bool,
}

impl View for Lines {
    fn counts(&mut self, counts: &Counts) {
        if !self.json {
            println!("{}", counts_line(counts));
        }
    }

    fn event(&mut self, e: &TaskEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(e) {
                println!("{line}");
            }
        } else {
            println!("#{} {}: {}", e.id, clip(&e.title, 60), event_line(e));
        }
        let _ = std::io::stdout().flush();
    }
}

/// The terminal view: indicatif bars redrawn in place.
struct Live {
    multi: MultiProgress,
    header: ProgressBar,
    bars: HashMap<TaskId, ProgressBar>,
    style: ProgressStyle,
}

impl Live {
    fn new(held: &[Task]) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let style = ProgressStyle::with_template("{prefix:36} [{bar:30}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let mut live = Live {
            multi,
            header,
            bars: HashMap::new(),
            style,
        };
        for t in held {
            live.show(
                t.id,
                &t.title,
                t.progress,
                t.agent.as_deref(),
                t.note.as_deref(),
            );
        }
        live
    }

    /// Creates or updates the bar of a held task.
    fn show(&mut self, id: TaskId, title: &str, pct: f64, agent: Option<&str>, note: Option<&str>) {
        let bar = self.bars.entry(id).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(100));
            bar.set_style(self.style.clone());
            bar.set_prefix(clip(&format!("#{id} {title}"), 36));
            bar
        });
        bar.set_position(pct.clamp(0.0, 100.0) as u64);
        let mut msg = agent.unwrap_or("").to_string();
        if let Some(note) = note {
            msg.push_str(&format!(": {note}"));
        }
        bar.set_message(msg);
    }
}

impl View for Live {
    fn counts(&mut self, counts: &Counts) {
        self.header.set_message(counts_line(counts));
    }

    fn event(&mut self, e: &TaskEvent) {
        if e.new.is_held() {
            self.show(
                e.id,
                &e.title,
                e.progress,
                e.agent.as_deref(),
                e.note.as_deref(),
            );
            return;
        }
        if let Some(bar) = self.bars.remove(&e.id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(format!(
            "#{} {}: {}",
            e.id,
            clip(&e.title, 60),
            event_line(e)
        ));
    }

    fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.abandon();
        }
        self.header.abandon();
    }
}
