//! Reading a streamed answer: body pieces go through the SSE parser, events through the
//! accumulator; text comes out as it arrives, everything else is folded into the result.

use std::collections::VecDeque;
use std::time::Duration;

use super::error::{ErrorKind, LlmError};
use super::response::{reported_error, Accumulator, ChatResult, Wire};
use super::sse::SseParser;

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
    pub(super) fn new(resp: reqwest::Response, place: String, idle: Duration) -> ChatStream {
        ChatStream {
            resp,
            parser: SseParser::new(),
            acc: Accumulator::default(),
            queue: VecDeque::new(),
            saw_done: false,
            eof: false,
            place,
            idle,
        }
    }

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
