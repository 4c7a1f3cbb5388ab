//! The LinkedIn client against the fake Posts API.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{spec, MemTokens};
use fakes::social::linkedin::{FakeLinkedin, AUTHOR, REFRESH, TOKEN};

fn client_with(
    fake: &FakeLinkedin,
    tokens: Arc<MemTokens>,
    extra: &[(&str, &str)],
) -> Arc<dyn SocialClient> {
    let mut creds = vec![("access_token", TOKEN), ("author_urn", AUTHOR)];
    creds.extend_from_slice(extra);
    connect(
        spec(Platform::Linkedin, &fake.url, &creds),
        reqwest::Client::new(),
        tokens,
    )
    .unwrap()
}

fn client(fake: &FakeLinkedin) -> Arc<dyn SocialClient> {
    client_with(fake, MemTokens::new(), &[])
}

fn text(t: &str) -> PostRequest {
    PostRequest {
        text: t.into(),
        idempotency_key: "k".into(),
        ..Default::default()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn the_id_comes_from_x_restli_id_and_commentary_is_little_text() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    let reply = li.post(&text("Devlog #12 (alpha)")).await.unwrap();
    let posts = fake.posts();
    assert_eq!(reply.value.id, posts[0].urn);
    assert!(reply.value.id.starts_with("urn:li:share:"));
    assert_eq!(posts[0].body["commentary"], "Devlog \\#12 \\(alpha\\)");
    assert_eq!(posts[0].body["author"], AUTHOR);
    let r = &fake.requests()[0];
    assert_eq!(r.header("linkedin-version"), Some("202601"));
    assert_eq!(r.header("x-restli-protocol-version"), Some("2.0.0"));
    assert!(reply.rates.is_empty(), "LinkedIn reports no budgets");
}

#[tokio::test]
async fn an_image_is_initialised_uploaded_and_attached() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    let mut req = text("with image");
    req.media.push(Media {
        name: "a.png".into(),
        mime: "image/png".into(),
        bytes: Arc::new(b"IMG".to_vec()),
        url: None,
        alt_text: Some("a chart".into()),
    });
    li.post(&req).await.unwrap();
    let image = fake.with(|s| {
        s.images
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap()
    });
    assert_eq!(image.1.as_deref(), Some(&b"IMG"[..]));
    let body = &fake.posts()[0].body;
    assert_eq!(body["content"]["media"]["id"], image.0.as_str());
    assert_eq!(body["content"]["media"]["altText"], "a chart");
    let methods: Vec<String> = fake.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "PUT", "POST"]);
}

#[tokio::test]
async fn delete_and_metrics_use_the_encoded_urn() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    let id = li.post(&text("measure me")).await.unwrap().value.id;
    fake.with(|s| s.posts[0].likes = 9);
    let m = li.metrics(&id).await.unwrap().value;
    assert_eq!((m["likes"], m["comments"]), (9, 3));
    li.delete(&id).await.unwrap();
    assert!(fake.posts().is_empty());
    let del = fake.requests().pop().unwrap();
    assert!(del.path.contains("urn%3Ali%3Ashare%3A"), "{}", del.path);
    assert_eq!(del.header("x-restli-method"), Some("DELETE"));
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_when_the_app_may_and_the_expiry_is_the_refresh_tokens() {
    let fake = FakeLinkedin::start().await;
    let tokens = MemTokens::new();
    let creds = [
        ("refresh_token", REFRESH),
        ("client_id", "cid"),
        ("client_secret", "li-secret"),
    ];
    let li = client_with(&fake, tokens.clone(), &creds);
    fake.with(|s| s.tokens.clear());
    li.post(&text("after 60 days")).await.unwrap();
    let saved = tokens.saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        fake.requests().last().unwrap().token(),
        Some(saved[0].1.access_token.as_str())
    );
    let until = li.expires_at().await.unwrap();
    assert_eq!(Some(until), saved[0].1.refresh_expires_at);
    assert!(until > now() + 300 * 86_400_000);
}

#[tokio::test]
async fn without_refresh_a_401_is_an_auth_error_with_linkedins_words() {
    let fake = FakeLinkedin::start().await;
    fake.with(|s| s.tokens.clear());
    let li = client(&fake);
    let err = li.post(&text("x")).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Auth, Some("INVALID_ACCESS_TOKEN"))
    );
    assert!(err.message.contains("Invalid access token"), "{err}");
}

#[tokio::test]
async fn a_bare_429_retries_at_midnight_utc() {
    let fake = FakeLinkedin::start().await;
    fake.with(|s| s.daily_posts = 0);
    let li = client(&fake);
    let err = li.post(&text("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    let at = err.retry_at.unwrap();
    assert_eq!(at % 86_400_000, 0, "midnight UTC");
    assert!(at > now() && at <= now() + 86_400_000);
}

#[tokio::test]
async fn duplicates_and_sunset_versions() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    li.post(&text("twice")).await.unwrap();
    let err = li.post(&text("twice")).await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Duplicate, Some(422)));
    let old = client_with(&fake, MemTokens::new(), &[("linkedin_version", "202301")]);
    let err = old.post(&text("old")).await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Invalid, Some(426)));
    assert!(err.message.contains("202301 is not active"), "{err}");
}

#[tokio::test]
async fn a_lost_answer_is_found_by_commentary() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    let since = now() - 60_000;
    fake.with(|s| s.drop_next_post = true);
    let req = text("lost [answer] #1");
    assert_eq!(li.post(&req).await.unwrap_err().kind, ErrorKind::Network);
    assert_eq!(
        li.find(&req, since).await.unwrap().unwrap().id,
        fake.posts()[0].urn
    );
    assert!(li.find(&text("never"), since).await.unwrap().is_none());
    let p = li.preview(&req);
    assert!(
        p[0].body.contains("lost \\\\[answer\\\\] \\\\#1"),
        "{}",
        p[0].body
    );
}

#[tokio::test]
async fn several_images_make_a_multi_image_post() {
    let fake = FakeLinkedin::start().await;
    let li = client(&fake);
    let mut req = text("gallery");
    for name in ["a.png", "b.png"] {
        req.media.push(Media {
            name: name.into(),
            mime: "image/png".into(),
            bytes: Arc::new(name.as_bytes().to_vec()),
            url: None,
            alt_text: None,
        });
    }
    assert_eq!(li.preview(&req).len(), 5);
    li.post(&req).await.unwrap();
    let images = fake.posts()[0].body["content"]["multiImage"]["images"].clone();
    assert_eq!(images.as_array().map(Vec::len), Some(2));
    let uploaded = fake.with(|s| s.images.values().filter(|v| v.is_some()).count());
    assert_eq!(uploaded, 2);
}
