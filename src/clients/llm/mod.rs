//! An OpenAI-compatible chat-completions client (OpenAI, Ollama, llama.cpp, vLLM, ...):
//! `POST {base_url}/chat/completions`, whole or streamed as server-sent events, and
//! `GET {base_url}/models`.
//!
//! - [`sse`] cuts a streamed body into events, wherever the TCP reads split it.
//! - [`response`] folds a whole response or a stream's chunks into a [`ChatResult`].
//! - [`error`] sorts failures into the kinds scripts branch on.
//! - [`stream`] reads a streamed answer piece by piece.
//!
//! Retries: a 429, a 503 (llama.cpp while loading the model) and a connection that could
//! not be made are tried again `retries` times, waiting what `Retry-After` asks, else 0.5 s,
//! 1 s, 2 s, ... Once a stream's headers arrived nothing is retried: text may already have
//! reached the caller, and repeating it would show it twice.
//!
//! Time: `timeout` bounds each attempt's wait for an answer; for a whole response that
//! includes the body, for a stream it applies again to each wait for the next piece, so a
//! long generation that keeps talking is never cut off. Waits use tokio's clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

mod error;
mod response;
mod sse;
mod stream;

pub use error::{ErrorKind, LlmError};
pub use response::{ChatResult, ToolCall, Usage};
pub use stream::ChatStream;

use response::parse_whole;

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
        Ok(ChatStream::new(resp, place, timeout))
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

    fn client(retries: u32) -> LlmClient {
        LlmClient::new(Settings {
            base_url: "http://h/v1".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            retries,
        })
    }

    fn status(code: u16, retry_after: Option<u64>) -> LlmError {
        LlmError::from_response(code, b"{}", retry_after.map(Duration::from_secs), "p")
    }

    /// Runs `with_retries` over attempts that fail as `fail` says; (attempts, time taken).
    async fn attempts(retries: u32, fail: impl Fn() -> LlmError) -> (u32, Duration, LlmError) {
        let tries = std::cell::Cell::new(0u32);
        let start = tokio::time::Instant::now();
        let err = client(retries)
            .with_retries("p", Duration::from_secs(5), || {
                tries.set(tries.get() + 1);
                let e = fail();
                async move { Err::<(), _>(e) }
            })
            .await
            .expect_err("every attempt fails");
        (tries.get(), start.elapsed(), err)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_what_the_server_asks_on_tokios_clock() {
        let (tries, took, err) = attempts(2, || status(429, Some(30))).await;
        assert_eq!((tries, took), (3, Duration::from_secs(60)));
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(
            err.message.ends_with("(gave up after 3 attempts)"),
            "{}",
            err.message
        );
        // Without Retry-After: 0.5 s, then 1 s.
        let (tries, took, _) = attempts(2, || status(503, None)).await;
        assert_eq!((tries, took), (3, Duration::from_millis(1500)));
        // A wait longer than a minute goes back to the caller at once.
        let (tries, took, err) = attempts(2, || status(429, Some(3600))).await;
        assert_eq!((tries, took), (1, Duration::ZERO));
        assert!(err.message.ends_with("retry after 1h"), "{}", err.message);
        // Not retried: errors the server would repeat, and retries = 0.
        assert_eq!(attempts(2, || status(404, None)).await.0, 1);
        assert_eq!(attempts(2, || status(500, None)).await.0, 1);
        assert_eq!(attempts(0, || status(503, None)).await.0, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_never_ends_times_out_and_is_not_repeated() {
        let tries = std::cell::Cell::new(0u32);
        let err = client(2)
            .with_retries("p", Duration::from_secs(5), || {
                tries.set(tries.get() + 1);
                std::future::pending::<Result<(), LlmError>>()
            })
            .await
            .expect_err("times out");
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(err.message, "no answer from p within 5s");
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn body_sets_model_messages_and_stream_options() {
        let client = client(0);
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
