//! The built-in slash commands as Discord registers them (application command JSON), and
//! the Lua-defined ones added beside them.

use serde_json::{json, Value};

/// Option types (Discord's numbering).
pub const SUB_COMMAND: u8 = 1;
pub const STRING: u8 = 3;
pub const INTEGER: u8 = 4;
pub const BOOLEAN: u8 = 5;
pub const USER: u8 = 6;
pub const CHANNEL: u8 = 7;
pub const ROLE: u8 = 8;
pub const NUMBER: u8 = 10;

fn opt(kind: u8, name: &str, description: &str, required: bool) -> Value {
    json!({"type": kind, "name": name, "description": description, "required": required})
}

fn sub(name: &str, description: &str, options: Vec<Value>) -> Value {
    json!({"type": SUB_COMMAND, "name": name, "description": description, "options": options})
}

fn command(name: &str, description: &str, options: Vec<Value>) -> Value {
    json!({"type": 1, "name": name, "description": description, "options": options})
}

/// Every built-in command.
pub fn builtins() -> Vec<Value> {
    let agent_name = || opt(STRING, "name", "The agent's name", true);
    vec![
        command(
            "agents",
            "Every agent: state, uptime, restarts, inbox",
            vec![],
        ),
        command(
            "agent",
            "Start, stop, restart, reload an agent or show its status",
            ["start", "stop", "restart", "reload", "status"]
                .iter()
                .map(|action| sub(action, &format!("{action} an agent"), vec![agent_name()]))
                .collect(),
        ),
        command(
            "send",
            "Send a message (JSON, or plain text) to an agent's inbox",
            vec![
                agent_name(),
                opt(STRING, "message", "JSON, or plain text", true),
            ],
        ),
        command(
            "broadcast",
            "Send a message to every agent's inbox",
            vec![opt(STRING, "message", "JSON, or plain text", true)],
        ),
        command(
            "captain",
            "Ask the Captain and wait for its answer",
            vec![opt(STRING, "message", "What to ask", true)],
        ),
        command(
            "tasks",
            "List tasks",
            vec![opt(
                STRING,
                "status",
                "ready, claimed, running, done, failed, ...",
                false,
            )],
        ),
        command(
            "task",
            "Add a task or show one",
            vec![
                sub(
                    "add",
                    "Add a task",
                    vec![
                        opt(STRING, "title", "What to do", true),
                        opt(STRING, "priority", "critical, high, normal, low", false),
                        opt(STRING, "assignee", "Reserve it for this agent", false),
                    ],
                ),
                sub(
                    "show",
                    "Show a task",
                    vec![opt(INTEGER, "id", "The task's id", true)],
                ),
            ],
        ),
        command(
            "logs",
            "Recent log lines",
            vec![
                opt(STRING, "agent", "Only this agent's lines", false),
                opt(
                    STRING,
                    "level",
                    "Least severe level: debug, info, warn, error",
                    false,
                ),
                opt(INTEGER, "n", "How many lines (default 20)", false),
            ],
        ),
        command(
            "status",
            "Agents, tasks, bus depth, schedules, uptime",
            vec![],
        ),
        command(
            "schedule",
            "List schedules or run one now",
            vec![
                sub("list", "Every schedule with its next run", vec![]),
                sub(
                    "run",
                    "Run a schedule now",
                    vec![opt(STRING, "name", "The schedule's name", true)],
                ),
            ],
        ),
        command(
            "run",
            "Run a script from the configured script paths and show its output",
            vec![
                opt(
                    STRING,
                    "script",
                    "The script's name (on runtime.script_paths)",
                    true,
                ),
                opt(STRING, "args", "Arguments, separated by spaces", false),
            ],
        ),
    ]
}

/// The option type a Lua command declares (`"string"`, `"integer"`, ...).
pub fn option_type(name: &str) -> Option<u8> {
    Some(match name {
        "string" => STRING,
        "integer" => INTEGER,
        "boolean" => BOOLEAN,
        "number" => NUMBER,
        "user" => USER,
        "channel" => CHANNEL,
        "role" => ROLE,
        _ => return None,
    })
}

/// Discord's rule for command and option names: 1–32 lowercase letters, digits, `-` or `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
