//! serenity's side of the bot: the event handler runs on serenity's tasks (`Send`) and only
//! turns events into plain [`Event`]s for the bot's local loop, which owns everything else.
//! Nothing here touches the runtime, so a slow command never blocks the gateway.

use std::collections::BTreeMap;

use serde_json::Value;
use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandInteraction, Context, EventHandler,
    Interaction, Message, Ready, ResumedEvent, ShardStageUpdateEvent,
};
use serenity::async_trait;
use tokio::sync::mpsc;

use super::perms::Caller;

/// One slash command as the bot needs it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: u64,
    pub token: String,
    pub name: String,
    /// `start` in `/agent start NAME`.
    pub subcommand: Option<String>,
    /// Typed values: strings, integers, numbers, booleans (ids as strings).
    pub options: BTreeMap<String, Value>,
    pub caller: Caller,
    pub user_name: String,
}

impl Invocation {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Value::as_str)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.options.get(key).and_then(Value::as_i64)
    }

    /// How the command reads in logs: `/agent start worker`.
    pub fn display(&self) -> String {
        let mut s = format!("/{}", self.name);
        if let Some(sub) = &self.subcommand {
            s.push(' ');
            s.push_str(sub);
        }
        for v in self.options.values() {
            s.push(' ');
            match v {
                Value::String(t) => s.push_str(t),
                other => s.push_str(&other.to_string()),
            }
        }
        s
    }
}

/// What the gateway tells the bot.
#[derive(Debug)]
pub enum Event {
    /// A new session: the application id is known and commands can be registered.
    Ready {
        application_id: u64,
    },
    /// The session came back (resumed or reconnected): flush what queued meanwhile.
    Connected,
    Disconnected,
    Command(Invocation),
    Message {
        channel: u64,
        user: u64,
        user_name: String,
        content: String,
    },
}

fn option_values(options: &[CommandDataOption], into: &mut BTreeMap<String, Value>) {
    for option in options {
        let value = match &option.value {
            CommandDataOptionValue::String(s) => Value::from(s.as_str()),
            CommandDataOptionValue::Integer(n) => Value::from(*n),
            CommandDataOptionValue::Number(n) => Value::from(*n),
            CommandDataOptionValue::Boolean(b) => Value::from(*b),
            CommandDataOptionValue::User(id) => Value::from(id.get().to_string()),
            CommandDataOptionValue::Channel(id) => Value::from(id.get().to_string()),
            CommandDataOptionValue::Role(id) => Value::from(id.get().to_string()),
            _ => continue,
        };
        into.insert(option.name.clone(), value);
    }
}

pub fn invocation(command: &CommandInteraction) -> Invocation {
    let mut options = BTreeMap::new();
    let mut subcommand = None;
    for option in &command.data.options {
        match &option.value {
            CommandDataOptionValue::SubCommand(inner) => {
                subcommand = Some(option.name.clone());
                option_values(inner, &mut options);
            }
            CommandDataOptionValue::SubCommandGroup(_) => {}
            _ => option_values(std::slice::from_ref(option), &mut options),
        }
    }
    let (user, roles) = match &command.member {
        Some(member) => (
            member.user.clone(),
            member.roles.iter().map(|r| r.get()).collect(),
        ),
        None => (command.user.clone(), Vec::new()),
    };
    Invocation {
        id: command.id.get(),
        token: command.token.clone(),
        name: command.data.name.clone(),
        subcommand,
        options,
        caller: Caller {
            user: user.id.get(),
            roles,
            channel: command.channel_id.get(),
        },
        user_name: user.name.clone(),
    }
}

/// serenity's event handler: forwards to the bot's loop.
pub struct Handler {
    pub events: mpsc::UnboundedSender<Event>,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.events.send(Event::Ready {
            application_id: ready.application.id.get(),
        });
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        let _ = self.events.send(Event::Connected);
    }

    async fn shard_stage_update(&self, _ctx: Context, update: ShardStageUpdateEvent) {
        // Every stage but Connected means posts cannot be trusted to arrive: hold them.
        let event = match update.new {
            serenity::gateway::ConnectionStage::Connected => Event::Connected,
            _ => Event::Disconnected,
        };
        let _ = self.events.send(event);
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Interaction::Command(command) = interaction {
            let _ = self.events.send(Event::Command(invocation(&command)));
        }
    }

    async fn message(&self, _ctx: Context, message: Message) {
        if message.author.bot {
            return;
        }
        let _ = self.events.send(Event::Message {
            channel: message.channel_id.get(),
            user: message.author.id.get(),
            user_name: message.author.name.clone(),
            content: message.content.clone(),
        });
    }
}
