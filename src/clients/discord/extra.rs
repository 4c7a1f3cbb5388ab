//! Commands and message listeners added from Lua (`discord.command`, `discord.on_message`).
//!
//! The handler lives in the Lua state that defined it; the registry only holds a channel to
//! that state's dispatcher task. When the state goes away (its agent stopped, the script
//! ended), the dispatcher's [`Lease`] is dropped, the command leaves the registry, and the
//! bot registers the remaining set again, so the command disappears from Discord too.
//!
//! The registry is per thread (the daemon's `LocalSet` thread): Lua states and the bot live
//! there, and nothing in it is `Send`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};

use super::gateway::Invocation;
use super::perms::Policy;
use super::reply::Reply;

/// A call of a Lua command, handed to the state that defined it.
pub struct Call {
    pub invocation: Invocation,
    pub reply: oneshot::Sender<Result<Reply, String>>,
}

/// A message seen on the gateway, handed to `on_message` listeners.
#[derive(Debug, Clone)]
pub struct SeenMessage {
    pub channel: u64,
    pub user: u64,
    pub user_name: String,
    pub content: String,
}

struct Command {
    definition: Value,
    policy: Policy,
    defer: bool,
    owner: u64,
    calls: mpsc::UnboundedSender<Call>,
}

struct Listener {
    pattern: String,
    owner: u64,
    messages: mpsc::UnboundedSender<SeenMessage>,
}

#[derive(Default)]
struct Inner {
    commands: BTreeMap<String, Command>,
    listeners: Vec<Listener>,
    next_owner: u64,
    /// A channel post from Lua (`discord.send`) goes here; `None` while no bot runs.
    outbox: Option<mpsc::UnboundedSender<(u64, Value)>>,
}

/// The Lua-defined commands and listeners of this thread.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Rc<RefCell<Inner>>,
    /// Notified when the set of commands changed (register again).
    pub changed: Rc<Notify>,
}

thread_local! {
    static CURRENT: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Removes what one owner added when dropped.
pub struct Lease {
    registry: Registry,
    owner: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let removed = {
            let mut inner = self.registry.inner.borrow_mut();
            let before = inner.commands.len();
            inner.commands.retain(|_, c| c.owner != self.owner);
            inner.listeners.retain(|l| l.owner != self.owner);
            before != inner.commands.len()
        };
        if removed {
            self.registry.changed.notify_one();
        }
    }
}

impl Registry {
    /// The registry of the bot running on this thread, if any.
    pub fn current() -> Option<Registry> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this the thread's registry (the bot calls it once it is up).
    pub fn install(&self, outbox: mpsc::UnboundedSender<(u64, Value)>) {
        self.inner.borrow_mut().outbox = Some(outbox);
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// A new owner: everything added under it goes when the lease is dropped.
    pub fn lease(&self) -> Lease {
        let mut inner = self.inner.borrow_mut();
        inner.next_owner += 1;
        Lease {
            registry: self.clone(),
            owner: inner.next_owner,
        }
    }

    /// Adds (or replaces) a command. Refused if a built-in has the name.
    pub fn add_command(
        &self,
        lease: &Lease,
        name: &str,
        definition: Value,
        policy: Policy,
        defer: bool,
        calls: mpsc::UnboundedSender<Call>,
    ) -> Result<(), String> {
        if super::config::COMMANDS.contains(&name) {
            return Err(format!("'{name}' is a built-in command"));
        }
        self.inner.borrow_mut().commands.insert(
            name.to_string(),
            Command {
                definition,
                policy,
                defer,
                owner: lease.owner,
                calls,
            },
        );
        self.changed.notify_one();
        Ok(())
    }

    pub fn add_listener(
        &self,
        lease: &Lease,
        pattern: &str,
        messages: mpsc::UnboundedSender<SeenMessage>,
    ) {
        self.inner.borrow_mut().listeners.push(Listener {
            pattern: pattern.to_string(),
            owner: lease.owner,
            messages,
        });
    }

    /// Queues a channel message (`discord.send`).
    pub fn send(&self, channel: u64, body: Value) -> Result<(), String> {
        let inner = self.inner.borrow();
        let outbox = inner
            .outbox
            .as_ref()
            .ok_or("the Discord bot is not running")?;
        outbox
            .send((channel, body))
            .map_err(|_| "the Discord bot has stopped".to_string())
    }

    pub fn definitions(&self) -> Vec<Value> {
        let inner = self.inner.borrow();
        inner
            .commands
            .values()
            .map(|c| c.definition.clone())
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.inner.borrow().commands.keys().cloned().collect()
    }

    pub fn policy(&self, name: &str) -> Option<Policy> {
        self.inner
            .borrow()
            .commands
            .get(name)
            .map(|c| c.policy.clone())
    }

    pub fn deferred(&self, name: &str) -> bool {
        self.inner
            .borrow()
            .commands
            .get(name)
            .is_some_and(|c| c.defer)
    }

    /// Hands the call to the defining state and waits for the handler's answer.
    pub async fn run(&self, invocation: &Invocation) -> Result<Reply, String> {
        let calls = self
            .inner
            .borrow()
            .commands
            .get(&invocation.name)
            .map(|c| c.calls.clone())
            .ok_or_else(|| format!("/{} is no longer defined", invocation.name))?;
        let (reply, answer) = oneshot::channel();
        calls
            .send(Call {
                invocation: invocation.clone(),
                reply,
            })
            .map_err(|_| {
                format!(
                    "/{}: the script that defined it has stopped",
                    invocation.name
                )
            })?;
        answer
            .await
            .map_err(|_| format!("/{}: the handler ended without an answer", invocation.name))?
    }

    /// Hands a message to every listener whose Lua pattern matches (matched in the
    /// listener's own state; here only the listeners that are gone are dropped).
    pub fn on_message(&self, channel: u64, user: u64, user_name: &str, content: &str) {
        let seen = SeenMessage {
            channel,
            user,
            user_name: user_name.to_string(),
            content: content.to_string(),
        };
        self.inner
            .borrow_mut()
            .listeners
            .retain(|l| l.messages.send(seen.clone()).is_ok());
    }

    /// The pattern of each live listener (for tests and diagnostics).
    pub fn patterns(&self) -> Vec<String> {
        self.inner
            .borrow()
            .listeners
            .iter()
            .map(|l| l.pattern.clone())
            .collect()
    }
}
