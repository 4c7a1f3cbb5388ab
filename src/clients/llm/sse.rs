//! Server-sent events, as chat-completion servers send them: `data: <json>` lines, a blank
//! line ending each event, `data: [DONE]` ending the stream.
//!
//! The parser is fed whatever each TCP read delivered, so an event, a line or even a UTF-8
//! character may be cut anywhere; bytes wait in the buffer until their line is complete.
//! Fields other than `data` (`event:`, `id:`, `retry:`) and `:` comment lines are ignored:
//! no OpenAI-compatible server gives them meaning for chat completions.

/// Incremental SSE decoder: [`SseParser::push`] bytes in, complete event payloads out.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended by `\n`.
    pending: Vec<u8>,
    /// `data:` lines of the event being read; several are joined with `\n` (SSE rules).
    data: Vec<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Takes the next piece of the body and returns the data of every event it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&String::from_utf8_lossy(&line), &mut events);
        }
        events
    }

    /// The end of the body: an event whose blank line never came still counts, since some
    /// servers close the connection right after the last `data:` line.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(
                String::from_utf8_lossy(&rest).trim_end_matches('\r'),
                &mut events,
            );
        }
        self.line("", &mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(self.data.join("\n"));
                self.data.clear();
            }
            return;
        }
        if let Some(value) = line.strip_prefix("data:") {
            // One optional space after the colon belongs to the syntax, not the value.
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    const STREAM: &str = "data: {\"a\":\"Hé\"}\n\n: keep-alive comment\n\ndata: {\"b\":2}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";

    fn expected() -> Vec<String> {
        vec![
            "{\"a\":\"Hé\"}".to_string(),
            "{\"b\":2}".to_string(),
            "one\ntwo".to_string(),
            "[DONE]".to_string(),
        ]
    }

    #[test]
    fn whole_body_in_one_read() {
        let mut p = SseParser::new();
        let mut events = p.push(STREAM.as_bytes());
        events.extend(p.finish());
        assert_eq!(events, expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        // Two cuts anywhere, including inside "é" (two bytes) and between \r and \n.
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut p = SseParser::new();
                let mut events = p.push(&bytes[..i]);
                events.extend(p.push(&bytes[i..j]));
                events.extend(p.push(&bytes[j..]));
                events.extend(p.finish());
                assert_eq!(events, expected(), "cut at {i} and {j}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for b in STREAM.as_bytes() {
            events.extend(p.push(std::slice::from_ref(b)));
        }
        events.extend(p.finish());
        assert_eq!(events, expected());
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_kept() {
        let mut p = SseParser::new();
        let mut events = p.push(b"data: {\"x\":1}\n\ndata: [DONE]");
        events.extend(p.finish());
        assert_eq!(events, vec!["{\"x\":1}".to_string(), "[DONE]".to_string()]);
    }
}
