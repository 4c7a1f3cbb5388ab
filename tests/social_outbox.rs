//! The outbox with the real platform clients against their fake servers: posting, a 429
//! that reschedules, a lost answer reconciled without a double post, refreshed tokens kept
//! in the store, metrics as a time series.

mod fakes;

use std::path::Path;
use std::sync::Arc;

use dreamos::config::Config;
use dreamos::social::{
    platform_connect, Outbox, PostContent, PostOrder, PostRecord, Queued, Status,
};
use dreamos::store::{Millis, SocialStore};
use fakes::social::x::FakeX;

fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

struct Setup {
    _dir: tempfile::TempDir,
    outbox: Outbox,
    store: Arc<dyn SocialStore>,
}

async fn setup(fake_url: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[social.accounts.x-main]\nplatform = 'x'\nbase_url = '{fake_url}'\n\
         access_token_env = 'T_X_ACCESS'\nrefresh_token_env = 'T_X_REFRESH'\n\
         client_id_env = 'T_X_CLIENT'\n{extra}\n"
    );
    let config = Arc::new(Config::parse(&text, Path::new("dreamos.toml")).unwrap());
    let store = dreamos::store::open_sqlite(&dir.path().join("db.sqlite"))
        .await
        .unwrap() as Arc<dyn SocialStore>;
    let env = |var: &str| match var {
        "T_X_ACCESS" => Some("x-access-0".to_string()),
        "T_X_REFRESH" => Some("x-refresh-0".to_string()),
        "T_X_CLIENT" => Some("cid".to_string()),
        _ => None,
    };
    let outbox =
        Outbox::new(store.clone(), config, platform_connect(), None).with_env(Arc::new(env));
    Setup {
        _dir: dir,
        outbox,
        store,
    }
}

fn order(text: &str) -> PostOrder {
    PostOrder {
        account: "x-main".into(),
        content: PostContent {
            text: text.into(),
            ..Default::default()
        },
        source: "test".into(),
        ..Default::default()
    }
}

async fn queue(s: &Setup, o: PostOrder) -> PostRecord {
    match s.outbox.enqueue(o, now()).await.unwrap() {
        Queued::Created(p) => p,
        other => panic!("not created: {other:?}"),
    }
}

fn posts_sent(fake: &FakeX) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .count()
}

#[tokio::test]
async fn a_post_reaches_x_once_and_its_metrics_are_kept() {
    let fake = FakeX::start().await;
    let s = setup(&fake.url, "").await;
    let p = queue(&s, order("hello from the outbox")).await;
    assert_eq!(posts_sent(&fake), 0, "queueing sends nothing");
    let t = now();
    let done = s.outbox.send_due(t).await.unwrap();
    assert_eq!(done[0].status, Status::Posted);
    assert_eq!(fake.tweets()[0].text, "hello from the outbox");
    assert_eq!(
        done[0].platform_id.as_deref(),
        Some(fake.tweets()[0].id.as_str())
    );
    // Budgets the response reported are remembered.
    let budgets = s.store.budgets().await.unwrap();
    assert!(budgets
        .iter()
        .any(|b| b.2 == "POST /2/tweets" && b.4.is_none()));
    // Metrics at the first offset (1 h), as a time series.
    fake.with(|st| st.tweets[0].likes = 7);
    assert_eq!(s.outbox.poll_metrics(t + 3_600_000).await.unwrap(), 1);
    let samples = s.store.metric_samples(vec![p.id]).await.unwrap();
    let likes: Vec<i64> = samples
        .iter()
        .filter(|m| m.name == "like_count")
        .map(|m| m.value)
        .collect();
    assert_eq!(likes, vec![7]);
    // Nothing more is due and nothing is sent again.
    assert!(s.outbox.send_due(t + 3_600_000).await.unwrap().is_empty());
    assert_eq!(posts_sent(&fake), 1);
    // Delete goes to the platform.
    s.outbox.delete(p.id, now()).await.unwrap();
    assert!(fake.tweets().is_empty());
    assert_eq!(
        s.store.get_post(p.id).await.unwrap().unwrap().status,
        Status::Deleted
    );
}

#[tokio::test]
async fn an_x_429_reschedules_to_the_window_reset_without_hammering() {
    let fake = FakeX::start().await;
    fake.with(|st| st.post_limit = 0);
    let reset = fake.with(|st| st.window_reset) * 1000;
    let s = setup(&fake.url, "").await;
    queue(&s, order("too eager")).await;
    let t = now();
    let after = s.outbox.send_due(t).await.unwrap().pop().unwrap();
    assert_eq!(after.status, Status::Queued);
    assert_eq!(
        after.not_before, reset,
        "x-rate-limit-reset of the spent budget"
    );
    assert_eq!(after.error_kind.as_deref(), Some("rate_limited"));
    assert_eq!(after.attempts, 0);
    // Another post of the account waits too: no request until the reset.
    queue(&s, order("me too")).await;
    let waiting = s.outbox.send_due(t + 1000).await.unwrap();
    assert!(waiting
        .iter()
        .all(|p| p.status == Status::Queued && p.not_before >= reset));
    assert_eq!(posts_sent(&fake), 1);
    // After the reset (the fake's window renewed) both go out.
    fake.with(|st| st.post_limit = 200);
    let done = s.outbox.send_due(reset).await.unwrap();
    assert_eq!(
        done.iter().filter(|p| p.status == Status::Posted).count(),
        2
    );
    assert_eq!(fake.tweets().len(), 2);
}

#[tokio::test]
async fn an_answer_lost_after_x_posted_is_reconciled_not_reposted() {
    let fake = FakeX::start().await;
    fake.with(|st| st.drop_next_post = true);
    let s = setup(&fake.url, "").await;
    let p = queue(&s, order("did it go out?")).await;
    let t = now();
    let after = s.outbox.send_due(t).await.unwrap().pop().unwrap();
    assert_eq!(after.status, Status::Queued);
    assert!(after.unsure, "no answer: it may exist");
    assert_eq!(after.error_kind.as_deref(), Some("network"));
    let done = s
        .outbox
        .send_due(after.not_before)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(done.id, p.id);
    assert_eq!(done.status, Status::Posted);
    assert_eq!(fake.tweets().len(), 1);
    assert_eq!(
        done.platform_id.as_deref(),
        Some(fake.tweets()[0].id.as_str())
    );
    assert_eq!(
        posts_sent(&fake),
        1,
        "looked up on the timeline, not posted again"
    );
}

#[tokio::test]
async fn a_refreshed_x_token_is_stored_durably() {
    let fake = FakeX::start().await;
    fake.expire_access_tokens();
    let s = setup(&fake.url, "").await;
    queue(&s, order("after refresh")).await;
    let done = s.outbox.send_due(now()).await.unwrap().pop().unwrap();
    assert_eq!(done.status, Status::Posted);
    let tokens = s.store.load_tokens("x-main".into()).await.unwrap().unwrap();
    assert_ne!(
        tokens.refresh_token.as_deref(),
        Some("x-refresh-0"),
        "rotated"
    );
    assert!(fake.with(|st| st
        .refresh_tokens
        .contains(tokens.refresh_token.as_deref().unwrap())));
}

#[tokio::test]
async fn a_text_over_the_weighted_limit_is_refused_before_queueing() {
    let fake = FakeX::start().await;
    let s = setup(&fake.url, "").await;
    // 150 CJK characters weigh 300.
    let e = s
        .outbox
        .enqueue(order(&"字".repeat(150)), now())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "invalid");
    assert!(s
        .store
        .list_posts(Default::default())
        .await
        .unwrap()
        .is_empty());
}
