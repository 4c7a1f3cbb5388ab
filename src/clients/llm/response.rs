//! The answer of a chat completion, from either a whole JSON response or a stream of
//! chunks. Every field is optional when read: servers differ (Ollama repeats `role` in each
//! delta, OpenAI sends it once; llama.cpp adds `timings`; thinking models add `reasoning`
//! or `reasoning_content`), and none of that may fail a call.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{ErrorKind, LlmError};

/// A finished completion, as scripts receive it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResult {
    pub content: String,
    pub role: String,
    /// `stop`, `length`, `tool_calls`, `content_filter`; empty if the server gave none.
    pub finish_reason: String,
    /// The model that answered, as the server names it.
    pub model: String,
    pub tool_calls: Vec<ToolCall>,
    /// Absent when the server reports none (some do not, even when asked).
    pub usage: Option<Usage>,
    /// The thinking of reasoning models, kept apart from `content`.
    pub reasoning: Option<String>,
}

/// One function call the model asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// JSON text exactly as the model wrote it (it may not be valid JSON).
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// `chat.completion` and `chat.completion.chunk` share this shape: one has `message`,
/// the other `delta`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Wire {
    model: Option<String>,
    choices: Vec<WireChoice>,
    usage: Option<Usage>,
    /// Some servers (llama.cpp) report a failure inside a stream as an event of its own.
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireChoice {
    index: u32,
    message: Option<WireMessage>,
    delta: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireMessage {
    role: Option<String>,
    content: Option<String>,
    reasoning: Option<String>,
    reasoning_content: Option<String>,
    tool_calls: Vec<WireToolCall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireToolCall {
    /// Position of the call; pieces of one call share it. Absent in whole messages.
    index: Option<u32>,
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

/// Reads a non-streaming response body.
pub(super) fn parse_whole(body: &[u8], place: &str) -> Result<ChatResult, LlmError> {
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        LlmError::new(
            ErrorKind::Protocol,
            format!("{place} answered with invalid JSON: {e}"),
        )
    })?;
    if let Some(error) = &wire.error {
        return Err(reported_error(error, place));
    }
    let first = wire.choices.iter().find(|c| c.index == 0);
    if first.and_then(|c| c.message.as_ref()).is_none() {
        return Err(LlmError::new(
            ErrorKind::Protocol,
            format!("{place} answered without choices[0].message"),
        ));
    }
    let mut acc = Accumulator::default();
    acc.apply(wire, true);
    Ok(acc.finish())
}

/// An `{"error": ...}` object inside a 200 answer or a stream (llama.cpp reports failures
/// during generation this way, after the status line was already sent).
pub(super) fn reported_error(error: &serde_json::Value, place: &str) -> LlmError {
    let text = match error {
        serde_json::Value::String(s) => s.clone(),
        other => match other.get("message").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None => other.to_string(),
        },
    };
    LlmError::new(ErrorKind::Server, format!("{text} (reported by {place})"))
}

/// Builds a [`ChatResult`] from chunks in arrival order.
#[derive(Debug, Default)]
pub(super) struct Accumulator {
    result: ChatResult,
    reasoning: String,
    /// Tool calls by their `index`; a call's pieces arrive in order, possibly interleaved
    /// with other calls' pieces.
    calls: BTreeMap<u32, ToolCall>,
    /// Whether any chunk carried a `finish_reason` (a stream without one was cut short).
    pub finished: bool,
}

impl Accumulator {
    /// Folds in one chunk (or a whole response, `whole = true`) and returns the text it
    /// added to `content`, for the stream callback. Only choice 0 counts: `n` is never
    /// asked for.
    pub(super) fn apply(&mut self, wire: Wire, whole: bool) -> String {
        if let Some(model) = wire.model.filter(|m| !m.is_empty()) {
            self.result.model = model;
        }
        if let Some(usage) = wire.usage {
            self.result.usage = Some(usage);
        }
        let mut added = String::new();
        for choice in wire.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.result.finish_reason = reason;
                self.finished = true;
            }
            let Some(msg) = (if whole { choice.message } else { choice.delta }) else {
                continue;
            };
            if let Some(role) = msg.role.filter(|r| !r.is_empty()) {
                self.result.role = role;
            }
            if let Some(text) = msg.content {
                self.result.content.push_str(&text);
                added.push_str(&text);
            }
            for text in [msg.reasoning, msg.reasoning_content].into_iter().flatten() {
                self.reasoning.push_str(&text);
            }
            let next = self.calls.len() as u32;
            for (position, call) in msg.tool_calls.into_iter().enumerate() {
                // Whole messages list calls without an index; their order is the index.
                let index = call
                    .index
                    .unwrap_or(if whole { position as u32 } else { next });
                let slot = self.calls.entry(index).or_default();
                merge_call(slot, call);
            }
        }
        added
    }

    pub(super) fn finish(mut self) -> ChatResult {
        if self.result.role.is_empty() {
            self.result.role = "assistant".into();
        }
        if !self.reasoning.is_empty() {
            self.result.reasoning = Some(self.reasoning);
        }
        self.result.tool_calls = self.calls.into_values().collect();
        self.result
    }
}

/// Adds one piece of a tool call: `id`, `type` and `name` come once (or repeated, which
/// changes nothing), `arguments` arrive in fragments to be concatenated.
fn merge_call(slot: &mut ToolCall, piece: WireToolCall) {
    if let Some(id) = piece.id.filter(|s| !s.is_empty()) {
        slot.id = id;
    }
    if let Some(kind) = piece.kind.filter(|s| !s.is_empty()) {
        slot.kind = kind;
    }
    if slot.kind.is_empty() {
        slot.kind = "function".into();
    }
    if let Some(name) = piece.function.name.filter(|s| !s.is_empty()) {
        slot.name = name;
    }
    if let Some(args) = piece.function.arguments {
        slot.arguments.push_str(&args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(json: &str) -> Wire {
        serde_json::from_str(json).expect("test chunk")
    }

    #[test]
    fn whole_response_with_tool_calls_and_usage() {
        let body = br#"{"id":"c","object":"chat.completion","model":"llama3.1","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","index":0,"type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12},"system_fingerprint":"fp_ollama"}"#;
        let r = parse_whole(body, "p").expect("parses");
        assert_eq!(r.content, "");
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(r.model, "llama3.1");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "weather");
        assert_eq!(r.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(12));
        let no_choice = parse_whole(b"{\"choices\":[]}", "p").expect_err("no choice");
        assert_eq!(no_choice.kind, ErrorKind::Protocol);
        assert_eq!(no_choice.message, "p answered without choices[0].message");
        let bad = parse_whole(b"not json", "p").expect_err("not json");
        assert_eq!(bad.kind, ErrorKind::Protocol);
        let reported = parse_whole(br#"{"error":{"message":"out of memory"}}"#, "p");
        assert_eq!(
            reported.expect_err("error").to_string(),
            "server: out of memory (reported by p)"
        );
    }

    #[test]
    fn stream_chunks_merge_text_reasoning_and_tool_calls_by_index() {
        let mut acc = Accumulator::default();
        let pieces = [
            r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"hmm "},"finish_reason":null}]}"#,
            r#"{"model":"m","choices":[{"index":0,"delta":{"reasoning":"ok","content":"Hel"}}],"timings":{"x":1}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}},{"index":1,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
        ];
        let added: Vec<String> = pieces.iter().map(|p| acc.apply(chunk(p), false)).collect();
        assert_eq!(added.concat(), "Hello");
        assert!(acc.finished);
        let r = acc.finish();
        assert_eq!(r.content, "Hello");
        assert_eq!(r.role, "assistant");
        assert_eq!(r.reasoning.as_deref(), Some("hmm ok"));
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(11));
        let calls: Vec<(&str, &str, &str, &str)> = r
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.kind.as_str(),
                    c.name.as_str(),
                    c.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("a", "function", "f", "{\"x\":1}"),
                ("b", "function", "g", "{}")
            ]
        );
    }

    #[test]
    fn role_missing_everywhere_still_reads_assistant() {
        let mut acc = Accumulator::default();
        acc.apply(
            chunk(r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#),
            false,
        );
        assert!(!acc.finished);
        assert_eq!(acc.finish().role, "assistant");
    }
}
