//! The StockTwits client against the fake API, and the dry-run-only account without a token.

mod fakes;

use std::sync::Arc;

use dreamos::clients::social::{connect, ErrorKind, Media, Platform, PostRequest, SocialClient};
use fakes::social::common::{spec, MemTokens};
use fakes::social::stocktwits::{FakeStocktwits, TOKEN};

fn client(fake: &FakeStocktwits) -> Arc<dyn SocialClient> {
    connect(
        spec(Platform::Stocktwits, &fake.url, &[("access_token", TOKEN)]),
        reqwest::Client::new(),
        MemTokens::new(),
    )
    .unwrap()
}

fn msg(t: &str, sentiment: Option<&str>) -> PostRequest {
    let mut req = PostRequest {
        text: t.into(),
        idempotency_key: "k".into(),
        ..Default::default()
    };
    if let Some(s) = sentiment {
        req.extra.insert("sentiment".into(), s.into());
    }
    req
}

#[tokio::test]
async fn a_message_with_cashtags_and_sentiment_is_posted() {
    let fake = FakeStocktwits::start().await;
    let st = client(&fake);
    let reply = st
        .post(&msg("$AAPL breaking out", Some("Bullish")))
        .await
        .unwrap();
    let m = &fake.messages()[0];
    assert_eq!(reply.value.id, m.id.to_string());
    assert_eq!(m.sentiment.as_deref(), Some("bullish"));
    let rate = &reply.rates[0];
    assert_eq!((rate.limit, rate.remaining), (Some(400.0), Some(399.0)));
    assert_eq!(fake.requests()[0].token(), Some(TOKEN));
}

#[tokio::test]
async fn a_chart_goes_as_multipart_and_metrics_come_from_show() {
    let fake = FakeStocktwits::start().await;
    let st = client(&fake);
    let mut req = msg("$TSLA chart", None);
    req.media.push(Media {
        name: "c.png".into(),
        mime: "image/png".into(),
        bytes: Arc::new(b"CHART".to_vec()),
        url: None,
        alt_text: None,
    });
    let id = st.post(&req).await.unwrap().value.id;
    assert_eq!(fake.messages()[0].chart.as_deref(), Some(&b"CHART"[..]));
    fake.with(|s| s.messages[0].likes = 3);
    let m = st.metrics(&id).await.unwrap().value;
    assert_eq!((m["likes"], m["replies"], m["reshares"]), (3, 0, 0));
    let err = st.delete(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("no delete"), "{err}");
}

#[tokio::test]
async fn duplicates_bad_tokens_and_the_hourly_limit() {
    let fake = FakeStocktwits::start().await;
    let st = client(&fake);
    st.post(&msg("$SPY same", None)).await.unwrap();
    let err = st.post(&msg("$SPY same", None)).await.unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Duplicate, Some(422)));
    assert!(err.message.contains("within 30 minutes"), "{err}");
    fake.with(|s| s.hourly_limit = s.used);
    let err = st.post(&msg("$SPY new", None)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_at, Some(fake.with(|s| s.reset_at) * 1000));
    fake.with(|s| s.tokens.clear());
    let err = st.post(&msg("$SPY auth", None)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("Authentication required"), "{err}");
}

#[tokio::test]
async fn a_lost_answer_is_found_in_the_user_stream() {
    let fake = FakeStocktwits::start().await;
    let st = client(&fake);
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    fake.with(|s| s.drop_next_post = true);
    let req = msg("$NVDA lost", None);
    assert_eq!(st.post(&req).await.unwrap_err().kind, ErrorKind::Network);
    let found = st.find(&req, since).await.unwrap().unwrap();
    assert_eq!(found.id, fake.messages()[0].id.to_string());
    assert!(st.find(&msg("never", None), since).await.unwrap().is_none());
}

#[tokio::test]
async fn an_account_without_a_token_previews_but_never_posts() {
    let fake = FakeStocktwits::start().await;
    let st = connect(
        spec(Platform::Stocktwits, &fake.url, &[]),
        reqwest::Client::new(),
        MemTokens::new(),
    )
    .unwrap();
    let why = st.dry_run_only().expect("dry-run only");
    assert!(
        why.contains("no longer registers new API applications") && why.contains("test-stocktwits"),
        "{why}"
    );
    let p = st.preview(&msg("$AMD preview", Some("bearish")));
    assert_eq!(p[0].url, format!("{}/messages/create.json", fake.url));
    assert!(p[0].body.contains("sentiment=bearish"), "{}", p[0].body);
    let err = st.post(&msg("$AMD preview", None)).await.unwrap_err();
    assert!(err.message.contains("dry run"), "{err}");
    assert!(fake.requests().is_empty());
    assert!(st
        .check_text(&msg("x", Some("moon")))
        .unwrap_err()
        .message
        .contains("`moon`"));
}
