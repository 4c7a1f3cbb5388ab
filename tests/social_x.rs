//! The X client against the fake X API: posting with and without images, delete, metrics,
//! refresh with rotating refresh tokens, 429s and duplicates, crash reconciliation.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{spec, MemTokens};
use fakes::social::x::FakeX;

fn client(fake: &FakeX, tokens: Arc<MemTokens>) -> Arc<dyn SocialClient> {
    let creds = [
        ("access_token", "x-access-0"),
        ("refresh_token", "x-refresh-0"),
        ("client_id", "cid"),
    ];
    connect(
        spec(Platform::X, &fake.url, &creds),
        reqwest::Client::new(),
        tokens,
    )
    .unwrap()
}

fn text(t: &str) -> PostRequest {
    PostRequest {
        text: t.to_string(),
        idempotency_key: "k1".into(),
        ..Default::default()
    }
}

fn png(name: &str) -> Media {
    Media {
        name: name.into(),
        mime: "image/png".into(),
        bytes: Arc::new(b"\x89PNG\r\n\x1a\nfake image bytes".to_vec()),
        url: None,
        alt_text: None,
    }
}

#[tokio::test]
async fn a_text_post_is_created_and_its_budgets_reported() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let reply = x.post(&text("hello from dreamos")).await.unwrap();
    let tweets = fake.tweets();
    assert_eq!(tweets.len(), 1);
    assert_eq!(reply.value.id, tweets[0].id);
    assert_eq!(tweets[0].text, "hello from dreamos");
    let req = &fake.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer x-access-0"));
    let window = reply
        .rates
        .iter()
        .find(|r| r.bucket == "POST /2/tweets")
        .unwrap();
    assert_eq!((window.limit, window.remaining), (Some(200.0), Some(199.0)));
    let daily = reply.rates.iter().find(|r| r.bucket == "24h-user").unwrap();
    assert_eq!(daily.remaining, Some(99.0));
}

#[tokio::test]
async fn an_image_is_uploaded_first_and_attached_by_media_id() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let mut req = text("chart of the day");
    req.media.push(png("chart.png"));
    req.media[0].alt_text = Some("a rising line".into());
    x.post(&req).await.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs[0].path, "/2/media/upload");
    let parts = reqs[0].multipart();
    let media = parts.iter().find(|p| p.name == "media").unwrap();
    assert_eq!(media.data, *req.media[0].bytes);
    let uploaded: Vec<String> = fake.with(|s| s.media.iter().cloned().collect());
    assert_eq!(reqs[1].path, "/2/media/metadata");
    let alt = fake.with(|s| s.alt_texts.get(&uploaded[0]).cloned());
    assert_eq!(alt.as_deref(), Some("a rising line"));
    assert_eq!(reqs[2].json()["media"]["media_ids"][0], uploaded[0]);
    assert_eq!(fake.tweets()[0].media_ids, uploaded);
}

#[tokio::test]
async fn delete_and_metrics_use_the_post_id() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let id = x.post(&text("count me")).await.unwrap().value.id;
    fake.with(|s| s.tweets[0].likes = 7);
    let m = x.metrics(&id).await.unwrap().value;
    assert_eq!(m.get("like_count"), Some(&7));
    assert_eq!(m.get("impression_count"), Some(&70));
    x.delete(&id).await.unwrap();
    assert!(fake.tweets().is_empty());
    let err = x.delete(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let err = x.metrics(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.message.contains("Could not find tweet"), "{err}");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_rotated_stored_and_the_post_retried_once() {
    let fake = FakeX::start().await;
    let tokens = MemTokens::new();
    let x = client(&fake, tokens.clone());
    fake.expire_access_tokens();
    let reply = x.post(&text("after two hours")).await.unwrap();
    assert_eq!(fake.tweets()[0].id, reply.value.id);
    let saved = tokens.saved();
    assert_eq!(saved.len(), 1);
    let first = saved[0].1.clone();
    assert_ne!(first.refresh_token.as_deref(), Some("x-refresh-0"));
    assert!(first.expires_at.is_some());
    let reqs = fake.requests();
    let token_req = reqs.iter().find(|r| r.path == "/2/oauth2/token").unwrap();
    assert_eq!(token_req.form()["refresh_token"], "x-refresh-0");
    assert_eq!(token_req.form()["client_id"], "cid");
    // The retried post used the new token.
    let posted = reqs.iter().rfind(|r| r.path == "/2/tweets").unwrap();
    assert_eq!(posted.token(), Some(first.access_token.as_str()));
    // The next refresh spends the rotated refresh token (the old one is dead at X).
    let second = x.refresh().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(tokens.saved().len(), 2);
    // A fresh client for the same account starts from the stored set, not the config's.
    let again = client(&fake, tokens.clone());
    assert!(
        again.refresh().await.is_ok(),
        "stored refresh token was used"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_is_an_auth_error() {
    let fake = FakeX::start().await;
    fake.with(|s| s.refresh_tokens.clear());
    fake.expire_access_tokens();
    let x = client(&fake, MemTokens::new());
    let err = x.post(&text("nope")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.message.contains("token was invalid"), "{err}");
    assert!(fake.tweets().is_empty());
}

#[tokio::test]
async fn a_429_says_when_the_exhausted_window_resets() {
    let fake = FakeX::start().await;
    fake.with(|s| s.post_limit = 1);
    let x = client(&fake, MemTokens::new());
    x.post(&text("one")).await.unwrap();
    let err = x.post(&text("two")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert_eq!(err.status, Some(429));
    let reset = fake.with(|s| s.window_reset);
    assert_eq!(err.retry_at, Some(reset * 1000));
}

#[tokio::test]
async fn the_24_hour_cap_retries_after_the_daily_reset() {
    let fake = FakeX::start().await;
    fake.with(|s| s.daily_limit = 1);
    let x = client(&fake, MemTokens::new());
    x.post(&text("one")).await.unwrap();
    let err = x.post(&text("two")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_at, Some(fake.with(|s| s.daily_reset) * 1000));
}

#[tokio::test]
async fn a_duplicate_is_reported_with_x_own_words() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    x.post(&text("same")).await.unwrap();
    let err = x.post(&text("same")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate);
    assert_eq!(err.status, Some(403));
    assert!(err.message.contains("duplicate content"), "{err}");
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_on_the_timeline() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    let mut req = text("lost & found <3");
    req.media.push(png("a.png"));
    fake.with(|s| s.drop_next_post = true);
    let err = x.post(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    let found = x.find(&req, since).await.unwrap().expect("the post exists");
    assert_eq!(found.id, fake.tweets()[0].id);
    assert!(x.find(&text("never sent"), since).await.unwrap().is_none());
    let timeline = fake.requests().into_iter().last().unwrap();
    assert!(timeline.path.ends_with("/tweets") && timeline.query.contains_key("start_time"));
}

#[tokio::test]
async fn preview_shows_both_requests_without_sending_or_leaking_the_token() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let mut req = text("preview me");
    req.media.push(png("p.png"));
    let p = x.preview(&req);
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].method.as_str(), p[0].url.clone()),
        ("POST", format!("{}/2/media/upload", fake.url))
    );
    assert!(
        p[0].body.contains("<24 bytes of image/png>"),
        "{}",
        p[0].body
    );
    assert!(
        p[1].body.contains("\"text\":\"preview me\""),
        "{}",
        p[1].body
    );
    assert!(p[1].body.contains("<data.id of upload 1>"), "{}", p[1].body);
    assert!(!format!("{p:?}").contains("x-access-0"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn text_over_280_weighted_is_refused_before_sending() {
    let fake = FakeX::start().await;
    let x = client(&fake, MemTokens::new());
    let err = x.post(&text(&"字".repeat(141))).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("282 weighted"), "{err}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn connect_names_the_missing_credential() {
    let s = spec(Platform::X, "http://127.0.0.1:9", &[("refresh_token", "r")]);
    let err = match connect(s, reqwest::Client::new(), MemTokens::new()) {
        Err(e) => e,
        Ok(_) => panic!("connected without client_id"),
    };
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(
        err.message.contains("`client_id`") && err.message.contains("test-x"),
        "{err}"
    );
}

#[tokio::test]
async fn when_the_stored_tokens_are_dead_the_reconfigured_credentials_are_adopted() {
    let fake = FakeX::start().await;
    let tokens = MemTokens::new();
    let dead = dreamos::clients::social::Tokens {
        access_token: "revoked".into(),
        refresh_token: Some("revoked-refresh".into()),
        ..Default::default()
    };
    tokens.map.lock().unwrap().insert("test-x".into(), dead);
    let x = client(&fake, tokens.clone());
    x.post(&text("after re-authorising")).await.unwrap();
    assert_eq!(fake.tweets().len(), 1);
    let stored = tokens.map.lock().unwrap().get("test-x").cloned().unwrap();
    assert_eq!(
        stored.refresh_token.as_deref(),
        Some("x-refresh-0"),
        "the config's set replaced the dead one"
    );
}
