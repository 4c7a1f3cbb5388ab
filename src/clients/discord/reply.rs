//! What a command answers, and how an answer reaches Discord: directly (within the 3-second
//! deadline), or deferred and completed with follow-ups; text longer than one message is
//! split at line boundaries into messages of at most 2,000 characters, and text longer than
//! a few messages is attached as a file instead.

use serde_json::{json, Value};
use serenity::all::{CreateAttachment, Http, InteractionId};

/// Discord's limit on a message's `content`.
pub const MESSAGE_LIMIT: usize = 2000;
/// More chunks than this and the text goes as a file (a wall of messages helps no one).
pub const MAX_CHUNKS: usize = 4;
/// Interaction response flag: only the invoking user sees the message.
const EPHEMERAL: u64 = 64;

/// A command's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    /// A Discord embed object (title, description, color, fields...).
    pub embed: Option<Value>,
    pub ephemeral: bool,
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ..Reply::default()
        }
    }

    pub fn ephemeral(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ephemeral: true,
            embed: None,
        }
    }

    pub fn embed(embed: Value) -> Reply {
        Reply {
            embed: Some(embed),
            ..Reply::default()
        }
    }
}

/// One message to post: content, embeds, and perhaps a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub body: Value,
    pub file: Option<(String, Vec<u8>)>,
}

/// Splits `text` into chunks of at most `limit` characters, at line ends where possible
/// (a line longer than `limit` is cut at a character boundary).
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line;
        while line.chars().count() > limit {
            if !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
            }
            let cut = line
                .char_indices()
                .nth(limit)
                .map_or(line.len(), |(i, _)| i);
            chunks.push(line[..cut].to_string());
            line = &line[cut..];
        }
        if current.chars().count() + line.chars().count() > limit {
            chunks.push(std::mem::take(&mut current));
        }
        current.push_str(line);
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Splits like [`split`], and keeps code blocks readable: a chunk that ends inside a
/// ```` ``` ```` block closes it, and the next chunk opens it again.
pub fn split_fenced(text: &str, limit: usize) -> Vec<String> {
    const FENCE: &str = "```";
    if !text.contains(FENCE) {
        return split(text, limit);
    }
    // Room for the closing and reopening fences with their line breaks.
    let mut chunks = split(text, limit - 2 * (FENCE.len() + 1));
    // Whether the current chunk starts inside a block.
    let mut inside = false;
    for chunk in &mut chunks {
        let inside_at_end = inside ^ (chunk.matches(FENCE).count() % 2 == 1);
        if inside {
            chunk.insert_str(0, "```\n");
        }
        if inside_at_end {
            if !chunk.ends_with('\n') {
                chunk.push('\n');
            }
            chunk.push_str(FENCE);
        }
        inside = inside_at_end;
    }
    chunks
}

/// The messages a reply becomes.
pub fn parts(reply: &Reply) -> Vec<Part> {
    let flags = if reply.ephemeral { EPHEMERAL } else { 0 };
    let embeds: Vec<Value> = reply.embed.iter().cloned().collect();
    let chunks = split_fenced(&reply.text, MESSAGE_LIMIT);
    if chunks.len() > MAX_CHUNKS {
        let chars = reply.text.chars().count();
        return vec![Part {
            body: json!({
                "content": format!("The output is {chars} characters long; it is attached as output.txt."),
                "embeds": embeds, "flags": flags,
                "attachments": [{"id": 0, "filename": "output.txt"}],
            }),
            file: Some(("output.txt".into(), reply.text.clone().into_bytes())),
        }];
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| Part {
            // The embed goes with the last chunk so it reads after the text.
            body: json!({
                "content": chunk,
                "embeds": if i == last { embeds.clone() } else { Vec::new() },
                "flags": flags,
            }),
            file: None,
        })
        .collect()
}

fn attachments(part: &Part) -> Vec<CreateAttachment> {
    part.file
        .iter()
        .map(|(name, data)| CreateAttachment::bytes(data.clone(), name.clone()))
        .collect()
}

/// Answers one interaction: its id and token, and whether it was deferred already.
pub struct Responder {
    pub http: std::sync::Arc<Http>,
    pub id: u64,
    pub token: String,
    pub deferred: bool,
    /// Parts of the answer already posted, so a retry after a failure resumes after them
    /// instead of answering twice (Discord refuses a second callback: 40060).
    pub sent: usize,
}

impl Responder {
    /// Acknowledges now ("thinking..."); the answer follows with [`Responder::finish`].
    pub async fn defer(&mut self, ephemeral: bool) -> serenity::Result<()> {
        let flags = if ephemeral { EPHEMERAL } else { 0 };
        let body = json!({"type": 5, "data": {"flags": flags}});
        self.http
            .create_interaction_response(
                InteractionId::new(self.id),
                &self.token,
                &body,
                Vec::new(),
            )
            .await?;
        self.deferred = true;
        Ok(())
    }

    /// Sends the reply: the first part as the interaction's response (or, after a deferral,
    /// as the first follow-up, which replaces "thinking..."), the rest as follow-ups.
    pub async fn finish(&mut self, reply: &Reply) -> serenity::Result<()> {
        for (i, part) in parts(reply).iter().enumerate().skip(self.sent) {
            if i == 0 && !self.deferred {
                let body = json!({"type": 4, "data": part.body});
                self.http
                    .create_interaction_response(
                        InteractionId::new(self.id),
                        &self.token,
                        &body,
                        attachments(part),
                    )
                    .await?;
            } else {
                self.http
                    .create_followup_message(&self.token, &part.body, attachments(part))
                    .await?;
            }
            self.sent = i + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split("hello", 2000), vec!["hello".to_string()]);
        assert_eq!(parts(&Reply::text("hi")).len(), 1);
    }

    #[test]
    fn long_text_splits_at_line_ends_within_the_limit() {
        let line = format!("{}\n", "x".repeat(99));
        let text = line.repeat(45); // 4,500 characters in lines of 100
        let chunks = split(&text, 2000);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.chars().count() <= 2000));
        assert!(chunks[..2].iter().all(|c| c.ends_with('\n')));
        assert_eq!(chunks.concat(), text);
    }

    #[test]
    fn a_code_block_split_over_messages_is_closed_and_reopened() {
        let body = format!("{}\n", "row of a table").repeat(300);
        let text = format!("```\n{body}```");
        let chunks = split_fenced(&text, 2000);
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.chars().count() <= 2000, "{}", c.len());
            assert!(c.starts_with("```\n") && c.ends_with("```"), "{c}");
            assert_eq!(c.matches("```").count(), 2);
        }
        let rows: usize = chunks
            .iter()
            .map(|c| c.matches("row of a table").count())
            .sum();
        assert_eq!(rows, 300);
    }

    #[test]
    fn an_overlong_line_is_cut_at_a_character_boundary() {
        let text = "é".repeat(2500);
        let chunks = split(&text, 2000);
        assert_eq!(chunks[0].chars().count(), 2000);
        assert_eq!(chunks.concat(), text);
    }

    #[test]
    fn very_long_output_is_attached_as_a_file() {
        let text = "y".repeat(MESSAGE_LIMIT * MAX_CHUNKS + 1);
        let parts = parts(&Reply::text(text.clone()));
        assert_eq!(parts.len(), 1);
        let (name, data) = parts[0].file.clone().unwrap();
        assert_eq!(name, "output.txt");
        assert_eq!(data, text.into_bytes());
    }
}
