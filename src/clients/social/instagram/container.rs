//! Instagram's container flow: create a container per image (carousel children, then the
//! parent), and poll its `status_code` until Instagram has fetched and processed the media.

use std::time::Duration;

use super::{InstagramClient, P, POLLS};
use crate::clients::social::support::error;
use crate::clients::social::{ErrorKind, PostRequest, RateInfo, SocialError};

impl InstagramClient {
    /// The container requests: one per image for a carousel, then the parent (or the one).
    pub(super) fn container_forms(
        req: &PostRequest,
        child_ids: &[String],
    ) -> Vec<Vec<(&'static str, String)>> {
        let url = |i: usize| req.media[i].url.clone().unwrap_or_default();
        if req.media.len() == 1 {
            let mut form = vec![("image_url", url(0)), ("caption", Self::caption(req))];
            if let Some(alt) = &req.media[0].alt_text {
                form.push(("alt_text", alt.clone()));
            }
            return vec![form];
        }
        if child_ids.is_empty() {
            return (0..req.media.len())
                .map(|i| vec![("is_carousel_item", "true".into()), ("image_url", url(i))])
                .collect();
        }
        vec![vec![
            ("media_type", "CAROUSEL".into()),
            ("children", child_ids.join(",")),
            ("caption", Self::caption(req)),
        ]]
    }

    pub(super) async fn container(
        &self,
        form: &[(&str, String)],
        rates: &mut Vec<RateInfo>,
    ) -> Result<String, SocialError> {
        let path = format!("/{}/media", self.user_id);
        let v = self
            .call(
                "create container",
                |t| self.form_post(t, &path, form),
                rates,
            )
            .await?;
        v["id"].as_str().map(str::to_string).ok_or_else(|| {
            let msg = format!("the container request returned no id: {v}");
            error(
                P,
                ErrorKind::Unavailable,
                "create container",
                None,
                msg,
                None,
            )
        })
    }

    /// Poll until `FINISHED`; `ERROR`/`EXPIRED` are the media's fault, a timeout is not.
    pub(super) async fn wait_finished(
        &self,
        id: &str,
        rates: &mut Vec<RateInfo>,
    ) -> Result<(), SocialError> {
        let url = self.spec.api(&format!("/{id}"));
        let q = [("fields", "status_code,status")];
        let mut wait = Duration::from_millis(500);
        for _ in 0..POLLS {
            let v = self
                .call(
                    "container status",
                    |t| self.http.get(&url).bearer_auth(t).query(&q),
                    rates,
                )
                .await?;
            match v["status_code"].as_str().unwrap_or_default() {
                "FINISHED" | "PUBLISHED" => return Ok(()),
                "ERROR" | "EXPIRED" => {
                    let status = v["status"].as_str().unwrap_or("no details");
                    let msg = format!(
                        "Instagram could not process the media of container {id}: {status}"
                    );
                    let code = v["status_code"].as_str().map(str::to_string);
                    return Err(error(
                        P,
                        ErrorKind::Invalid,
                        "container status",
                        None,
                        msg,
                        code,
                    ));
                }
                _ => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(4));
        }
        let msg = format!(
            "container {id} was still IN_PROGRESS after about a minute; nothing was published"
        );
        Err(error(
            P,
            ErrorKind::Unavailable,
            "container status",
            None,
            msg,
            None,
        ))
    }
}
