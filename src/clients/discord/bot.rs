//! The bot's local loop: it receives [`Event`]s from serenity's handler, checks permissions
//! and cooldowns, runs commands on the `LocalSet` (where the runtime's `!Send` handles live),
//! and answers through serenity's HTTP client. Each command runs in its own local task, so
//! a slow `/captain` never holds up a `/status`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serenity::all::{ApplicationId, GuildId, Http};
use tokio::sync::mpsc;

use super::builtins::{self, Runtime};
use super::config::{DiscordConfig, COMMANDS};
use super::gateway::{Event, Invocation};
use super::perms::{Gate, Policy};
use super::reply::{Reply, Responder};

/// Log target of everything the bot logs (refusals, failures to answer).
pub const LOG: &str = "dreamos::discord";

/// A command that did not finish within this long is deferred, inside Discord's 3 seconds.
const DEFER_AFTER: Duration = Duration::from_millis(2000);
/// Attempts at posting an answer before giving up (the interaction token lasts 15 minutes).
const ANSWER_ATTEMPTS: u32 = 4;

/// State shared by the loop and the command tasks it spawns.
pub struct Bot {
    pub rt: Runtime,
    pub config: DiscordConfig,
    pub http: Arc<Http>,
    /// Permission rules and cooldown bookkeeping.
    pub gate: RefCell<Gate>,
    /// Commands added from Lua (`discord.command`), by name.
    pub extra: super::extra::Registry,
    pub connected: RefCell<bool>,
    /// Set when the first READY gave the application id (needed to register commands).
    pub application_id: RefCell<Option<u64>>,
    /// Wakes the outbox sender when the connection comes back or something is queued.
    pub wake: Rc<tokio::sync::Notify>,
}

impl Bot {
    /// Serves events until serenity's handler is gone.
    pub async fn serve(self: Rc<Self>, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            match event {
                Event::Ready { application_id } => {
                    self.http
                        .set_application_id(ApplicationId::new(application_id));
                    *self.application_id.borrow_mut() = Some(application_id);
                    self.set_connected(true);
                    tracing::info!(target: LOG, "connected to Discord");
                    let bot = self.clone();
                    tokio::task::spawn_local(async move { bot.register().await });
                }
                Event::Connected => self.set_connected(true),
                Event::Disconnected => self.set_connected(false),
                Event::Command(inv) => {
                    let bot = self.clone();
                    tokio::task::spawn_local(async move { bot.handle(inv).await });
                }
                Event::Message {
                    channel,
                    user,
                    user_name,
                    content,
                } => self.extra.on_message(channel, user, &user_name, &content),
            }
        }
    }

    fn set_connected(&self, up: bool) {
        *self.connected.borrow_mut() = up;
        if up {
            self.wake.notify_one();
        }
    }

    /// Registers the built-ins and the Lua-defined commands, replacing whatever was there
    /// (one bulk overwrite per guild, or globally).
    pub async fn register(&self) {
        if self.application_id.borrow().is_none() {
            return;
        }
        let mut commands = super::commands::builtins();
        commands.extend(self.extra.definitions());
        let body = Value::Array(commands);
        let result = if self.config.global || self.config.guilds.is_empty() {
            self.http.create_global_commands(&body).await.map(|_| ())
        } else {
            let mut result = Ok(());
            for guild in &self.config.guilds {
                if let Err(e) = self
                    .http
                    .create_guild_commands(GuildId::new(guild.0), &body)
                    .await
                {
                    tracing::error!(target: LOG, guild = guild.0, "cannot register slash commands: {e}");
                    result = Err(e);
                }
            }
            result
        };
        if let Err(e) = result {
            tracing::error!(target: LOG, "cannot register slash commands: {e}");
        }
    }

    fn policy(&self, name: &str) -> Option<Policy> {
        if COMMANDS.contains(&name) {
            return Some(Policy::builtin(&self.config, name));
        }
        self.extra.policy(name)
    }

    async fn handle(self: Rc<Self>, inv: Invocation) {
        let mut responder = Responder {
            http: self.http.clone(),
            id: inv.id,
            token: inv.token.clone(),
            deferred: false,
            sent: 0,
        };
        let Some(policy) = self.policy(&inv.name) else {
            let reply = Reply::ephemeral(format!(
                "/{} is not a command of this bot (any more)",
                inv.name
            ));
            self.answer(&mut responder, &reply, &inv).await;
            return;
        };
        let verdict = self
            .gate
            .borrow_mut()
            .check(&inv.name, &policy, &inv.caller, Instant::now());
        if let Err(why) = verdict {
            tracing::warn!(
                target: LOG,
                user = inv.caller.user,
                channel = inv.caller.channel,
                command = %inv.display(),
                "refused: {why}"
            );
            self.answer(
                &mut responder,
                &Reply::ephemeral(format!("Refused: {why}")),
                &inv,
            )
            .await;
            return;
        }
        tracing::info!(target: LOG, user = inv.caller.user, command = %inv.display(), "command");
        if builtins::slow(&inv) || self.extra.deferred(&inv.name) {
            if let Err(e) = responder.defer(false).await {
                tracing::error!(target: LOG, command = %inv.display(), "cannot defer: {e}");
            }
        }
        let work = async {
            if COMMANDS.contains(&inv.name.as_str()) {
                builtins::run(&self.rt, &inv).await
            } else {
                self.extra.run(&inv).await
            }
        };
        tokio::pin!(work);
        let result = if responder.deferred {
            work.await
        } else {
            tokio::select! {
                r = &mut work => r,
                _ = tokio::time::sleep(DEFER_AFTER) => {
                    if let Err(e) = responder.defer(false).await {
                        tracing::error!(target: LOG, command = %inv.display(), "cannot defer: {e}");
                    }
                    work.await
                }
            }
        };
        let reply = result.unwrap_or_else(|e| Reply::text(format!("⚠️ {e}")));
        self.answer(&mut responder, &reply, &inv).await;
    }

    /// Posts the answer, retrying a failed post (a dropped connection, a 5xx) a few times.
    async fn answer(&self, responder: &mut Responder, reply: &Reply, inv: &Invocation) {
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=ANSWER_ATTEMPTS {
            match responder.finish(reply).await {
                Ok(()) => return,
                Err(e) if attempt == ANSWER_ATTEMPTS => {
                    tracing::error!(target: LOG, command = %inv.display(), "cannot answer: {e}");
                }
                Err(e) => {
                    tracing::warn!(target: LOG, command = %inv.display(), attempt, "answer failed, retrying: {e}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}
