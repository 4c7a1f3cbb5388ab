//! A fake Discord on 127.0.0.1: the REST API (`/api/v10/...`) and the gateway websocket,
//! speaking the real v10 JSON protocol closely enough for serenity 0.12: HELLO, IDENTIFY
//! (the token is checked; a wrong one is closed with 4004 as Discord does), heartbeats and
//! their ACKs, READY with every field serenity's `Ready` requires, RESUME/RESUMED, and
//! dispatches of INTERACTION_CREATE and MESSAGE_CREATE pushed by the test.
//!
//! Every REST call is recorded (method, path, JSON body or a multipart's `payload_json` and
//! file names) so a test asserts what the bot posted back: interaction callbacks,
//! follow-ups, channel messages, command registrations, webhooks.
//!
//! - [`rest`]: the REST routes and the recorded calls.
//! - [`gateway`]: the websocket server and the dispatch queue.

pub mod gateway;
pub mod rest;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const APPLICATION_ID: u64 = 900_000_000_000_000_001;
pub const BOT_USER_ID: u64 = 900_000_000_000_000_002;
pub const GUILD_ID: u64 = 800_000_000_000_000_001;

/// One REST request the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Without the `/api/v10` prefix or the query string.
    pub path: String,
    pub query: String,
    /// The JSON body, or a multipart request's `payload_json`; `Null` when there is none.
    pub body: Value,
    /// File names of a multipart request's attachments, with their contents.
    pub files: Vec<(String, String)>,
}

impl Call {
    /// The text a reply carries: `content`, or `data.content` for an interaction callback.
    pub fn content(&self) -> String {
        let b = &self.body;
        b.get("content")
            .or_else(|| b.get("data").and_then(|d| d.get("content")))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// Embeds of a reply (callback or message), as JSON.
    pub fn embeds(&self) -> Vec<Value> {
        let b = &self.body;
        b.get("embeds")
            .or_else(|| b.get("data").and_then(|d| d.get("embeds")))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// Shared between the REST handlers, the gateway and the test thread.
#[derive(Default)]
pub struct Shared {
    pub state: Mutex<State>,
    /// Notified on every recorded call and gateway event, so waits are event-driven.
    pub changed: Condvar,
}

#[derive(Default)]
pub struct State {
    pub token: String,
    pub calls: Vec<Call>,
    /// Dispatches not yet sent: `(t, d)`. The gateway assigns sequence numbers.
    pub pending: Vec<(String, Value)>,
    pub identifies: u32,
    pub resumes: u32,
    pub heartbeats: u32,
    /// Set while a session is live (after READY or RESUMED).
    pub connected: bool,
    /// Set by the test to close the current connection (the bot should resume).
    pub drop_requested: bool,
    /// While set, new gateway connections get no HELLO (Discord unreachable).
    pub hold: bool,
    pub next_id: u64,
}

impl State {
    pub fn snowflake(&mut self) -> u64 {
        self.next_id += 1;
        700_000_000_000_000_000 + self.next_id
    }
}

pub struct FakeDiscord {
    pub rest_port: u16,
    pub gateway_port: u16,
    pub shared: Arc<Shared>,
}

impl FakeDiscord {
    /// Starts both servers on their own thread and runtime; `token` is the only one accepted.
    pub fn start(token: &str) -> FakeDiscord {
        let shared = Arc::new(Shared::default());
        shared.state.lock().unwrap().token = token.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let for_thread = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake discord runtime");
            rt.block_on(async move {
                let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let rest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let gateway_port = gateway.local_addr().unwrap().port();
                let rest_port = rest.local_addr().unwrap().port();
                tx.send((rest_port, gateway_port)).unwrap();
                let g = tokio::spawn(gateway::serve(gateway, for_thread.clone()));
                rest::serve(rest, for_thread, gateway_port).await;
                let _ = g.await;
            });
        });
        let (rest_port, gateway_port) = rx.recv().expect("fake discord ports");
        FakeDiscord {
            rest_port,
            gateway_port,
            shared,
        }
    }

    /// What `[discord] api_base` should be.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    /// Waits until `pred` holds over the state, or `timeout` passes; returns whether it held.
    pub fn wait(&self, timeout: Duration, mut pred: impl FnMut(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if pred(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// The first recorded call matching `pred`, waiting up to `timeout` for it.
    pub fn wait_call(&self, timeout: Duration, pred: impl Fn(&Call) -> bool) -> Option<Call> {
        let mut found = None;
        self.wait(timeout, |s| {
            found = s.calls.iter().find(|c| pred(c)).cloned();
            found.is_some()
        });
        found
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.state.lock().unwrap().calls.clone()
    }

    fn dispatch(&self, t: &str, d: Value) {
        let mut state = self.shared.state.lock().unwrap();
        state.pending.push((t.to_string(), d));
        self.shared.changed.notify_all();
    }

    /// Sends an INTERACTION_CREATE for `/name` with `options` (Discord's option array, with
    /// subcommands nested) as `user` with `roles` in `channel`. Returns the interaction's
    /// token, which its callback and follow-ups carry in their paths.
    pub fn interact(
        &self,
        name: &str,
        options: Value,
        user: u64,
        roles: &[u64],
        channel: u64,
    ) -> String {
        let (id, token) = {
            let mut s = self.shared.state.lock().unwrap();
            let id = s.snowflake();
            (id, format!("itoken-{id}"))
        };
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let d = json!({
            "id": id.to_string(),
            "application_id": APPLICATION_ID.to_string(),
            "type": 2,
            "data": {"id": "600000000000000001", "name": name, "type": 1, "options": options},
            "guild_id": GUILD_ID.to_string(),
            "channel_id": channel.to_string(),
            "channel": {"id": channel.to_string(), "type": 0, "name": "ops", "permissions": "0"},
            "member": {
                "user": user_json(user),
                "roles": roles,
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "deaf": false, "mute": false, "flags": 0, "pending": false,
                "permissions": "2147483647", "nick": null, "avatar": null,
                "premium_since": null, "communication_disabled_until": null
            },
            "token": token,
            "version": 1,
            "app_permissions": "2147483647",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD_ID.to_string()},
            "context": 0,
            "attachment_size_limit": 10485760
        });
        self.dispatch("INTERACTION_CREATE", d);
        token
    }

    /// Sends a MESSAGE_CREATE with `content` from `user` in `channel`.
    pub fn message(&self, content: &str, user: u64, channel: u64) {
        let id = self.shared.state.lock().unwrap().snowflake();
        let mut m = message_json(id, channel, content, user_json(user));
        m["guild_id"] = json!(GUILD_ID.to_string());
        self.dispatch("MESSAGE_CREATE", m);
    }

    /// Makes Discord unreachable (`true`: new gateway connections hang before HELLO and
    /// REST calls get 503) or reachable again.
    pub fn hold(&self, on: bool) {
        let mut s = self.shared.state.lock().unwrap();
        s.hold = on;
        self.shared.changed.notify_all();
    }

    /// Closes the live gateway connection (as a network drop would); the bot must resume.
    pub fn drop_connection(&self) {
        let mut s = self.shared.state.lock().unwrap();
        s.drop_requested = true;
        self.shared.changed.notify_all();
    }
}

pub fn user_json(id: u64) -> Value {
    json!({
        "id": id.to_string(), "username": format!("user{id}"), "discriminator": "0",
        "global_name": null, "avatar": null, "bot": false, "public_flags": 0
    })
}

/// A full message object as Discord returns it.
pub fn message_json(id: u64, channel: u64, content: &str, author: Value) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel.to_string(), "author": author,
        "content": content, "timestamp": "2026-01-01T00:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0, "flags": 0
    })
}
