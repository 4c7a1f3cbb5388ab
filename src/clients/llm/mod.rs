//! An OpenAI-compatible chat-completions client (OpenAI, Ollama, llama.cpp, vLLM, ...):
//! `POST {base_url}/chat/completions`, whole or streamed as server-sent events, and
//! `GET {base_url}/models`.
//!
//! - [`sse`] cuts a streamed body into events, wherever the TCP reads split it.
//! - [`response`] folds a whole response or a stream's chunks into a [`ChatResult`].
//! - [`error`] sorts failures into the kinds scripts branch on.
//!
//! Retries: a 429, a 503 (llama.cpp while loading the model) and a connection that could
//! not be made are tried again `retries` times, waiting what `Retry-After` asks, else 0.5 s,
//! 1 s, 2 s, ... Once a stream's headers arrived nothing is retried: text may already have
//! reached the caller, and repeating it would show it twice.
//!
//! Time: `timeout` bounds each attempt's wait for an answer; for a whole response that
//! includes the body, for a stream it applies again to each wait for the next piece, so a
//! long generation that keeps talking is never cut off. Waits use tokio's clock.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

mod error;
mod response;
mod sse;

pub use error::{ErrorKind, LlmError};
pub use response::{ChatResult, ToolCall, Usage};

use response::{parse_whole, reported_error, Accumulator, Wire};
use sse::SseParser;

/// A Retry-After longer than this is not waited for: the error goes back to the script,
/// which knows better whether an hour's wait is worth it.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// First wait between attempts when the server names none; doubles each attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Largest response body read (a completion is text; this only stops a runaway server).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Where and how to reach the server; built from `[llm]` by [`Settings::from_config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL ending in the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; `None` sends no header (local servers).
    pub api_key: Option<String>,
    /// Default per-attempt timeout (see the module docs).
    pub timeout: Duration,
    /// Further attempts after a retryable failure.
    pub retries: u32,
}

impl Settings {
    /// Reads the key from the environment variable `api_key_env` names, so the key itself
    /// is never in the configuration. A named variable that is unset is an `auth` error:
    /// sending no key would only fail later with a less helpful 401.
    pub fn from_config(config: &crate::config::LlmConfig) -> Result<Settings, LlmError> {
        let name = config.api_key_env.trim();
        let api_key = if name.is_empty() {
            None
        } else {
            match std::env::var(name) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                _ => {
                    return Err(LlmError::new(
                        ErrorKind::Auth,
                        format!(
                            "llm.api_key_env names the environment variable {name}, which is \
                             not set (set it to the API key, or set api_key_env = \"\" for a \
                             server without keys)"
                        ),
                    ))
                }
            }
        };
        Ok(Settings {
            base_url: config.base_url.trim_end_matches('/').to_string(),
            api_key,
            timeout: config.timeout,
            retries: config.retries,
        })
    }
}

/// One chat-completion request. `messages` and `options` are passed through as JSON, so a
/// server's newer fields (content parts, `tool_call_id`, ...) need no change here.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    /// `temperature`, `max_tokens`, `stop`, `tools`, `response_format`, `seed`, ...
    pub options: Map<String, Value>,
    /// Overrides [`Settings::timeout`] for this call.
    pub timeout: Option<Duration>,
}

/// A client; cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    settings: Arc<Settings>,
}

impl LlmClient {
    pub fn new(settings: Settings) -> LlmClient {
        let http = reqwest::Client::builder()
            .user_agent(format!("dreamos/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        LlmClient {
            http,
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A whole completion.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResult, LlmError> {
        let url = self.url("chat/completions");
        let place = format!("{url} for model '{}'", req.model);
        let body = self.body(req, false);
        let timeout = req.timeout.unwrap_or(self.settings.timeout);
        self.with_retries(&place, timeout, || async {
            let resp = self.send(self.post(&url, &body), &place).await?;
            let bytes = read_body(resp, &place).await?;
            parse_whole(&bytes, &place)
        })
        .await
    }

    /// A streamed completion: the answer's headers have arrived; read it with
    /// [`ChatStream::next_text`].
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, LlmError> {
        let url = self.url("chat/completions");
        let place = format!("{url} for model '{}'", req.model);
        let body = self.body(req, true);
        let timeout = req.timeout.unwrap_or(self.settings.timeout);
        let resp = self
            .with_retries(&place, timeout, || async {
                let builder = self
                    .post(&url, &body)
                    .header(reqwest::header::ACCEPT, "text/event-stream");
                self.send(builder, &place).await
            })
            .await?;
        Ok(ChatStream {
            resp,
            parser: SseParser::new(),
            acc: Accumulator::default(),
            queue: VecDeque::new(),
            saw_done: false,
            eof: false,
            place,
            idle: timeout,
        })
    }

    /// The ids of the models the server offers.
    pub async fn models(&self, timeout: Option<Duration>) -> Result<Vec<String>, LlmError> {
        let url = self.url("models");
        let timeout = timeout.unwrap_or(self.settings.timeout);
        self.with_retries(&url, timeout, || async {
            let resp = self
                .send(self.authorized(self.http.get(&url)), &url)
                .await?;
            let bytes = read_body(resp, &url).await?;
            parse_models(&bytes, &url)
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.base_url)
    }

    /// The request body: the caller's options first, so `model`, `messages` and `stream`
    /// as this client sets them always win.
    fn body(&self, req: &ChatRequest, stream: bool) -> Value {
        let mut body = req.options.clone();
        body.insert("model".into(), Value::String(req.model.clone()));
        body.insert("messages".into(), Value::Array(req.messages.clone()));
        body.insert("stream".into(), Value::Bool(stream));
        if stream {
            // Without it OpenAI and Ollama send no usage when streaming.
            body.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true}),
            );
        }
        Value::Object(body)
    }

    fn post(&self, url: &str, body: &Value) -> reqwest::RequestBuilder {
        self.authorized(self.http.post(url).json(body))
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends and turns an error status into an [`LlmError`] with the server's message.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        place: &str,
    ) -> Result<reqwest::Response, LlmError> {
        let resp = builder
            .send()
            .await
            .map_err(|e| LlmError::transport(&e, place))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after =
            error::parse_retry_after(resp.headers().get(reqwest::header::RETRY_AFTER));
        // The error body is small; a failure reading it leaves only the status to report.
        let body = read_body(resp, place).await.unwrap_or_default();
        Err(LlmError::from_response(
            status.as_u16(),
            &body,
            retry_after,
            place,
        ))
    }

    /// Runs `attempt` under `timeout`, again after retryable failures (see module docs).
    async fn with_retries<T, F, Fut>(
        &self,
        place: &str,
        timeout: Duration,
        attempt: F,
    ) -> Result<T, LlmError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let mut tries = 0u32;
        loop {
            let outcome = match tokio::time::timeout(timeout, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(LlmError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer from {place} within {}",
                        crate::units::format_duration(timeout)
                    ),
                )),
            };
            let err = match outcome {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let wait = retry_wait(tries, err.retry_after);
            if !err.retryable() || tries >= self.settings.retries || wait > MAX_RETRY_WAIT {
                return Err(gave_up(err, tries + 1));
            }
            tracing::debug!(
                target: "dreamos::llm",
                "{}; attempt {} of {} in {}",
                err,
                tries + 2,
                self.settings.retries + 1,
                crate::units::format_duration(wait)
            );
            tokio::time::sleep(wait).await;
            tries += 1;
        }
    }
}

/// How long to wait before attempt `tries + 2`: what the server asked, else doubling.
fn retry_wait(tries: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| BACKOFF_BASE.saturating_mul(1u32 << tries.min(6)))
}

fn gave_up(mut err: LlmError, attempts: u32) -> LlmError {
    if attempts > 1 {
        err.message
            .push_str(&format!(" (gave up after {attempts} attempts)"));
    }
    err
}

/// The whole body, refusing more than [`MAX_BODY`].
async fn read_body(mut resp: reqwest::Response, place: &str) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| LlmError::transport(&e, place))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(LlmError::new(
                ErrorKind::Protocol,
                format!("{place} sent more than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `{"object": "list", "data": [{"id": ...}, ...]}`.
fn parse_models(body: &[u8], place: &str) -> Result<Vec<String>, LlmError> {
    let protocol = |m: String| LlmError::new(ErrorKind::Protocol, format!("{place}: {m}"));
    let json: Value =
        serde_json::from_slice(body).map_err(|e| protocol(format!("invalid JSON: {e}")))?;
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| protocol("no \"data\" list in the answer".into()))?;
    Ok(data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// A completion being streamed. Call [`ChatStream::next_text`] until it gives `None`,
/// then [`ChatStream::finish`] for the whole result.
pub struct ChatStream {
    resp: reqwest::Response,
    parser: SseParser,
    acc: Accumulator,
    /// Events already cut from the body but not yet read.
    queue: VecDeque<String>,
    saw_done: bool,
    eof: bool,
    place: String,
    /// Longest wait for the next piece of the body.
    idle: Duration,
}

impl ChatStream {
    /// The next piece of `content`, or `None` at the end of the answer. Chunks with no
    /// text (role, reasoning, tool calls, usage) are folded into the result silently.
    pub async fn next_text(&mut self) -> Result<Option<String>, LlmError> {
        loop {
            while let Some(data) = self.queue.pop_front() {
                if data.trim() == "[DONE]" {
                    self.saw_done = true;
                    self.queue.clear();
                    return Ok(None);
                }
                let wire: Wire = serde_json::from_str(&data).map_err(|e| {
                    LlmError::new(
                        ErrorKind::Protocol,
                        format!(
                            "{} sent an event that is not JSON ({e}): {data}",
                            self.place
                        ),
                    )
                })?;
                if let Some(error) = &wire.error {
                    return Err(reported_error(error, &self.place));
                }
                let added = self.acc.apply(wire, false);
                if !added.is_empty() {
                    return Ok(Some(added));
                }
            }
            if self.saw_done {
                return Ok(None);
            }
            if self.eof {
                // Servers that omit [DONE] still end with a finish_reason; without either
                // the connection was cut mid-answer.
                if self.acc.finished {
                    return Ok(None);
                }
                return Err(LlmError::new(
                    ErrorKind::Protocol,
                    format!("the stream from {} ended before the answer did", self.place),
                ));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<(), LlmError> {
        match tokio::time::timeout(self.idle, self.resp.chunk()).await {
            Err(_) => Err(LlmError::new(
                ErrorKind::Timeout,
                format!(
                    "{} sent nothing for {} while streaming",
                    self.place,
                    crate::units::format_duration(self.idle)
                ),
            )),
            Ok(Err(e)) => Err(LlmError::transport(&e, &self.place)),
            Ok(Ok(Some(bytes))) => {
                self.queue.extend(self.parser.push(&bytes));
                Ok(())
            }
            Ok(Ok(None)) => {
                self.eof = true;
                self.queue.extend(self.parser.finish());
                Ok(())
            }
        }
    }

    /// The whole answer: text, tool calls, usage.
    pub fn finish(self) -> ChatResult {
        self.acc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_half_a_second_unless_the_server_says() {
        let waits: Vec<Duration> = (0..4).map(|t| retry_wait(t, None)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(
            retry_wait(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(retry_wait(40, None), Duration::from_secs(32));
    }

    #[test]
    fn body_sets_model_messages_and_stream_options() {
        let client = LlmClient::new(Settings {
            base_url: "http://h/v1".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            retries: 0,
        });
        let mut options = Map::new();
        options.insert("temperature".into(), Value::from(0.5));
        options.insert("stream".into(), Value::Bool(false));
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![serde_json::json!({"role": "user", "content": "hi"})],
            options,
            timeout: None,
        };
        let body = client.body(&req, true);
        assert_eq!(
            body,
            serde_json::json!({
                "model": "m", "temperature": 0.5, "stream": true,
                "messages": [{"role": "user", "content": "hi"}],
                "stream_options": {"include_usage": true},
            })
        );
        assert_eq!(client.body(&req, false).get("stream_options"), None);
        assert_eq!(client.url("models"), "http://h/v1/models");
    }
}
