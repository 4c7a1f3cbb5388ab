//! What can go wrong talking to a chat-completions server, sorted into the kinds a script
//! branches on. Every message names the server URL and the model, and quotes the server's
//! own `error.message` when the body has one, because "404" alone does not say that the
//! model was never pulled.

use std::time::Duration;

/// The kinds of failure, as scripts see them in `err.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server could not be reached, or the connection broke.
    Connect,
    /// No answer (or no next piece of a stream) within the timeout.
    Timeout,
    /// 401 or 403, or the configured key's environment variable is missing.
    Auth,
    /// 404: usually a model the server does not have.
    NotFound,
    /// 429.
    RateLimited,
    /// 503: the server is up but not ready (llama.cpp while it loads the model).
    Unavailable,
    /// 400 and other 4xx: the server refused the request as written.
    BadRequest,
    /// 500, 502, 504 and other 5xx, or an error event inside a stream.
    Server,
    /// An answer that is not the protocol: bad JSON, a stream cut before its end.
    Protocol,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// The kind an HTTP error status stands for.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            503 => ErrorKind::Unavailable,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::BadRequest,
        }
    }
}

/// One failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct LlmError {
    pub kind: ErrorKind,
    /// Readable text naming the server and model.
    pub message: String,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// Whether a connect failure happened before anything was sent (safe to retry).
    pub(super) before_send: bool,
}

impl LlmError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> LlmError {
        LlmError {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            before_send: false,
        }
    }

    /// Whether another attempt may succeed: the server asked us to come back (429, 503) or
    /// could not be reached at all (nothing was sent, so nothing is generated twice).
    pub fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable)
            || (self.kind == ErrorKind::Connect && self.before_send)
    }

    /// An HTTP error status with its body, which carries the server's explanation in
    /// `{"error": {"message": ...}}` (OpenAI, Ollama, llama.cpp) or `{"error": "..."}`
    /// (Ollama's native API, some proxies).
    pub fn from_response(
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        place: &str,
    ) -> LlmError {
        let kind = ErrorKind::from_status(status);
        let said = server_message(body);
        let mut message = match said {
            Some(said) => format!("{said} ({status} from {place})"),
            None => format!("{place} answered {status}"),
        };
        if let Some(after) = retry_after {
            message.push_str(&format!(
                "; retry after {}",
                crate::units::format_duration(after)
            ));
        }
        LlmError {
            kind,
            message,
            status: Some(status),
            retry_after,
            before_send: false,
        }
    }

    /// A transport failure from reqwest, with its cause chain: reqwest's own text alone is
    /// "error sending request", which names nothing.
    pub fn transport(err: &reqwest::Error, place: &str) -> LlmError {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        if err.is_timeout() {
            return LlmError::new(ErrorKind::Timeout, format!("{place}: {text}"));
        }
        let mut e = LlmError::new(ErrorKind::Connect, format!("cannot reach {place}: {text}"));
        e.before_send = err.is_connect();
        e
    }
}

/// `error.message`, or `error` when it is a string, or a short body that is plain text.
fn server_message(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => {
            let error = json.get("error")?;
            let text = match error {
                serde_json::Value::String(s) => s.clone(),
                other => other.get("message")?.as_str()?.to_string(),
            };
            (!text.trim().is_empty()).then(|| text.trim().to_string())
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            (!text.is_empty() && text.len() <= 300 && !text.starts_with('<')).then_some(text)
        }
    }
}

/// `Retry-After` as seconds (the form every chat server uses; an HTTP date is not
/// worth a date parser here and is treated as absent).
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    let secs: f64 = text.parse().ok()?;
    crate::units::seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: &str = "http://h/v1/chat/completions for model 'm'";

    #[test]
    fn statuses_map_to_kinds_and_keep_the_server_message() {
        let body = br#"{"error":{"message":"model \"x\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}"#;
        let e = LlmError::from_response(404, body, None, PLACE);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "not_found: model \"x\" not found, try pulling it first (404 from http://h/v1/chat/completions for model 'm')"
        );
        let body =
            br#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#;
        assert_eq!(
            LlmError::from_response(401, body, None, PLACE).kind,
            ErrorKind::Auth
        );
        let e = LlmError::from_response(
            503,
            br#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
            None,
            PLACE,
        );
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.retryable());
        assert_eq!(
            LlmError::from_response(400, b"{}", None, PLACE).message,
            "http://h/v1/chat/completions for model 'm' answered 400"
        );
        assert_eq!(
            LlmError::from_response(502, b"<html>bad gateway</html>", None, PLACE).kind,
            ErrorKind::Server
        );
        assert!(!LlmError::from_response(500, b"", None, PLACE).retryable());
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let after = parse_retry_after(Some(&reqwest::header::HeaderValue::from_static("2")));
        assert_eq!(after, Some(Duration::from_secs(2)));
        let e = LlmError::from_response(429, br#"{"error":"slow down"}"#, after, PLACE);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert!(
            e.message.starts_with("slow down (429 from"),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("; retry after 2s"), "{}", e.message);
        let date = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&date)), None);
    }
}
