//! Published messages too large for one PostgreSQL notification (its payload must stay
//! under 8000 bytes) cross nodes in pieces. Each piece starts with a header line naming
//! the publishing bus, the message and the piece's place (`#ORIGIN SEQ I N`); the node
//! receiving them joins the pieces and hands the whole message to its subscribers. A plain
//! message is a JSON object and so never starts with `#`.
//!
//! Pieces of one message may arrive between other messages (they can go out in more than
//! one notification batch), so a receiver keeps the partial messages of the last few
//! senders; one whose pieces stop coming (a node died mid-way) is dropped when newer ones
//! push it out, as any published message a node never received is: pub/sub is not
//! durable.

use std::collections::VecDeque;

/// Room left for the header in each piece (an origin token, three numbers, spaces).
const HEADER_ROOM: usize = 80;
/// Partial messages a receiver keeps at once.
const PARTIALS: usize = 32;

/// `text` in pieces of at most `limit` bytes each, header included, cut at character
/// boundaries (a notification payload must be valid text).
pub(crate) fn split(origin: &str, seq: u64, text: &str, limit: usize) -> Vec<String> {
    let body = limit.saturating_sub(HEADER_ROOM).max(4);
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(body);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| format!("#{origin} {seq} {i} {n}\n{chunk}"))
        .collect()
}

/// Whether a notification is a piece rather than a whole message.
pub(crate) fn is_piece(text: &str) -> bool {
    text.starts_with('#')
}

/// The header of a piece: who sent it, which message, which piece of how many.
struct Header<'a> {
    origin: &'a str,
    seq: u64,
    index: usize,
    count: usize,
}

fn parse(text: &str) -> Option<(Header<'_>, &str)> {
    let (head, body) = text.strip_prefix('#')?.split_once('\n')?;
    let mut fields = head.split(' ');
    let header = Header {
        origin: fields.next()?,
        seq: fields.next()?.parse().ok()?,
        index: fields.next()?.parse().ok()?,
        count: fields.next()?.parse().ok()?,
    };
    (header.index < header.count && fields.next().is_none()).then_some((header, body))
}

struct Partial {
    origin: String,
    seq: u64,
    parts: Vec<Option<String>>,
    missing: usize,
}

/// The partial messages of one receiving bus.
#[derive(Default)]
pub(crate) struct Pieces {
    partial: VecDeque<Partial>,
}

impl Pieces {
    /// Takes a piece; returns the publisher's origin and the whole message once its last
    /// piece came. An unreadable piece is an error (another node runs a different build).
    pub(crate) fn add(&mut self, text: &str) -> Result<Option<(String, String)>, String> {
        let (h, body) = parse(text).ok_or("an unreadable piece of a published message")?;
        let at = match self
            .partial
            .iter()
            .position(|p| p.origin == h.origin && p.seq == h.seq)
        {
            Some(at) => at,
            None => {
                if self.partial.len() == PARTIALS {
                    self.partial.pop_front();
                }
                self.partial.push_back(Partial {
                    origin: h.origin.to_string(),
                    seq: h.seq,
                    parts: vec![None; h.count],
                    missing: h.count,
                });
                self.partial.len() - 1
            }
        };
        let partial = &mut self.partial[at];
        if partial.parts.len() != h.count {
            return Err("pieces of one published message disagree on their count".into());
        }
        if partial.parts[h.index].is_none() {
            partial.parts[h.index] = Some(body.to_string());
            partial.missing -= 1;
        }
        if partial.missing > 0 {
            return Ok(None);
        }
        let done = self.partial.remove(at).map(|p| {
            let text: String = p.parts.into_iter().flatten().collect();
            (p.origin, text)
        });
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_back_in_any_order_between_other_messages() {
        let text = "é".repeat(5000) + "end"; // 10,003 bytes, two-byte characters
        let pieces = split("abc", 7, &text, 1000);
        assert!(pieces.len() > 10);
        assert!(pieces.iter().all(|p| p.len() <= 1000 && is_piece(p)));
        let other = split("xyz", 1, "short but split", 90);
        let mut got = Pieces::default();
        let mut order: Vec<&String> = pieces.iter().rev().collect();
        order.insert(3, &other[0]);
        let mut whole = Vec::new();
        for piece in order.into_iter().chain(&other[1..]) {
            if let Some(done) = got.add(piece).expect("readable") {
                whole.push(done);
            }
        }
        assert_eq!(
            whole,
            [
                ("abc".to_string(), text),
                ("xyz".to_string(), "short but split".to_string())
            ]
        );
    }

    #[test]
    fn a_repeated_piece_counts_once_and_junk_is_an_error() {
        let pieces = split("o", 1, "abcdefgh", 84);
        assert_eq!(pieces.len(), 2);
        let mut got = Pieces::default();
        assert_eq!(got.add(&pieces[0]), Ok(None));
        assert_eq!(got.add(&pieces[0]), Ok(None));
        assert_eq!(
            got.add(&pieces[1]),
            Ok(Some(("o".to_string(), "abcdefgh".to_string())))
        );
        assert!(got.add("#o 1 5 2\nx").is_err());
        assert!(got.add("#o one 0 2\nx").is_err());
    }

    #[test]
    fn a_message_whose_pieces_stop_coming_is_pushed_out() {
        let mut got = Pieces::default();
        let stalled = split("dead", 0, "0123456789", 84);
        assert_eq!(got.add(&stalled[0]), Ok(None));
        for seq in 0..PARTIALS as u64 {
            let first = &split("live", seq, "0123456789", 84)[0];
            assert_eq!(got.add(first), Ok(None));
        }
        // The stalled message's partial was dropped: its last piece starts a new one.
        assert_eq!(got.add(&stalled[1]), Ok(None));
    }
}
