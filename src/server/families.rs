//! The registry of everything `/metrics` exports: name, type and help of each family.
//! [`super::metrics::render`] writes only these; the Grafana check accepts only these.

/// (name, type, help) of every exported family.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("dreamos_agents", "gauge", "Agents by lifecycle state."),
    (
        "dreamos_agent_up",
        "gauge",
        "1 while the agent is running or idle.",
    ),
    (
        "dreamos_agent_restarts_total",
        "counter",
        "Restarts since the daemon started (crash, stall, operator, resume).",
    ),
    (
        "dreamos_agent_handled_total",
        "counter",
        "Messages and tasks handled without error.",
    ),
    (
        "dreamos_agent_errors_total",
        "counter",
        "Handler errors and stalls.",
    ),
    (
        "dreamos_agent_inbox_depth",
        "gauge",
        "Messages waiting in or being handled from the agent's inbox.",
    ),
    (
        "dreamos_bus_messages",
        "gauge",
        "Stored bus messages by status (acked and expired until pruned).",
    ),
    (
        "dreamos_bus_queue_depth",
        "gauge",
        "Messages waiting or in flight, per channel.",
    ),
    (
        "dreamos_bus_messages_sent_total",
        "counter",
        "Messages stored by send since the daemon started (a broadcast counts one per inbox).",
    ),
    (
        "dreamos_bus_messages_acked_total",
        "counter",
        "Messages acknowledged since the daemon started.",
    ),
    (
        "dreamos_bus_messages_dead_total",
        "counter",
        "Messages that ran out of attempts since the daemon started.",
    ),
    (
        "dreamos_bus_messages_failed_total",
        "counter",
        "Messages rejected for good since the daemon started.",
    ),
    ("dreamos_tasks", "gauge", "Tasks by status."),
    (
        "dreamos_task_transitions_total",
        "counter",
        "Task transitions since the daemon started, by new status.",
    ),
    (
        "dreamos_task_cycle_seconds",
        "histogram",
        "Time from claim to done of tasks finished since the daemon started.",
    ),
    (
        "dreamos_schedules",
        "gauge",
        "Schedules by state (active, paused, disabled).",
    ),
    (
        "dreamos_schedule_next_run_timestamp_seconds",
        "gauge",
        "When the schedule fires next (Unix time); absent while paused.",
    ),
    (
        "dreamos_schedule_failures",
        "gauge",
        "Consecutive failed runs of the schedule.",
    ),
    (
        "dreamos_schedule_running",
        "gauge",
        "Runs of the schedule in progress.",
    ),
    (
        "dreamos_schedule_runs_total",
        "counter",
        "Schedule runs since the daemon started, by outcome (ok, failed, skipped, missed).",
    ),
    (
        "dreamos_social_posts",
        "gauge",
        "Social outbox posts by account and status.",
    ),
    (
        "dreamos_social_events_total",
        "counter",
        "Social outbox events since the daemon started (posted, failed, dead, rescheduled, reconciled, token_expiring).",
    ),
    (
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
    ),
    (
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent in seconds.",
    ),
    (
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    ),
    (
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    ),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
    ),
    (
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
    ),
];

/// The registered family a series name belongs to (`x_bucket` of histogram `x` too).
pub fn known_family(series: &str) -> Option<&'static str> {
    FAMILIES.iter().find_map(|(name, kind, _)| {
        let matches = series == *name
            || (*kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series.strip_suffix(suffix) == Some(name)));
        matches.then_some(*name)
    })
}
