//! The Reddit client against the fake Reddit: password grant, submit (self, image,
//! comment), delete, metrics, errors inside HTTP 200, 429s, crash reconciliation.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{basic, spec, MemTokens};
use fakes::social::reddit::{
    FakeReddit, CLIENT_ID, CLIENT_SECRET, PASSWORD, REFRESH_TOKEN, USERNAME,
};

const UA: &str = "linux:org.dreamos.test:v0.1 (by /u/dreambot)";

fn client_with(fake: &FakeReddit, tokens: Arc<MemTokens>, password: &str) -> Arc<dyn SocialClient> {
    let creds = [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("username", USERNAME),
        ("password", password),
        ("user_agent", UA),
    ];
    connect(
        spec(Platform::Reddit, &fake.url, &creds),
        reqwest::Client::new(),
        tokens,
    )
    .unwrap()
}

fn client(fake: &FakeReddit) -> Arc<dyn SocialClient> {
    client_with(fake, MemTokens::new(), PASSWORD)
}

fn post(title: &str, text: &str) -> PostRequest {
    PostRequest {
        text: text.into(),
        title: Some(title.into()),
        subreddit: Some("test".into()),
        idempotency_key: "k".into(),
        ..Default::default()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn a_self_post_fetches_a_token_then_submits_the_form() {
    let fake = FakeReddit::start().await;
    let tokens = MemTokens::new();
    let rd = client_with(&fake, tokens.clone(), PASSWORD);
    let reply = rd
        .post(&post("Weekly devlog", "what we built"))
        .await
        .unwrap();
    let things = fake.things();
    assert_eq!(reply.value.id, things[0].name);
    assert!(reply.value.id.starts_with("t3_"));
    assert_eq!(
        (things[0].title.as_str(), things[0].body.as_str()),
        ("Weekly devlog", "what we built")
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].path, "/api/v1/access_token");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(basic(CLIENT_ID, CLIENT_SECRET).as_str())
    );
    assert_eq!(reqs[0].form()["grant_type"], "password");
    let submit = &reqs[1];
    assert_eq!(submit.header("user-agent"), Some(UA));
    let form = submit.form();
    assert_eq!(
        (
            form["sr"].as_str(),
            form["kind"].as_str(),
            form["api_type"].as_str()
        ),
        ("test", "self", "json")
    );
    let rate = &reply.rates[0];
    assert_eq!((rate.limit, rate.remaining), (Some(600.0), Some(599.0)));
    assert_eq!(tokens.saved().len(), 1, "the token was stored");
}

#[tokio::test]
async fn an_image_goes_through_the_media_lease_and_upload_then_is_found_by_title() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    let mut req = post("Chart", "");
    req.media.push(Media {
        name: "chart.png".into(),
        mime: "image/png".into(),
        bytes: Arc::new(b"PNGDATA".to_vec()),
        url: None,
        alt_text: None,
    });
    let reply = rd.post(&req).await.unwrap();
    let things = fake.things();
    assert_eq!(reply.value.id, things[0].name);
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/access_token",
            "/api/media/asset.json",
            "/s3-upload",
            "/api/submit",
            "/user/dreambot/submitted"
        ]
    );
    let upload = fake.requests()[2].multipart();
    assert!(upload.iter().any(|p| p.name == "key"));
    assert_eq!(upload.last().unwrap().data, b"PNGDATA");
    assert_eq!(fake.requests()[3].form()["kind"], "image");
}

#[tokio::test]
async fn a_comment_follow_up_delete_and_metrics() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    let id = rd.post(&post("Post", "body")).await.unwrap().value.id;
    let mut follow = post("", "first comment");
    follow.reply_to = Some(id.clone());
    let comment = rd.post(&follow).await.unwrap().value;
    assert!(comment.id.starts_with("t1_"), "{comment:?}");
    fake.with(|s| s.things[0].score = 42);
    let m = rd.metrics(&id).await.unwrap().value;
    assert_eq!((m["score"], m["upvote_ratio_pct"]), (42, 97));
    rd.delete(&id).await.unwrap();
    assert!(fake.things().iter().all(|t| t.name != id));
    let err = rd.metrics(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_call_retried() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    rd.post(&post("one", "x")).await.unwrap();
    fake.with(|s| s.tokens.clear());
    rd.post(&post("two", "y")).await.unwrap();
    let grants = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/access_token")
        .count();
    assert_eq!(grants, 2);
    assert_eq!(fake.things().len(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_though_reddit_answers_200() {
    let fake = FakeReddit::start().await;
    let rd = client_with(&fake, MemTokens::new(), "wrong");
    let err = rd.post(&post("t", "x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert_eq!(err.code.as_deref(), Some("invalid_grant"));
    assert!(err.message.contains("test-reddit"), "{err}");
}

#[tokio::test]
async fn ratelimit_inside_200_says_take_a_break() {
    let fake = FakeReddit::start().await;
    fake.with(|s| s.ratelimit_minutes = Some(5));
    let rd = client(&fake);
    let before = now();
    let err = rd.post(&post("t", "x")).await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::RateLimited, Some(200)));
    assert_eq!(err.code.as_deref(), Some("RATELIMIT"));
    let at = err.retry_at.unwrap();
    assert!(at >= before + 300_000 && at <= now() + 300_000, "{at}");
}

#[tokio::test]
async fn a_429_retries_after_the_reset_seconds() {
    let fake = FakeReddit::start().await;
    fake.with(|s| s.limit = 1);
    let rd = client(&fake);
    rd.post(&post("one", "x")).await.unwrap();
    let before = now();
    let err = rd.post(&post("two", "y")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    let at = err.retry_at.unwrap();
    assert!(at >= before + 240_000 && at <= now() + 240_000, "{at}");
}

#[tokio::test]
async fn reddit_error_codes_keep_their_words() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    let mut req = post("t", "x");
    req.subreddit = Some("nosuchplace".into());
    let err = rd.post(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(err.code.as_deref(), Some("SUBREDDIT_NOEXIST"));
    assert!(
        err.message.contains("doesn't exist") && err.message.contains("`sr`"),
        "{err}"
    );
    let mut link = post("link", "");
    link.link = Some("https://example.com/a".into());
    rd.post(&link).await.unwrap();
    let err = rd.post(&link).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate);
}

#[tokio::test]
async fn a_lost_answer_is_reconciled_by_title_and_subreddit() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    let since = now() - 60_000;
    fake.with(|s| s.drop_next_post = true);
    let req = post("Lost answer", "text");
    let err = rd.post(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    let found = rd.find(&req, since).await.unwrap().unwrap();
    assert_eq!(found.id, fake.things()[0].name);
    assert!(rd
        .find(&post("Never sent", ""), since)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn missing_title_is_refused_and_preview_masks_the_token() {
    let fake = FakeReddit::start().await;
    let rd = client(&fake);
    let mut req = post("", "x");
    req.title = None;
    let err = rd.check_text(&req).unwrap_err();
    assert!(err.message.contains("`title`"), "{err}");
    let p = rd.preview(&post("Title", "body"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].url, format!("{}/api/submit", fake.url));
    assert!(
        p[0].body.contains("kind=self") && p[0].body.contains("title=Title"),
        "{}",
        p[0].body
    );
    assert!(p[0]
        .headers
        .contains(&("authorization".into(), "Bearer ****".into())));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_web_app_account_uses_its_permanent_refresh_token() {
    let fake = FakeReddit::start().await;
    let creds = [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("username", USERNAME),
        ("refresh_token", REFRESH_TOKEN),
        ("user_agent", UA),
    ];
    let s = spec(Platform::Reddit, &fake.url, &creds);
    let rd = connect(s, reqwest::Client::new(), MemTokens::new()).unwrap();
    rd.post(&post("from a web app", "x")).await.unwrap();
    let grant = fake.requests()[0].form();
    assert_eq!(grant["grant_type"], "refresh_token");
    assert_eq!(grant["refresh_token"], REFRESH_TOKEN);
    assert!(!grant.contains_key("password"));
    assert_eq!(fake.things().len(), 1);
}
