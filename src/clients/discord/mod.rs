//! The Discord bot inside `dreamos serve` (enabled by `[discord]` in dreamos.toml): slash
//! commands that read and act on the live runtime, Lua-defined commands, summaries and
//! alerts. Built on serenity (gateway, REST, models); nothing here is canned.
//!
//! How the pieces fit:
//! - [`config`]: `[discord]`; [`perms`]: who may run what, where, how often.
//! - [`gateway`]: serenity's event handler; turns events into plain [`gateway::Event`]s.
//! - [`bot`]: the local loop — permission check, deferral, running, answering.
//! - [`builtins`] (with [`logs`] and [`run`]): the built-in commands; [`commands`]: their
//!   registration JSON; [`extra`]: commands and listeners added from Lua.
//! - [`reply`]: splitting at 2,000 characters, files, deferral and follow-ups.
//! - [`alerts`], [`feeds`], [`outbox`]: what is watched, deduplicated, rate-limited, and
//!   queued durably until Discord took it.
//!
//! Startup: the token is read from the environment variable `[discord] token_env` and
//! checked with `GET /users/@me` before connecting. A missing or refused token disables the
//! bot — the daemon says so on stderr and in the log and runs on without Discord.

pub mod alerts;
pub mod bot;
pub mod builtins;
pub mod commands;
pub mod config;
pub mod extra;
pub mod feeds;
pub mod gateway;
pub mod logs;
pub mod outbox;
pub mod perms;
pub mod reply;
pub mod run;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serenity::all::{GatewayIntents, HttpBuilder, ShardManager};
use tokio::sync::mpsc;

pub use builtins::Runtime;
pub use config::DiscordConfig;

use crate::store::SharedStore;

/// The running bot, for shutdown.
pub struct Handle {
    shards: Arc<ShardManager>,
    /// The bot's local loops (commands, outbox, feeds, Lua sends, registration).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Handle {
    /// Closes the gateway connection and ends the bot's loops, so a node that hands the
    /// bot to another (its `discord` lease) sends nothing more.
    pub async fn shutdown(self) {
        self.shards.shutdown_all().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The bot as a placed service: with several nodes sharing one database, only the node
/// holding the `discord` lease runs it. `None` when `[discord]` is not configured, its
/// token variable is empty here, so such a node never takes the lease from one that can
/// run the bot.
pub fn service(rt: Runtime, store: SharedStore) -> Option<Rc<dyn crate::agents::Service>> {
    let config = rt.config.discord.as_ref()?;
    if std::env::var(&config.token_env).map_or(true, |t| t.trim().is_empty()) {
        disabled(&format!(
            "the environment variable ${} ([discord] token_env) is not set",
            config.token_env
        ));
        return None;
    }
    Some(Rc::new(Placed {
        rt,
        store,
        slot: Rc::new(RefCell::new(Slot::Idle)),
    }))
}

/// Where the placed bot is: starting checks the token with Discord, which may take as long
/// as Discord takes to answer, so it runs in a task of its own rather than in the placement
/// round that also renews the node's leases.
enum Slot {
    Idle,
    Starting(tokio::task::JoinHandle<()>),
    Running(Handle),
}

struct Placed {
    rt: Runtime,
    store: SharedStore,
    slot: Rc<RefCell<Slot>>,
}

impl crate::agents::Service for Placed {
    fn start(&self) -> futures_util::future::LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            if !matches!(*self.slot.borrow(), Slot::Idle) {
                return;
            }
            let (rt, store, slot) = (self.rt.clone(), self.store.clone(), self.slot.clone());
            let starting = tokio::task::spawn_local(async move {
                let handle = start(rt, store).await;
                *slot.borrow_mut() = handle.map_or(Slot::Idle, Slot::Running);
            });
            // The task may already have finished (nothing to wait for): keep what it set.
            let mut slot = self.slot.borrow_mut();
            if matches!(*slot, Slot::Idle) && !starting.is_finished() {
                *slot = Slot::Starting(starting);
            }
        })
    }

    fn stop(&self) -> futures_util::future::LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            let slot = std::mem::replace(&mut *self.slot.borrow_mut(), Slot::Idle);
            match slot {
                Slot::Idle => {}
                // Cut off at an await, before the client was spawned: nothing runs yet.
                Slot::Starting(task) => task.abort(),
                Slot::Running(handle) => handle.shutdown().await,
            }
        })
    }
}

fn disabled(why: &str) -> Option<Handle> {
    tracing::error!(target: bot::LOG, "Discord disabled: {why}");
    eprintln!("dreamos serve: Discord disabled: {why}; the daemon runs without Discord");
    None
}

/// Starts the bot if `[discord]` is configured and the token is good. Must run on the
/// daemon's `LocalSet` (commands run there beside the agents).
pub async fn start(rt: Runtime, store: SharedStore) -> Option<Handle> {
    let config = rt.config.discord.clone()?;
    let token = match std::env::var(&config.token_env) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            return disabled(&format!(
                "the environment variable ${} ([discord] token_env) is not set",
                config.token_env
            ))
        }
    };
    let mut builder = HttpBuilder::new(&token);
    if let Some(base) = &config.api_base {
        // serenity's rate limiter ignores the proxy URL (serenity issue #1739): a custom
        // base only works with it off, and then Discord's 429s are retried by the outbox.
        builder = builder
            .proxy(base.trim_end_matches('/'))
            .ratelimiter_disabled(true);
    }
    let http = builder.build();
    match http.get_current_user().await {
        Ok(user) => tracing::info!(target: bot::LOG, user = %user.name, "Discord token accepted"),
        Err(serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)))
            if r.status_code.as_u16() == 401 =>
        {
            return disabled(&format!(
                "Discord refused the token in ${} (401 {})",
                config.token_env, r.error.message
            ));
        }
        // Discord unreachable: serenity keeps trying to connect; alerts queue meanwhile.
        Err(e) => tracing::warn!(target: bot::LOG, "cannot reach Discord yet: {e}"),
    }
    let mut intents =
        GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES | GatewayIntents::DIRECT_MESSAGES;
    if config.message_content {
        intents |= GatewayIntents::MESSAGE_CONTENT;
    }
    let (events_tx, events) = mpsc::unbounded_channel();
    let client = serenity::client::ClientBuilder::new_with_http(http, intents)
        .event_handler(gateway::Handler { events: events_tx });
    let mut client = match client.await {
        Ok(c) => c,
        Err(e) => return disabled(&format!("cannot build the Discord client: {e}")),
    };
    let shards = client.shard_manager.clone();
    let registry = extra::Registry::default();
    let (sends_tx, mut sends) = mpsc::unbounded_channel();
    registry.install(sends_tx);
    let bot = Rc::new(bot::Bot {
        gate: RefCell::new(perms::Gate::new(&config)),
        http: client.http.clone(),
        config,
        rt,
        extra: registry.clone(),
        connected: RefCell::new(false),
        application_id: RefCell::new(None),
        wake: Rc::new(tokio::sync::Notify::new()),
    });
    tokio::spawn(async move {
        if let Err(e) = client.start().await {
            tracing::error!(target: bot::LOG, "Discord connection ended: {e}");
            eprintln!(
                "dreamos serve: Discord connection ended: {e}; the daemon runs without Discord"
            );
        }
    });
    let mut tasks = vec![
        tokio::task::spawn_local(bot.clone().serve(events)),
        tokio::task::spawn_local(outbox::deliver(bot.clone(), store.clone())),
        tokio::task::spawn_local(feeds::run(bot.clone(), store.clone())),
    ];
    // `discord.send` from Lua: through the durable outbox like everything else.
    {
        let (bot, store) = (bot.clone(), store.clone());
        tasks.push(tokio::task::spawn_local(async move {
            while let Some((channel, body)) = sends.recv().await {
                outbox::push(&bot, &*store, &outbox::Target::Channel(channel), &body).await;
            }
        }));
    }
    // Lua commands came or went: register the set again.
    {
        let bot = bot.clone();
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                registry.changed.notified().await;
                bot.register().await;
            }
        }));
    }
    Some(Handle { shards, tasks })
}
