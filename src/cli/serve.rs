//! `dreamos serve`: the long-running daemon. It takes the data directory's lock, opens the
//! store and the bus, starts the `[[agents]]` marked `autostart` whose lease it gets (see
//! `agents::placement`; a lone node gets them all), fires the schedules, and
//! serves the control API and `/metrics` on `[daemon] listen:port` until SIGTERM or Ctrl-C.
//!
//! Shutdown follows mini-redis: the signal ends the wait; every agent gets a stop command
//! and the daemon waits (up to `[daemon] shutdown_timeout`) until every runner task has
//! finished — each agent finished its message in flight, acknowledged it, and ran
//! `on_stop`. Messages an agent had not started stay in the queue for the next start.
//! Then it releases its leases (other nodes take its agents over), the HTTP server stops
//! and the process exits 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::agents::{AgentConfig, Placement, Recorder, Supervisor};
use crate::bus::Bus;
use crate::config::Config;
use crate::lua::agent::script::LogRing;
use crate::lua::agent::ScriptAgent;
use crate::server::control::Daemon;
use crate::server::files::{self, DaemonInfo, DaemonLock};
use crate::server::{router, ApiState};
use crate::store::{AgentStore, BusStore, LeaseStore, ScheduleStore, SharedStore, TaskStore};
use crate::tasks::Tasks;

pub fn serve(config: Arc<Config>) -> anyhow::Result<ExitCode> {
    let _log = super::init_logging(&config)?;
    let data_dir = config.resolve(&config.runtime.data_dir);
    let _lock = DaemonLock::acquire(&data_dir)?;
    crate::runtime::prefer_small_pages();
    crate::runtime::block_on(run(config, &data_dir))?
}

async fn run(config: Arc<Config>, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = crate::store::open_configured(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    let bus = Bus::new(store.clone() as Arc<dyn BusStore>, config.bus.clone())?;
    let _retention = bus.spawn_retention();
    let tasks = Tasks::new(
        store.clone() as Arc<dyn TaskStore>,
        bus.clone(),
        config.tasks.clone(),
    )?;
    let mut recorder = Recorder::new(
        Some(store.clone() as Arc<dyn AgentStore>),
        Some(bus.clone()),
    );
    recorder.tasks = Some(tasks.clone());
    let supervisor = Supervisor::new(recorder);
    let scripts = add_agents(&config, &supervisor, &bus, &store, &tasks).await;
    // Autostart agents start where their lease is taken (all of them on a lone node).
    let placement = Placement::new(
        store.clone() as Arc<dyn LeaseStore>,
        supervisor.clone(),
        config.daemon.node_name(),
        config.daemon.lease,
    );
    placement.add_agents(&config.agents);
    placement.set_balance(config.daemon.balance);
    placement.start().await;

    // Schedules (`[[schedules]]` and those added at run time) fire while the daemon runs.
    let scheduler = crate::scheduler::daemon::start(
        config.clone(),
        store.clone() as Arc<dyn ScheduleStore>,
        Some(bus.clone()),
    )
    .await?;
    let (stop_schedules, schedules_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler_handle = scheduler.clone();
    let schedules = tokio::task::spawn_local(async move {
        scheduler
            .run(async {
                let _ = schedules_stopped.await;
            })
            .await
    });

    // The social outbox: due posts, metrics at their offsets, token warnings.
    let outbox = std::sync::Arc::new(crate::social::Outbox::new(
        store.clone() as Arc<dyn crate::store::SocialStore>,
        config.clone(),
        crate::social::platform_connect(),
        Some(bus.clone()),
    ));
    let (stop_social, social_stopped) = tokio::sync::oneshot::channel::<()>();
    let social = tokio::spawn(outbox.run(async {
        let _ = social_stopped.await;
    }));

    let listener =
        tokio::net::TcpListener::bind((config.daemon.listen.as_str(), config.daemon.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}:{}: {e} (set [daemon] port, or 0 for any free port)",
                    config.daemon.listen,
                    config.daemon.port
                )
            })?;
    let addr = listener.local_addr()?;
    let token = files::write_token(data_dir)?;
    let telemetry = crate::server::telemetry::Telemetry::default();
    let _telemetry = telemetry.spawn_listener(&bus)?;
    let (requests, requests_rx) = mpsc::unbounded_channel();
    let daemon = Daemon {
        supervisor: supervisor.clone(),
        bus: bus.clone(),
        store: store.clone() as Arc<dyn AgentStore>,
        scripts,
        tasks: Some(tasks.clone()),
        sessions: crate::server::repl::Sessions::new(
            config.clone(),
            supervisor.clone(),
            store.clone(),
            bus.clone(),
        ),
        scheduler: Some(scheduler_handle.clone()),
        social: Some(store.clone() as Arc<dyn crate::store::SocialStore>),
        telemetry,
        placement: Some(placement.clone()),
    };
    let control = tokio::task::spawn_local(daemon.serve(requests_rx));
    let log_dir = (!config.log.dir.as_os_str().is_empty()).then(|| config.resolve(&config.log.dir));
    let discord = crate::clients::discord::service(
        crate::clients::discord::Runtime {
            config: config.clone(),
            requests: requests.clone(),
            bus: bus.clone(),
            tasks: tasks.clone(),
            scheduler: scheduler_handle,
            started: std::time::Instant::now(),
        },
        store.clone(),
    );
    if let Some(discord) = discord {
        placement.add_service("discord", discord);
    }
    let app = router(ApiState {
        requests,
        bus: bus.clone(),
        token: token.clone(),
        tasks: Some(tasks.clone()),
        schedules: Some(store.clone() as Arc<dyn ScheduleStore>),
        log_dir,
        social: Some(store.clone() as Arc<dyn crate::store::SocialStore>),
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });
    files::write_info(
        data_dir,
        &DaemonInfo {
            addr: addr.to_string(),
            pid: std::process::id(),
        },
    )?;
    placement.announce(&addr.to_string()).await;
    eprintln!(
        "dreamos serve: node {}, {} agent(s), control API on http://{addr} (token in {})",
        placement.node(),
        config.agents.len(),
        data_dir.join(files::TOKEN_FILE).display()
    );
    eprintln!(
        "dreamos serve: dashboard {} (token {token})",
        files::dashboard_url(&addr.to_string())
    );

    let signal = wait_for_signal().await?;
    tracing::info!(%signal, "stopping agents");
    eprintln!("dreamos serve: {signal}, stopping agents");
    let _ = stop_schedules.send(());
    let _ = schedules.await;
    // A post in flight finishes its attempt and is recorded before the worker ends.
    let _ = stop_social.send(());
    let _ = social.await;
    placement.stop_renewing().await;
    let timeout = config.daemon.shutdown_timeout;
    if tokio::time::timeout(
        timeout,
        supervisor.shutdown(&format!("daemon stopping ({signal})")),
    )
    .await
    .is_err()
    {
        tracing::warn!("agents did not stop within [daemon] shutdown_timeout; exiting anyway");
    }
    // Agents stopped: other nodes may take their leases (and the Discord bot) now.
    placement.release().await;
    files::remove_info(data_dir);
    let _ = stop_http.send(());
    if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "control API ended with an error");
    }
    control.abort();
    eprintln!("dreamos serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Registers every configured agent; a script that does not load is still listed (it will
/// crash on start and show why), so a typo never hides an agent from `agent list`.
async fn add_agents(
    config: &Arc<Config>,
    supervisor: &Supervisor,
    bus: &Bus,
    store: &SharedStore,
    tasks: &Tasks,
) -> BTreeMap<String, ScriptAgent> {
    let mut scripts = BTreeMap::new();
    for entry in &config.agents {
        let template = ScriptAgent {
            name: entry.name.clone(),
            script: config.resolve(&entry.script),
            config: config.clone(),
            bus: Some(bus.clone()),
            store: Some(store.clone()),
            allow: entry.allow.clone(),
            memory_limit: entry.memory_limit,
            control: entry.control.then(|| supervisor.clone()),
            stall: None,
            logs: LogRing::default(),
            source: None,
            tasks: Some(tasks.clone()),
        };
        let agent = template.reread().unwrap_or(template);
        let (spec, agent) = supervision(entry, agent).await;
        if let Err(e) = bus.register_agent(&entry.name).await {
            tracing::warn!(agent = %entry.name, error = %e, "cannot register inbox");
        }
        if let Err(e) = supervisor.add(&entry.name, spec, agent.clone().factory()) {
            tracing::warn!(agent = %entry.name, error = %e, "cannot add agent");
            continue;
        }
        scripts.insert(entry.name.clone(), agent);
    }
    scripts
}

/// The agent's supervision: defaults, then the script's `define`, then `[[agents]]`.
async fn supervision(
    entry: &AgentConfig,
    mut agent: ScriptAgent,
) -> (crate::agents::Supervision, ScriptAgent) {
    let def = match agent.probe().await {
        Ok(def) => def,
        Err(e) => {
            tracing::error!(agent = %entry.name, error = %e, "agent script does not load");
            eprintln!("dreamos serve: agent {}: {e}", entry.name);
            Default::default()
        }
    };
    let mut spec = entry.supervision(&def.overrides);
    if let Some((category, concurrency)) = def.tasks {
        spec.task_category = Some(category);
        spec.task_concurrency = concurrency;
    }
    agent.stall = spec.stall_timeout;
    (spec, agent)
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
