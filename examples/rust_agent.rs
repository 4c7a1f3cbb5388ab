//! A Rust agent supervised exactly like a Lua one: `cargo run --example rust_agent`.
//!
//! It implements [`Agent`] (here `on_start`, `on_message`, `on_stop`), is added to a
//! [`Supervisor`] with a restart policy, gets its durable inbox `agent:greeter` on the bus,
//! and answers requests. The supervisor records every lifecycle transition in the store and
//! publishes it on `agents.events`, which this example prints.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dreamos::agents::{
    Agent, AgentError, Context, Factory, Handled, Recorder, RestartPolicy, Supervision, Supervisor,
};
use dreamos::bus::{Bus, BusConfig, Message, SendOptions};
use dreamos::store::{AgentStore, BusStore};
use serde_json::json;

/// Greets whoever asks and counts greetings (the count lives as long as this instance).
struct Greeter {
    greeted: u64,
}

impl Agent for Greeter {
    fn on_start<'a>(&'a mut self, ctx: &'a mut Context) -> Handled<'a> {
        Box::pin(async move {
            println!("{} started", ctx.name);
            Ok(())
        })
    }

    fn on_message<'a>(&'a mut self, ctx: &'a mut Context, message: Message) -> Handled<'a> {
        Box::pin(async move {
            self.greeted += 1;
            let who = message.payload["name"].as_str().unwrap_or("stranger");
            let bus = ctx.bus.clone().ok_or_else(|| AgentError::new("no bus"))?;
            bus.reply(
                &ctx.sender(),
                &message,
                &json!({ "greeting": format!("hello, {who}"), "count": self.greeted }),
            )
            .await
            .map_err(|e| AgentError::new(e.to_string()))?;
            Ok(())
        })
    }

    fn on_stop<'a>(&'a mut self, ctx: &'a mut Context, reason: &'a str) -> Handled<'a> {
        Box::pin(async move {
            println!(
                "{} stopping ({reason}) after {} greetings",
                ctx.name, self.greeted
            );
            Ok(())
        })
    }
}

fn main() -> anyhow::Result<()> {
    dreamos::runtime::block_on(async {
        let dir = tempfile::tempdir()?;
        let store = dreamos::store::open_sqlite(&dir.path().join("example.db")).await?;
        let bus = Bus::new(store.clone() as Arc<dyn BusStore>, BusConfig::default())?;
        let mut events = bus.subscribe("agents.events")?;
        let supervisor = Supervisor::new(Recorder::new(
            Some(store as Arc<dyn AgentStore>),
            Some(bus.clone()),
        ));
        let factory: Factory =
            Rc::new(|| Box::pin(async { Ok(Box::new(Greeter { greeted: 0 }) as Box<dyn Agent>) }));
        let spec = Supervision {
            restart: RestartPolicy::Permanent,
            idle_timeout: None,
            ..Supervision::default()
        };
        supervisor.add("greeter", spec, factory)?;
        supervisor.start("greeter", "example")?;
        for name in ["Ada", "Grace"] {
            let reply = bus
                .request(
                    "example",
                    "agent:greeter",
                    &json!({ "name": name }),
                    Duration::from_secs(5),
                    SendOptions::default(),
                )
                .await?;
            println!("reply: {}", reply.payload);
        }
        supervisor.shutdown("example finished").await;
        while let Some(event) = events.try_recv() {
            println!(
                "event: {} -> {} ({})",
                event.payload["from"], event.payload["to"], event.payload["reason"]
            );
        }
        anyhow::Ok(())
    })?
}
