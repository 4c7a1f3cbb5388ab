//! An OpenAI-compatible chat server on 127.0.0.1 (what Ollama and llama.cpp serve under
//! `/v1`), for `dreamos.llm` tests. One thread per connection, `Connection: close`.
//!
//! The model named in the request picks the behaviour, so one fake serves every case:
//! - any other name: answers `You said: <last user message>`; streamed as four text
//!   deltas written as separate HTTP chunks, one write cutting an event in half, with a
//!   pause of [`STREAM_PAUSE`] before the last delta; then a usage chunk and `[DONE]`;
//! - `tools`: two tool calls; streamed as pieces split by `index`, arguments in fragments;
//! - `thinker`: `reasoning_content` deltas before the text;
//! - `missing`: 404 as Ollama says it for a model never pulled;
//! - `busy`: 429 with `Retry-After: 1`, every time;
//! - `loading`: 503 `Loading model` (llama.cpp) for the first request, then normal;
//! - `silent`: reads the request and never answers;
//! - `garbled`: 200 with a body that is not JSON (or a stream event that is not).
//!
//! With [`FakeLlm::with_key`], a request without `Authorization: Bearer <key>` gets
//! llama.cpp's 401. `GET /v1/models` lists three models. Every request is recorded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

/// How long the stream waits before its last text delta: long enough that a test can tell
/// deltas were handed over as they arrived, not all at the end.
pub const STREAM_PAUSE: Duration = Duration::from_millis(400);

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    key: Option<String>,
    requests: Mutex<Vec<Recorded>>,
    /// Requests for the `loading` model so far; the first one finds it still loading.
    loading_seen: AtomicUsize,
}

pub struct FakeLlm {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FakeLlm {
    pub fn start() -> FakeLlm {
        FakeLlm::serve(Shared::default())
    }

    /// A server that wants `Authorization: Bearer <key>`, as `llama-server --api-key`.
    pub fn with_key(key: &str) -> FakeLlm {
        FakeLlm::serve(Shared {
            key: Some(key.to_string()),
            ..Shared::default()
        })
    }

    fn serve(shared: Shared) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(shared);
        let s = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                thread::spawn(move || handle(stream, &s));
            }
        });
        FakeLlm { port, shared }
    }

    /// The base URL clients configure (`[llm] base_url`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

fn handle(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Some(req) = read_request(&stream) else {
        return;
    };
    shared.requests.lock().expect("lock").push(req.clone());
    let mut out = stream;
    if let Some(key) = &shared.key {
        if req.header("authorization") != Some(&format!("Bearer {key}")) {
            let body = json!({"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}});
            return respond(&mut out, 401, "", &body.to_string());
        }
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/models") => {
            let data: Vec<Value> = ["llama3.1", "qwen3", "tools"]
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1700000000, "owned_by": "library"}))
                .collect();
            respond(
                &mut out,
                200,
                "",
                &json!({"object": "list", "data": data}).to_string(),
            )
        }
        ("POST", "/v1/chat/completions") => chat(&mut out, &req.body, shared),
        _ => respond(&mut out, 404, "", "404 page not found"),
    }
}

fn chat(out: &mut TcpStream, body: &Value, shared: &Shared) {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    match model.as_str() {
        "missing" => {
            let message = format!("model \"{model}\" not found, try pulling it first");
            let body = json!({"error": {"message": message, "type": "not_found_error", "param": null, "code": null}});
            return respond(out, 404, "", &body.to_string());
        }
        "busy" => {
            let body = json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
            return respond(out, 429, "Retry-After: 1\r\n", &body.to_string());
        }
        "loading" if shared.loading_seen.fetch_add(1, Ordering::SeqCst) == 0 => {
            let body = json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}});
            return respond(out, 503, "", &body.to_string());
        }
        "silent" => {
            thread::sleep(Duration::from_secs(60));
            return;
        }
        "garbled" if !stream => return respond(out, 200, "", "{\"choices\": [oops"),
        _ => {}
    }
    let reply = format!("You said: {}", last_user_text(body));
    if stream {
        stream_answer(out, &model, &reply)
    } else {
        respond(out, 200, "", &whole_answer(&model, &reply).to_string())
    }
}

fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    match last.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn tool_calls() -> Value {
    json!([
        {"id": "call_1", "index": 0, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"C\"}"}},
        {"id": "call_2", "index": 1, "type": "function", "function": {"name": "time", "arguments": "{\"zone\":\"Europe/Paris\"}"}}
    ])
}

fn whole_answer(model: &str, reply: &str) -> Value {
    let (message, finish) = if model == "tools" {
        (
            json!({"role": "assistant", "content": "", "tool_calls": tool_calls()}),
            "tool_calls",
        )
    } else {
        (json!({"role": "assistant", "content": reply}), "stop")
    };
    json!({
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1700000000,
        "model": model, "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    })
}

/// One `chat.completion.chunk` event with `delta` for choice 0.
fn event(model: &str, delta: Value, finish: Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model, "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {chunk}\n\n")
}

/// Writes the answer as SSE, each element of `writes` one HTTP chunk (one TCP write).
fn stream_answer(out: &mut TcpStream, model: &str, reply: &str) {
    let mut events = Vec::new();
    let mut pause_before = usize::MAX;
    if model == "tools" {
        // OpenAI style: role once, then pieces of both calls by index, arguments split.
        events.push(event(
            model,
            json!({"role": "assistant", "content": null}),
            Value::Null,
        ));
        for piece in [
            json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]),
            json!([{"index": 0, "function": {"arguments": "{\"city\":"}}]),
            json!([{"index": 1, "id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{\"zone\":"}}]),
            json!([{"index": 0, "function": {"arguments": "\"Paris\",\"unit\":\"C\"}"}}]),
            json!([{"index": 1, "function": {"arguments": "\"Europe/Paris\"}"}}]),
        ] {
            events.push(event(model, json!({"tool_calls": piece}), Value::Null));
        }
        events.push(event(model, json!({}), json!("tool_calls")));
    } else {
        if model == "thinker" {
            for thought in ["Let me ", "think."] {
                events.push(event(
                    model,
                    json!({"role": "assistant", "content": "", "reasoning_content": thought}),
                    Value::Null,
                ));
            }
        }
        if model == "garbled" {
            events.push("data: {\"choices\": [oops\n\n".to_string());
        }
        // Ollama style: the role repeated in every delta.
        let cut = [0, 3, 6, 11, reply.len()];
        for w in cut.windows(2) {
            let piece = reply.get(w[0]..w[1]).unwrap_or_default();
            if w[1] == reply.len() {
                pause_before = events.len();
            }
            events.push(event(
                model,
                json!({"role": "assistant", "content": piece}),
                Value::Null,
            ));
        }
        events.push(event(
            model,
            json!({"role": "assistant", "content": ""}),
            json!("stop"),
        ));
    }
    events.push(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
    ));
    events.push("data: [DONE]\n\n".to_string());

    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    for (i, ev) in events.iter().enumerate() {
        if i == pause_before {
            thread::sleep(STREAM_PAUSE);
        }
        // The second event goes out in two writes, cut mid-JSON.
        let writes: Vec<&str> = if i == 1 {
            let mid = ev.len() / 2;
            vec![&ev[..mid], &ev[mid..]]
        } else {
            vec![ev.as_str()]
        };
        for w in writes {
            let chunk = format!("{:x}\r\n{w}\r\n", w.len());
            if out
                .write_all(chunk.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                return;
            }
            // Separate writes reach the client as separate reads.
            thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = out.write_all(b"0\r\n\r\n");
}

fn respond(out: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = out.write_all(response.as_bytes());
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}
