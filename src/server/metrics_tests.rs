use super::super::promql::metric_names;
use super::*;
use crate::scheduler::ScheduleInfo;
use crate::store::ChannelDepth;

/// The family each sample line belongs to (histogram series map to their family).
fn families_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line
            .split(['{', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value in {line:?}"
        );
        let family = known_family(&name).unwrap_or_else(|| panic!("unregistered {name}"));
        if !out.iter().any(|f| f == family) {
            out.push(family.to_string());
        }
    }
    out
}

fn status(name: &str, state: AgentState) -> AgentStatus {
    let mut s = AgentStatus::new(name, "permanent", 0);
    s.state = state;
    s.restarts = 2;
    s
}

fn full_snapshot_text() -> String {
    let agents = [
        status("scout", AgentState::Running),
        status("we\"ird", AgentState::Crashed),
    ];
    let stats = BusStats {
        channels: vec![ChannelDepth {
            channel: "agent:scout".into(),
            queued: 3,
            in_flight: 1,
        }],
        queued: 3,
        in_flight: 1,
        ..BusStats::default()
    };
    let telemetry = super::super::telemetry::Telemetry::default();
    telemetry.task_event(&serde_json::json!({"id": 1, "new": "claimed", "at": 0}));
    telemetry.task_event(&serde_json::json!({"id": 1, "new": "done", "at": 2_000}));
    telemetry.schedule_event(&serde_json::json!({"event": "ok", "schedule": "daily"}));
    telemetry.social_event(&serde_json::json!({"event": "posted", "id": 1}));
    let schedules = [ScheduleInfo {
        name: "daily".into(),
        expr: "0 9 * * *".into(),
        timezone: "UTC".into(),
        action: "script x.lua".into(),
        next: vec!["2030-01-01T09:00:00+00:00".into()],
        last_outcome: None,
        paused: false,
        enabled: true,
        failures: 1,
        running: 0,
        source: "config".into(),
    }];
    let counts = telemetry.lock();
    render(&Snapshot {
        agents: &agents,
        bus: Some(&stats),
        bus_counts: BusCounts {
            sent: 7,
            acked: 5,
            dead: 1,
            failed: 0,
        },
        tasks: Some(&[(crate::tasks::Status::Running, 4)]),
        schedules: Some(&schedules),
        telemetry: Some(&counts),
        process: super::super::process::read(),
        social_posts: Some(&[("x-main".into(), crate::social::Status::Posted, 3)]),
    })
}

#[test]
fn every_registered_family_is_rendered_and_nothing_else() {
    let text = full_snapshot_text();
    let rendered = families_in(&text);
    for (name, _, _) in FAMILIES {
        assert!(
            rendered.iter().any(|f| f == name),
            "{name} not rendered:\n{text}"
        );
    }
    // HELP and TYPE once per family.
    for (name, kind, _) in FAMILIES {
        let type_line = format!("# TYPE {name} {kind}\n");
        assert_eq!(text.matches(&type_line).count(), 1, "{type_line}");
    }
}

#[test]
fn values_and_labels_as_prometheus_reads_them() {
    let text = full_snapshot_text();
    for line in [
        "dreamos_agents{state=\"running\"} 1",
        "dreamos_agents{state=\"idle\"} 0",
        "dreamos_agent_restarts_total{agent=\"we\\\"ird\"} 2",
        "dreamos_agent_inbox_depth{agent=\"scout\"} 4",
        "dreamos_bus_messages_sent_total 7",
        "dreamos_tasks{status=\"running\"} 4",
        "dreamos_tasks{status=\"done\"} 0",
        "dreamos_task_cycle_seconds_bucket{le=\"1\"} 0",
        "dreamos_task_cycle_seconds_bucket{le=\"5\"} 1",
        "dreamos_task_cycle_seconds_bucket{le=\"+Inf\"} 1",
        "dreamos_task_cycle_seconds_sum 2",
        "dreamos_schedule_next_run_timestamp_seconds{schedule=\"daily\"} 1893488400",
        "dreamos_schedule_runs_total{schedule=\"daily\",outcome=\"ok\"} 1",
        "dreamos_schedules{state=\"active\"} 1",
        "dreamos_social_posts{account=\"x-main\",status=\"posted\"} 3",
        "dreamos_social_events_total{event=\"posted\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// Checks the shipped Grafana dashboard: every query names only exported metrics.
#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dreamos.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/dreamos.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let exprs = grafana_exprs(&dashboard);
    assert!(exprs.len() >= 10, "only {} queries found", exprs.len());
    let mut used = Vec::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in query {expr:?}");
        for name in names {
            assert!(
                known_family(&name).is_some(),
                "{} queries {name}, which dreamos does not export (query: {expr})",
                path.display()
            );
            used.push(name);
        }
    }
    // The dashboard shows each part of the daemon.
    for prefix in [
        "dreamos_agent",
        "dreamos_bus",
        "dreamos_task",
        "dreamos_schedule",
        "process_",
    ] {
        assert!(
            used.iter().any(|n| n.starts_with(prefix)),
            "no panel uses {prefix}*"
        );
    }
}

#[test]
fn the_grafana_check_catches_a_metric_that_does_not_exist() {
    let names =
        metric_names("sum by (agent) (rate(dreamos_agent_restart_total{agent=~\"a.*\"}[5m]))");
    assert_eq!(names, ["dreamos_agent_restart_total"]);
    assert!(known_family("dreamos_agent_restart_total").is_none());
    let names = metric_names(
        "histogram_quantile(0.95, sum by (le) (rate(dreamos_task_cycle_seconds_bucket[5m])))",
    );
    assert_eq!(names, ["dreamos_task_cycle_seconds_bucket"]);
    assert_eq!(known_family(&names[0]), Some("dreamos_task_cycle_seconds"));
}

/// Every `expr` of every target of every panel (rows nest panels).
fn grafana_exprs(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if k == "expr" {
                    if let Some(s) = child.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    out.extend(grafana_exprs(child));
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| out.extend(grafana_exprs(i))),
        _ => {}
    }
    out
}
