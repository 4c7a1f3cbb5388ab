//! `/metrics` in the Prometheus text format (version 0.0.4). Only metrics listed here are
//! exported, and the shipped dashboards may query only these names.

use std::fmt::Write;

use crate::agents::{AgentState, AgentStatus};
use crate::store::BusStats;

/// A per-agent counter: name, help text, and how to read it from a status.
type Counter = (&'static str, &'static str, fn(&AgentStatus) -> u64);

/// Renders the current numbers.
pub fn render(
    agents: &[AgentStatus],
    bus: Option<&BusStats>,
    tasks: Option<&[(crate::tasks::Status, u64)]>,
) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "dreamos_agents",
        "gauge",
        "Agents by lifecycle state.",
    );
    for state in AgentState::ALL {
        let n = agents.iter().filter(|a| a.state == state).count();
        let _ = writeln!(out, "dreamos_agents{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "dreamos_agent_up",
        "gauge",
        "1 while the agent is running or idle.",
    );
    for a in agents {
        let up = matches!(a.state, AgentState::Running | AgentState::Idle) as u8;
        let _ = writeln!(out, "dreamos_agent_up{{agent=\"{}\"}} {up}", label(&a.name));
    }
    let counters: [Counter; 3] = [
        (
            "dreamos_agent_restarts_total",
            "Restarts since the daemon started (crash, stall, operator, resume).",
            |a| u64::from(a.restarts),
        ),
        (
            "dreamos_agent_handled_total",
            "Messages and tasks handled without error.",
            |a| a.handled,
        ),
        (
            "dreamos_agent_errors_total",
            "Handler errors and stalls.",
            |a| a.errors,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        for a in agents {
            let _ = writeln!(out, "{name}{{agent=\"{}\"}} {}", label(&a.name), value(a));
        }
    }
    if let Some(stats) = bus {
        family(
            &mut out,
            "dreamos_bus_messages",
            "gauge",
            "Stored bus messages by status (acked and expired until pruned).",
        );
        for (status, n) in [
            ("queued", stats.queued),
            ("in_flight", stats.in_flight),
            ("acked", stats.acked),
            ("dead", stats.dead),
            ("expired", stats.expired),
        ] {
            let _ = writeln!(out, "dreamos_bus_messages{{status=\"{status}\"}} {n}");
        }
        family(
            &mut out,
            "dreamos_bus_queue_depth",
            "gauge",
            "Messages waiting or in flight, per channel.",
        );
        for c in &stats.channels {
            let _ = writeln!(
                out,
                "dreamos_bus_queue_depth{{channel=\"{}\"}} {}",
                label(&c.channel),
                c.queued + c.in_flight
            );
        }
    }
    if let Some(counts) = tasks {
        family(&mut out, "dreamos_tasks", "gauge", "Tasks by status.");
        for (status, n) in counts {
            let _ = writeln!(out, "dreamos_tasks{{status=\"{}\"}} {n}", status.as_str());
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
