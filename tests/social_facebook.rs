//! The Facebook Pages client against the fake Graph API.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{spec, MemTokens};
use fakes::social::facebook::{FakeFacebook, PAGE_ID, PAGE_TOKEN};

fn client_with(fake: &FakeFacebook, extra: &[(&str, &str)]) -> Arc<dyn SocialClient> {
    let mut creds = vec![("page_id", PAGE_ID), ("access_token", PAGE_TOKEN)];
    creds.extend_from_slice(extra);
    connect(
        spec(Platform::Facebook, &fake.base(), &creds),
        reqwest::Client::new(),
        MemTokens::new(),
    )
    .unwrap()
}

fn client(fake: &FakeFacebook) -> Arc<dyn SocialClient> {
    client_with(fake, &[])
}

fn text(t: &str) -> PostRequest {
    PostRequest {
        text: t.into(),
        idempotency_key: "k".into(),
        ..Default::default()
    }
}

fn image(url: Option<&str>) -> Media {
    Media {
        name: "photo.jpg".into(),
        mime: "image/jpeg".into(),
        bytes: Arc::new(b"JPEGDATA".to_vec()),
        url: url.map(str::to_string),
        alt_text: None,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn a_text_post_with_a_link_goes_to_the_feed_and_reports_usage() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    let mut req = text("New release");
    req.link = Some("https://example.com/r".into());
    let reply = fb.post(&req).await.unwrap();
    let posts = fake.posts();
    assert_eq!(reply.value.id, posts[0].id);
    assert!(reply.value.id.starts_with(&format!("{PAGE_ID}_")));
    assert_eq!(posts[0].link.as_deref(), Some("https://example.com/r"));
    let r = &fake.requests()[0];
    assert_eq!(r.path, format!("/v24.0/{PAGE_ID}/feed"));
    assert_eq!(r.token(), Some(PAGE_TOKEN));
    let app = reply
        .rates
        .iter()
        .find(|r| r.bucket == "app-usage")
        .unwrap();
    assert_eq!(app.usage_percent, Some(12.0));
    assert!(reply.rates.iter().any(|r| r.bucket == "buc-pages"));
}

#[tokio::test]
async fn photos_are_uploaded_or_fetched_by_url_and_the_post_id_returned() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    let mut up = text("uploaded");
    up.media.push(image(None));
    let a = fb.post(&up).await.unwrap().value;
    let mut by_url = text("by url");
    by_url.media.push(image(Some("https://cdn.example/p.jpg")));
    let b = fb.post(&by_url).await.unwrap().value;
    let posts = fake.posts();
    assert_eq!(
        (a.id.as_str(), b.id.as_str()),
        (posts[0].id.as_str(), posts[1].id.as_str())
    );
    assert_eq!(posts[0].photo.as_deref(), Some(&b"JPEGDATA"[..]));
    assert_eq!(
        posts[1].photo_url.as_deref(),
        Some("https://cdn.example/p.jpg")
    );
    assert_eq!(fake.requests()[0].path, format!("/v24.0/{PAGE_ID}/photos"));
}

#[tokio::test]
async fn delete_and_metrics() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    let id = fb.post(&text("count")).await.unwrap().value.id;
    fake.with(|s| s.posts[0].reactions = 5);
    let m = fb.metrics(&id).await.unwrap().value;
    assert_eq!((m["reactions"], m["comments"], m["shares"]), (5, 2, 0));
    fb.delete(&id).await.unwrap();
    assert!(fake.posts().is_empty());
    let err = fb.delete(&id).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Invalid, Some("100/33"))
    );
}

#[tokio::test]
async fn an_expired_page_token_is_an_auth_error_with_meta_words() {
    let fake = FakeFacebook::start().await;
    fake.with(|s| s.tokens.clear());
    let fb = client(&fake);
    let err = fb.post(&text("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert_eq!(err.code.as_deref(), Some("190/463"));
    assert!(err.message.contains("Session has expired"), "{err}");
    assert_eq!(
        fake.requests().len(),
        1,
        "a page token is not refreshed, so no retry"
    );
}

#[tokio::test]
async fn page_throttling_retries_when_buc_says_access_returns() {
    let fake = FakeFacebook::start().await;
    fake.with(|s| s.throttled_minutes = Some(17));
    let fb = client(&fake);
    let before = now();
    let err = fb.post(&text("x")).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::RateLimited, Some("32"))
    );
    let at = err.retry_at.unwrap();
    assert!(
        at >= before + 17 * 60_000 && at <= now() + 17 * 60_000,
        "{at}"
    );
}

#[tokio::test]
async fn a_duplicate_is_506() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    fb.post(&text("same")).await.unwrap();
    let err = fb.post(&text("same")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate);
    assert!(err.message.contains("Duplicate status message"), "{err}");
}

#[tokio::test]
async fn a_lost_answer_is_found_among_the_page_posts() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    let since = now() - 60_000;
    fake.with(|s| s.drop_next_post = true);
    let req = text("did it post?");
    assert_eq!(fb.post(&req).await.unwrap_err().kind, ErrorKind::Network);
    let found = fb.find(&req, since).await.unwrap().unwrap();
    assert_eq!(found.id, fake.posts()[0].id);
    assert!(fb.find(&text("other"), since).await.unwrap().is_none());
}

#[tokio::test]
async fn expiry_comes_from_debug_token_and_preview_hides_the_token() {
    let fake = FakeFacebook::start().await;
    let fb = client_with(&fake, &[("app_id", "777"), ("app_secret", "shh")]);
    assert_eq!(fb.expires_at().await, None, "page tokens never expire");
    fake.with(|s| s.token_expires_at = 1_900_000_000);
    assert_eq!(fb.expires_at().await, Some(1_900_000_000_000));
    let dbg = fake.requests().pop().unwrap();
    assert_eq!(dbg.query["access_token"], "777|shh");
    let mut req = text("preview");
    req.media.push(image(None));
    let p = fb.preview(&req);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].body.contains("<8 bytes of image/jpeg>") && p[0].body.contains("preview"),
        "{}",
        p[0].body
    );
    assert!(!format!("{p:?}").contains(PAGE_TOKEN));
}

#[tokio::test]
async fn usage_climbs_to_100_percent_then_the_page_is_throttled() {
    let fake = FakeFacebook::start().await;
    fake.with(|s| s.page_call_limit = Some(2));
    let fb = client(&fake);
    let first = fb.post(&text("one")).await.unwrap();
    let page = first
        .rates
        .iter()
        .find(|r| r.bucket == "page-usage")
        .unwrap();
    assert_eq!(page.usage_percent, Some(50.0));
    let second = fb.post(&text("two")).await.unwrap();
    let buc = second
        .rates
        .iter()
        .find(|r| r.bucket == "buc-pages")
        .unwrap();
    assert_eq!(buc.usage_percent, Some(100.0));
    let err = fb.post(&text("three")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.retry_at.unwrap() >= now() + 59 * 60_000);
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn several_photos_are_uploaded_unpublished_and_attached_to_one_post() {
    let fake = FakeFacebook::start().await;
    let fb = client(&fake);
    let mut req = text("album");
    req.media = vec![image(None), image(Some("https://cdn.example/2.jpg"))];
    let preview = fb.preview(&req);
    assert_eq!(preview.len(), 3);
    assert!(
        preview[2].body.contains("media_fbid"),
        "{}",
        preview[2].body
    );
    let id = fb.post(&req).await.unwrap().value.id;
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "the photos alone are not posts");
    assert_eq!(
        (posts[0].id.as_str(), posts[0].message.as_str()),
        (id.as_str(), "album")
    );
    assert_eq!(posts[0].attached.len(), 2);
    let reqs = fake.requests();
    assert!(reqs[..2].iter().all(|r| r.params()["published"] == "false"));
    assert_eq!(reqs[2].path, format!("/v24.0/{PAGE_ID}/feed"));
}
