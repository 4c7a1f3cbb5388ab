//! `dreamos bench scheduler`: many schedules firing every second on a real database, to
//! measure how late runs start and what the scheduler costs in CPU.
//!
//! Lateness is measured from a run's scheduled time to the moment the run executes, so it
//! includes the loop's wake-up, the next-time computation of every schedule due in the
//! same second, and the claim of each run's fire time in the store (one transaction for
//! everything due at once), which a run waits for before it executes. The runner itself does nothing: what a script costs is the script's business.
//! CPU is this process's user+system time (every thread, the SQLite writer included), as
//! a share of one core, while firing and while idle.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;

use super::{Runner, ScheduleDef, Scheduler, Settings};
use crate::store::Millis;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Schedules registered.
    pub schedules: usize,
    /// How long they fire every second.
    pub duration: Duration,
    /// How long the same number of schedules sit idle (hourly, none due) for the idle CPU.
    pub idle: Duration,
    /// `every 1s` schedules, each anchored when it was registered (phases spread over the
    /// second), instead of `* * * * * *` (all due in the same millisecond).
    pub spread: bool,
    /// The database: two fresh files are made beside this path (`.idle.db`, `.fire.db`).
    pub db: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub schedules: usize,
    pub runs: usize,
    /// Runs expected: schedules times full seconds fired.
    pub expected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Share of one core while firing, in percent.
    pub cpu_firing_pct: f64,
    /// Share of one core with the schedules registered and none due, in percent.
    pub cpu_idle_pct: f64,
    /// How long registering the schedules took.
    pub setup: Duration,
    /// Each second's p99 lateness, sorted.
    pub per_second_p99: Vec<Millis>,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} schedules firing every second: {} runs (expected {})",
            self.schedules, self.runs, self.expected
        )?;
        writeln!(
            f,
            "start lateness: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p99_ms, self.max_ms
        )?;
        if let (Some(best), Some(worst)) = (self.per_second_p99.first(), self.per_second_p99.last())
        {
            let median = self.per_second_p99[self.per_second_p99.len() / 2];
            writeln!(
                f,
                "p99 of each second: best {best} ms, median {median} ms, worst {worst} ms"
            )?;
        }
        writeln!(
            f,
            "CPU while firing: {:.1}% of one core",
            self.cpu_firing_pct
        )?;
        writeln!(
            f,
            "CPU idle with {} schedules registered: {:.2}% of one core",
            self.schedules, self.cpu_idle_pct
        )?;
        write!(f, "registering them took {:.1} s", self.setup.as_secs_f64())
    }
}

/// Records how late each run started.
struct LatenessRunner {
    clock: super::Clock,
    /// (scheduled, lateness) of every run.
    late: Rc<RefCell<Vec<(Millis, Millis)>>>,
}

impl Runner for LatenessRunner {
    fn run(
        &self,
        _: &ScheduleDef,
        scheduled: Millis,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        // Measured when the run executes (after its claim), not when it is built.
        let (late, clock) = (self.late.clone(), self.clock.clone());
        Box::pin(async move {
            late.borrow_mut().push((scheduled, clock.now() - scheduled));
            Ok(())
        })
    }
}

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one plain struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn share_of_core(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// Registers `count` schedules with `expr`, a few hundred at a time.
async fn register(
    scheduler: &Scheduler,
    prefix: &str,
    expr: Option<&str>,
    count: usize,
) -> Result<(), String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(500) {
        let adds = chunk.iter().map(|name| {
            let mut def = ScheduleDef::new(name.clone());
            match expr {
                Some(expr) => def.cron = Some(expr.to_string()),
                None => def.every = Some(Duration::from_secs(1)),
            }
            def.missed = super::MissedPolicy::Skip;
            scheduler.add(def, "bench")
        });
        for result in futures_util::future::join_all(adds).await {
            result.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A scheduler with a lateness-recording runner, its loop running until the returned
/// notify fires.
fn start(
    store: Arc<dyn crate::store::ScheduleStore>,
    late: Rc<RefCell<Vec<(Millis, Millis)>>>,
) -> (Scheduler, Rc<tokio::sync::Notify>) {
    let clock = super::Clock::new();
    let runner = LatenessRunner {
        clock: clock.clone(),
        late,
    };
    let scheduler = Scheduler::with_clock(store, Rc::new(runner), None, Settings::default(), clock);
    let stop = Rc::new(tokio::sync::Notify::new());
    let (looping, until) = (scheduler.clone(), stop.clone());
    tokio::task::spawn_local(
        async move { looping.run(async move { until.notified().await }).await },
    );
    (scheduler, stop)
}

/// Runs the benchmark; call on a `LocalSet`.
pub async fn run(opts: BenchOptions) -> Result<BenchReport, String> {
    let open = |suffix: &str| {
        let path = opts.db.with_extension(suffix);
        async move {
            crate::store::open_sqlite(&path)
                .await
                .map(|s| s as Arc<dyn crate::store::ScheduleStore>)
                .map_err(|e| e.to_string())
        }
    };
    let late: Rc<RefCell<Vec<(Millis, Millis)>>> = Rc::default();

    // Idle: registered, none due within the measurement.
    let (idle, stop_idle) = start(open("idle.db").await?, late.clone());
    let setup_start = Instant::now();
    register(&idle, "idle", Some("0 0 1 1 *"), opts.schedules).await?;
    let setup = setup_start.elapsed();
    // Not idle yet: the first look at the store's change counter after registering reads
    // all rows once (see below).
    tokio::time::sleep(super::sync::SYNC_EVERY * 3).await;
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(opts.idle).await;
    let cpu_idle_pct = share_of_core(cpu_time() - cpu0, wall0.elapsed());
    stop_idle.notify_one();

    // Firing: every schedule every second, on a second scheduler and database (the idle
    // one still leads its own).
    let (firing, stop_firing) = start(open("fire.db").await?, late.clone());
    register(
        &firing,
        "tick",
        (!opts.spread).then_some("* * * * * *"),
        opts.schedules,
    )
    .await?;
    // The scheduler looks at the store's change counter every 200 ms; the first look
    // after registering reads all 10,000 rows once. Let it pass before measuring.
    tokio::time::sleep(super::sync::SYNC_EVERY * 3).await;
    // Measure whole seconds: from the next second boundary, for `duration`.
    let now = chrono::Utc::now().timestamp_millis();
    let window_start = (now / 1000 + 1) * 1000;
    tokio::time::sleep(Duration::from_millis((window_start - now) as u64)).await;
    let window_end = window_start + crate::bus::clock::millis(opts.duration);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(opts.duration).await;
    let cpu_firing_pct = share_of_core(cpu_time() - cpu0, wall0.elapsed());
    stop_firing.notify_one();
    // Let runs already started record their lateness.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let in_window: Vec<(Millis, Millis)> = late
        .borrow()
        .iter()
        .copied()
        .filter(|(at, _)| (window_start..window_end).contains(at))
        .collect();
    let per_second_p99 = per_second_p99(&in_window);
    let mut late: Vec<Millis> = in_window.iter().map(|(_, l)| *l).collect();
    late.sort_unstable();
    let pick = |q: f64| -> f64 {
        if late.is_empty() {
            return 0.0;
        }
        let i = ((late.len() - 1) as f64 * q).round() as usize;
        late[i.min(late.len() - 1)] as f64
    };
    Ok(BenchReport {
        schedules: opts.schedules,
        runs: late.len(),
        expected: opts.schedules * opts.duration.as_secs() as usize,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: late.last().copied().unwrap_or(0) as f64,
        cpu_firing_pct,
        cpu_idle_pct,
        setup,
        per_second_p99,
    })
}

/// The p99 lateness of each second's runs, sorted: shows whether a high overall p99 is
/// every second or one bad second (a descheduled thread on a busy machine).
fn per_second_p99(runs: &[(Millis, Millis)]) -> Vec<Millis> {
    let mut by_second: std::collections::BTreeMap<Millis, Vec<Millis>> = Default::default();
    for (at, late) in runs {
        by_second.entry(at / 1000).or_default().push(*late);
    }
    let mut out: Vec<Millis> = by_second
        .into_values()
        .map(|mut v| {
            v.sort_unstable();
            v[((v.len() - 1) as f64 * 0.99).round() as usize]
        })
        .collect();
    out.sort_unstable();
    out
}

/// Blocking entry for the CLI: a current-thread runtime with a `LocalSet`.
pub fn run_blocking(opts: BenchOptions) -> Result<BenchReport, String> {
    crate::runtime::block_on(run(opts)).map_err(|e| e.to_string())?
}
