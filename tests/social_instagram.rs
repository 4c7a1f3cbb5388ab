//! The Instagram client against the fake Graph API: container → poll → publish.
//! Tests run on tokio's paused clock, so the client's waits between polls take no time.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{spec, MemTokens};
use fakes::social::instagram::{FakeInstagram, IG_TOKEN, IG_USER};

fn client_with(
    fake: &FakeInstagram,
    tokens: Arc<MemTokens>,
    extra: &[(&str, &str)],
    refresh: bool,
) -> Arc<dyn SocialClient> {
    let mut creds = vec![("user_id", IG_USER), ("access_token", IG_TOKEN)];
    creds.extend_from_slice(extra);
    let mut s = spec(Platform::Instagram, &fake.base(), &creds);
    if refresh {
        s.auth_url = Some(fake.url.clone());
    }
    connect(s, reqwest::Client::new(), tokens).unwrap()
}

fn client(fake: &FakeInstagram) -> Arc<dyn SocialClient> {
    client_with(fake, MemTokens::new(), &[], false)
}

fn photo(caption: &str, n: usize) -> PostRequest {
    let media = (0..n)
        .map(|i| Media {
            name: format!("p{i}.jpg"),
            mime: "image/jpeg".into(),
            bytes: Arc::new(Vec::new()),
            url: Some(format!("https://cdn.example/p{i}.jpg")),
            alt_text: None,
        })
        .collect();
    PostRequest {
        text: caption.into(),
        media,
        idempotency_key: "k".into(),
        ..Default::default()
    }
}

fn paths(fake: &FakeInstagram) -> Vec<String> {
    fake.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_photo_is_published_after_the_container_finishes() {
    let fake = FakeInstagram::start().await;
    let ig = client(&fake);
    let reply = ig.post(&photo("sunrise #dreamos", 1)).await.unwrap();
    assert_eq!(reply.value.id, fake.media()[0].id);
    let container = fake.with(|s| s.containers.keys().next().cloned().unwrap());
    let status = format!("GET /v24.0/{container}");
    assert_eq!(
        paths(&fake),
        [
            format!("POST /v24.0/{IG_USER}/media"),
            status.clone(),
            status.clone(),
            status,
            format!("POST /v24.0/{IG_USER}/media_publish")
        ]
    );
    let create = fake.requests()[0].form();
    assert_eq!(
        (create["image_url"].as_str(), create["caption"].as_str()),
        ("https://cdn.example/p0.jpg", "sunrise #dreamos")
    );
    assert_eq!(fake.requests()[4].form()["creation_id"], container);
}

#[tokio::test(start_paused = true)]
async fn several_images_make_a_carousel() {
    let fake = FakeInstagram::start().await;
    fake.with(|s| s.in_progress_polls = 0);
    let ig = client(&fake);
    ig.post(&photo("three", 3)).await.unwrap();
    let creates: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/media") && r.method == "POST")
        .collect();
    assert_eq!(creates.len(), 4);
    assert!(creates[..3]
        .iter()
        .all(|r| r.form()["is_carousel_item"] == "true"));
    let parent = creates[3].form();
    assert_eq!(parent["media_type"], "CAROUSEL");
    assert_eq!(parent["children"].split(',').count(), 3);
    assert_eq!(fake.media().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_container_publishes_nothing() {
    let fake = FakeInstagram::start().await;
    fake.with(|s| s.container_fails = Some("ERROR".into()));
    let ig = client(&fake);
    let err = ig.post(&photo("bad image", 1)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Invalid, Some("ERROR"))
    );
    assert!(err.message.contains("could not fetch the image"), "{err}");
    assert!(fake.media().is_empty());
}

#[tokio::test]
async fn text_only_or_unhosted_images_are_refused_before_sending() {
    let fake = FakeInstagram::start().await;
    let ig = client(&fake);
    let err = ig.post(&photo("no image", 0)).await.unwrap_err();
    assert!(err.message.contains("needs an image"), "{err}");
    let mut local = photo("local", 1);
    local.media[0].url = None;
    let err = ig.post(&local).await.unwrap_err();
    assert!(
        err.message.contains("public URL") && err.message.contains("p0.jpg"),
        "{err}"
    );
    let tags: String = (0..31).map(|i| format!("#t{i} ")).collect();
    assert!(ig
        .check_text(&photo(&tags, 1))
        .unwrap_err()
        .message
        .contains("31 hashtags"));
    assert!(fake.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_publishing_quota_is_a_rate_limit_until_access_returns() {
    let fake = FakeInstagram::start().await;
    fake.with(|s| {
        s.quota_total = 0;
        s.in_progress_polls = 0;
    });
    let ig = client(&fake);
    let before = chrono::Utc::now().timestamp_millis();
    let err = ig.post(&photo("over quota", 1)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::RateLimited, Some("9/2207042"))
    );
    assert!(err.retry_at.unwrap() >= before + 3_600_000, "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn metrics_come_from_insights_and_delete_is_refused() {
    let fake = FakeInstagram::start().await;
    let ig = client(&fake);
    let id = ig.post(&photo("measure", 1)).await.unwrap().value.id;
    fake.with(|s| s.media[0].likes = 4);
    let m = ig.metrics(&id).await.unwrap().value;
    assert_eq!((m["likes"], m["reach"], m["views"]), (4, 40, 80));
    let err = ig.delete(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("cannot delete"), "{err}");
    assert_eq!(fake.media().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_near_expiry_is_refreshed_first_and_stored() {
    let fake = FakeInstagram::start().await;
    let tokens = MemTokens::new();
    let soon = (chrono::Utc::now().timestamp() + 86_400).to_string();
    let ig = client_with(
        &fake,
        tokens.clone(),
        &[("expires_at", soon.as_str())],
        true,
    );
    assert_eq!(
        ig.expires_at().await,
        None,
        "a refreshable token needs no warning"
    );
    ig.post(&photo("fresh token", 1)).await.unwrap();
    let first = &fake.requests()[0];
    assert_eq!(first.path, "/refresh_access_token");
    assert_eq!(first.query["access_token"], IG_TOKEN);
    let saved = tokens.saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        fake.requests()[1].token(),
        Some(saved[0].1.access_token.as_str())
    );
    assert!(
        saved[0].1.expires_at.unwrap() > chrono::Utc::now().timestamp_millis() + 50 * 86_400_000
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_publish_answer_is_found_by_caption() {
    let fake = FakeInstagram::start().await;
    let ig = client(&fake);
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    fake.with(|s| s.drop_next_post = true);
    let req = photo("lost caption", 1);
    assert_eq!(ig.post(&req).await.unwrap_err().kind, ErrorKind::Network);
    let found = ig.find(&req, since).await.unwrap().unwrap();
    assert_eq!(found.id, fake.media()[0].id);
    assert!(ig.find(&photo("never", 1), since).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_container_that_never_finishes_is_given_up_without_publishing() {
    let fake = FakeInstagram::start().await;
    fake.with(|s| s.in_progress_polls = 1000);
    let ig = client(&fake);
    let err = ig.post(&photo("slow", 1)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        err.message.contains("IN_PROGRESS") && err.message.contains("nothing was published"),
        "{err}"
    );
    assert!(fake.media().is_empty());
    assert!(fake
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/media_publish")));
}
