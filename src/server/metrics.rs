//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! [`FAMILIES`] is the registry: every metric the daemon exports, with its type and help.
//! [`render`] writes only families listed there (a unit test checks that every listed
//! family is written and nothing else), and the test of `deploy/grafana/dreamos.json`
//! checks the shipped dashboard queries only these names — the old system's dashboard
//! queried a metric that did not exist.

use std::fmt::Write;

use crate::agents::{AgentState, AgentStatus};
use crate::bus::BusCounts;
use crate::scheduler::ScheduleInfo;
use crate::store::BusStats;

use super::process::ProcessStats;
use super::telemetry::{Counts, CYCLE_BUCKETS};

pub use super::families::{known_family, FAMILIES};

/// Everything one scrape shows. `None` parts (a store read that failed) are left out
/// rather than reported as zero.
#[derive(Default)]
pub struct Snapshot<'a> {
    pub agents: &'a [AgentStatus],
    pub bus: Option<&'a BusStats>,
    pub bus_counts: BusCounts,
    pub tasks: Option<&'a [(crate::tasks::Status, u64)]>,
    pub schedules: Option<&'a [ScheduleInfo]>,
    pub telemetry: Option<&'a Counts>,
    pub process: ProcessStats,
    /// Outbox posts per (account, status).
    pub social_posts: Option<&'a [(String, crate::social::Status, u64)]>,
}

/// One sample line writer that refuses names missing from [`FAMILIES`] in debug builds.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str) {
        let (_, kind, help) = FAMILIES
            .iter()
            .find(|(n, _, _)| *n == name)
            .copied()
            .unwrap_or((name, "untyped", ""));
        debug_assert!(
            FAMILIES.iter().any(|(n, _, _)| *n == name),
            "{name} not registered"
        );
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Renders the current numbers.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = Out(String::new());
    agents(&mut out, s.agents);
    if let Some(stats) = s.bus {
        bus(&mut out, s.agents, stats);
    }
    let c = s.bus_counts;
    for (name, v) in [
        ("dreamos_bus_messages_sent_total", c.sent),
        ("dreamos_bus_messages_acked_total", c.acked),
        ("dreamos_bus_messages_dead_total", c.dead),
        ("dreamos_bus_messages_failed_total", c.failed),
    ] {
        out.family(name);
        out.sample(name, &[], v);
    }
    if let Some(counts) = s.tasks {
        out.family("dreamos_tasks");
        for status in crate::tasks::Status::ALL {
            let n = counts
                .iter()
                .find(|(st, _)| *st == status)
                .map_or(0, |(_, n)| *n);
            out.sample("dreamos_tasks", &[("status", status.as_str())], n);
        }
    }
    if let Some(t) = s.telemetry {
        telemetry(&mut out, t);
    }
    if let Some(list) = s.schedules {
        schedules(&mut out, list);
    }
    process(&mut out, &s.process);
    if let Some(posts) = s.social_posts {
        out.family("dreamos_social_posts");
        for (account, status, n) in posts {
            out.sample(
                "dreamos_social_posts",
                &[("account", account), ("status", status.name())],
                n,
            );
        }
    }
    out.0
}

fn agents(out: &mut Out, agents: &[AgentStatus]) {
    out.family("dreamos_agents");
    for state in AgentState::ALL {
        let n = agents.iter().filter(|a| a.state == state).count();
        out.sample("dreamos_agents", &[("state", &state.to_string())], n);
    }
    out.family("dreamos_agent_up");
    for a in agents {
        let up = matches!(a.state, AgentState::Running | AgentState::Idle) as u8;
        out.sample("dreamos_agent_up", &[("agent", &a.name)], up);
    }
    type Read = fn(&AgentStatus) -> u64;
    let counters: [(&str, Read); 3] = [
        ("dreamos_agent_restarts_total", |a| u64::from(a.restarts)),
        ("dreamos_agent_handled_total", |a| a.handled),
        ("dreamos_agent_errors_total", |a| a.errors),
    ];
    for (name, value) in counters {
        out.family(name);
        for a in agents {
            out.sample(name, &[("agent", &a.name)], value(a));
        }
    }
}

fn bus(out: &mut Out, agents: &[AgentStatus], stats: &BusStats) {
    out.family("dreamos_agent_inbox_depth");
    for a in agents {
        let inbox = format!("agent:{}", a.name);
        let depth = stats
            .channels
            .iter()
            .find(|c| c.channel == inbox)
            .map_or(0, |c| c.queued + c.in_flight);
        out.sample("dreamos_agent_inbox_depth", &[("agent", &a.name)], depth);
    }
    out.family("dreamos_bus_messages");
    for (status, n) in [
        ("queued", stats.queued),
        ("in_flight", stats.in_flight),
        ("acked", stats.acked),
        ("dead", stats.dead),
        ("expired", stats.expired),
    ] {
        out.sample("dreamos_bus_messages", &[("status", status)], n);
    }
    out.family("dreamos_bus_queue_depth");
    for c in &stats.channels {
        out.sample(
            "dreamos_bus_queue_depth",
            &[("channel", &c.channel)],
            c.queued + c.in_flight,
        );
    }
}

fn telemetry(out: &mut Out, t: &Counts) {
    out.family("dreamos_task_transitions_total");
    for (status, n) in &t.task_transitions {
        out.sample("dreamos_task_transitions_total", &[("status", status)], n);
    }
    let name = "dreamos_task_cycle_seconds";
    out.family(name);
    let mut cumulative = 0;
    for (i, le) in CYCLE_BUCKETS.iter().enumerate() {
        cumulative += t.task_cycle.counts[i];
        out.sample(
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    out.sample(
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        t.task_cycle.count,
    );
    out.sample(&format!("{name}_sum"), &[], t.task_cycle.sum);
    out.sample(&format!("{name}_count"), &[], t.task_cycle.count);
    out.family("dreamos_schedule_runs_total");
    for ((schedule, outcome), n) in &t.schedule_runs {
        out.sample(
            "dreamos_schedule_runs_total",
            &[("schedule", schedule), ("outcome", outcome)],
            n,
        );
    }
    out.family("dreamos_social_events_total");
    for (event, n) in &t.social_events {
        out.sample("dreamos_social_events_total", &[("event", event)], n);
    }
}

fn schedules(out: &mut Out, list: &[ScheduleInfo]) {
    out.family("dreamos_schedules");
    let state = |s: &ScheduleInfo| match (s.enabled, s.paused) {
        (false, _) => "disabled",
        (true, true) => "paused",
        (true, false) => "active",
    };
    for st in ["active", "paused", "disabled"] {
        let n = list.iter().filter(|s| state(s) == st).count();
        out.sample("dreamos_schedules", &[("state", st)], n);
    }
    out.family("dreamos_schedule_next_run_timestamp_seconds");
    for s in list {
        let next = s
            .next
            .first()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let Some(t) = next {
            out.sample(
                "dreamos_schedule_next_run_timestamp_seconds",
                &[("schedule", &s.name)],
                t.timestamp(),
            );
        }
    }
    for (name, value) in [
        (
            "dreamos_schedule_failures",
            (|s| s.failures) as fn(&ScheduleInfo) -> u32,
        ),
        ("dreamos_schedule_running", |s| s.running),
    ] {
        out.family(name);
        for s in list {
            out.sample(name, &[("schedule", &s.name)], value(s));
        }
    }
}

fn process(out: &mut Out, p: &ProcessStats) {
    let figures: [(&str, Option<f64>); 7] = [
        (
            "process_resident_memory_bytes",
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory_bytes",
            p.virtual_bytes.map(|v| v as f64),
        ),
        ("process_cpu_seconds_total", p.cpu_seconds),
        ("process_open_fds", p.open_fds.map(|v| v as f64)),
        ("process_max_fds", p.max_fds.map(|v| v as f64)),
        ("process_start_time_seconds", p.start_time_seconds),
        ("process_threads", p.threads.map(|v| v as f64)),
    ];
    for (name, value) in figures {
        if let Some(v) = value {
            out.family(name);
            out.sample(name, &[], v);
        }
    }
}

/// Escapes a label value as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
