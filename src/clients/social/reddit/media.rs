//! Reddit's image upload: a media asset lease, then an S3-style multipart POST to the
//! lease's `action` with its `fields` (Reddit's own apps do the same; it is undocumented).

use super::{RedditClient, P};
use crate::clients::social::support::{error, kind_for_status, send, unexpected, Multipart, Raw};
use crate::clients::social::{Media, RateInfo, SocialError};

impl RedditClient {
    /// Media asset lease → S3-style multipart upload; returns the URL to submit.
    pub(super) async fn upload(
        &self,
        media: &Media,
        rates: &mut Vec<RateInfo>,
    ) -> Result<String, SocialError> {
        let op = "upload image";
        let form = [
            ("filepath", media.name.clone()),
            ("mimetype", media.mime.clone()),
        ];
        let lease = self
            .call(
                op,
                |t| self.form_request(t, "/api/media/asset.json", &form),
                rates,
            )
            .await?;
        let action = lease["args"]["action"].as_str().unwrap_or_default();
        let fields = lease["args"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let key = fields
            .iter()
            .find(|f| f["name"] == "key")
            .and_then(|f| f["value"].as_str());
        let (Some(key), false) = (key, action.is_empty()) else {
            let raw = Raw {
                status: 200,
                headers: Default::default(),
                body: lease.to_string(),
            };
            return Err(unexpected(P, op, &raw, "args.action and a `key` field"));
        };
        let action = self.absolute(action);
        let mut multipart = Multipart::default();
        for f in &fields {
            multipart = multipart.text(
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_str().unwrap_or_default(),
            );
        }
        multipart = multipart.file("file", &media.name, &media.mime, media.bytes.clone());
        let raw = send(P, op, multipart.attach(self.http.post(&action), false)).await?;
        if !raw.ok() {
            let msg = format!(
                "the upload to {action} answered: {}",
                raw.body.chars().take(300).collect::<String>()
            );
            return Err(error(
                P,
                kind_for_status(raw.status),
                op,
                Some(raw.status),
                msg,
                None,
            ));
        }
        Ok(format!("{action}/{key}"))
    }

    /// Reddit answers `//host/path`; use the scheme of the API base (https for real Reddit).
    fn absolute(&self, action: &str) -> String {
        match action.strip_prefix("//") {
            Some(rest) => {
                let scheme = self.spec.base_url.split("://").next().unwrap_or("https");
                format!("{scheme}://{rest}")
            }
            None => action.to_string(),
        }
    }
}
