//! Turning a stored post into the request a client gets: media read from disk, the reply
//! target resolved.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clients::social::{Media, PostRequest};

use super::outbox::Outbox;
use super::types::PostContent;

impl Outbox {
    /// The request a client gets for this content, with media read from disk.
    pub(crate) fn request(
        &self,
        content: &PostContent,
        key: &str,
        reply_to: Option<String>,
    ) -> Result<PostRequest, String> {
        let mut media = Vec::new();
        for m in &content.media {
            let path = self.config.resolve(&PathBuf::from(&m.path));
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read media {}: {e}", path.display()))?;
            media.push(Media {
                name: m.path.clone(),
                mime: mime_of(&m.path).to_string(),
                bytes: Arc::new(bytes),
                url: m.url.clone(),
                alt_text: m.alt.clone(),
            });
        }
        Ok(PostRequest {
            text: content.text.clone(),
            media,
            link: content.link.clone(),
            subreddit: content.subreddit.clone(),
            title: content.title.clone(),
            reply_to,
            extra: content.extra.clone(),
            idempotency_key: key.to_string(),
        })
    }
}

/// A media type from the file name; platforms check the bytes themselves.
pub fn mime_of(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}
