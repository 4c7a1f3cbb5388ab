//! A rate limit, in each platform's own signal, reschedules the post through the outbox
//! (real clients, fake servers): it stays queued until the time the platform gave, the
//! attempt is not counted, and nothing is sent before that time.

mod fakes;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use dreamos::config::Config;
use dreamos::social::{platform_connect, Outbox, PostContent, PostOrder, PostRecord, Status};
use dreamos::store::{Millis, SocialStore};
use fakes::social::facebook::{FakeFacebook, PAGE_ID, PAGE_TOKEN};
use fakes::social::instagram::{FakeInstagram, IG_TOKEN, IG_USER};
use fakes::social::linkedin::{FakeLinkedin, AUTHOR, TOKEN as LI_TOKEN};
use fakes::social::reddit::{FakeReddit, CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};
use fakes::social::stocktwits::{FakeStocktwits, TOKEN as ST_TOKEN};

const MIN: Millis = 60_000;

fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

async fn outbox(account: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config::parse(account, Path::new("dreamos.toml")).unwrap());
    let store = dreamos::store::open_sqlite(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let outbox = Outbox::new(
        store as Arc<dyn SocialStore>,
        config,
        platform_connect(),
        None,
    )
    .with_env(Arc::new(move |v: &str| env.get(v).cloned()));
    (dir, outbox)
}

/// Queues one post, attempts it at `t`, and checks it was rescheduled, not failed.
async fn limited(outbox: &Outbox, content: PostContent, t: Millis) -> PostRecord {
    let account = outbox.settings().accounts.keys().next().unwrap().clone();
    let order = PostOrder {
        account,
        content,
        source: "test".into(),
        ..Default::default()
    };
    outbox.enqueue(order, t).await.unwrap();
    let after = outbox.send_due(t).await.unwrap().pop().unwrap();
    assert_eq!(after.status, Status::Queued, "{after:?}");
    assert_eq!(
        after.error_kind.as_deref(),
        Some("rate_limited"),
        "{after:?}"
    );
    assert_eq!(after.attempts, 0);
    assert!(
        outbox.send_due(t + MIN).await.unwrap().is_empty(),
        "nothing due before the slot"
    );
    after
}

#[tokio::test]
async fn reddit_ratelimit_inside_http_200_waits_the_minutes_it_names() {
    let fake = FakeReddit::start().await;
    fake.with(|s| s.ratelimit_minutes = Some(7));
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.rd]\nplatform = 'reddit'\nbase_url = '{u}'\nauth_url = '{u}'\n\
             client_id = '{CLIENT_ID}'\nclient_secret_env = 'S'\nusername = '{USERNAME}'\n\
             password_env = 'P'\nuser_agent = 'linux:t:v1 (by /u/{USERNAME})'\n",
            u = fake.url
        ),
        &[("S", CLIENT_SECRET), ("P", PASSWORD)],
    )
    .await;
    let t = now();
    let content = PostContent {
        text: "body".into(),
        title: Some("t".into()),
        subreddit: Some("test".into()),
        ..Default::default()
    };
    let after = limited(&outbox, content, t).await;
    assert!(
        (after.not_before - (t + 7 * MIN)).abs() < MIN,
        "about 7 minutes: {}",
        after.not_before - t
    );
    fake.with(|s| s.ratelimit_minutes = None);
    let done = outbox.send_due(after.not_before).await.unwrap();
    assert_eq!(done[0].status, Status::Posted);
    assert_eq!(fake.things().len(), 1);
}

#[tokio::test]
async fn reddit_429_waits_for_x_ratelimit_reset() {
    let fake = FakeReddit::start().await;
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.rd]\nplatform = 'reddit'\nbase_url = '{u}'\nauth_url = '{u}'\n\
             client_id = '{CLIENT_ID}'\nclient_secret_env = 'S'\nusername = '{USERNAME}'\n\
             password_env = 'P'\nuser_agent = 'linux:t:v1 (by /u/{USERNAME})'\n",
            u = fake.url
        ),
        &[("S", CLIENT_SECRET), ("P", PASSWORD)],
    )
    .await;
    fake.with(|s| {
        s.used = s.limit;
        s.reset_secs = 300;
    });
    let t = now();
    let content = PostContent {
        text: "body".into(),
        title: Some("t".into()),
        subreddit: Some("test".into()),
        ..Default::default()
    };
    let after = limited(&outbox, content, t).await;
    assert!(
        (after.not_before - (t + 5 * MIN)).abs() < MIN,
        "about 300 s: {}",
        after.not_before - t
    );
}

#[tokio::test]
async fn facebook_page_throttling_waits_for_the_time_to_regain_access() {
    let fake = FakeFacebook::start().await;
    fake.with(|s| s.throttled_minutes = Some(20));
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.fb]\nplatform = 'facebook'\nbase_url = '{}'\npage_id = '{PAGE_ID}'\naccess_token_env = 'T'\n",
            fake.base()
        ),
        &[("T", PAGE_TOKEN)],
    )
    .await;
    let t = now();
    let after = limited(
        &outbox,
        PostContent {
            text: "hello page".into(),
            ..Default::default()
        },
        t,
    )
    .await;
    assert!(
        (after.not_before - (t + 20 * MIN)).abs() < MIN,
        "about 20 minutes: {}",
        after.not_before - t
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn instagram_publishing_quota_reschedules_instead_of_failing() {
    let fake = FakeInstagram::start().await;
    fake.with(|s| s.quota_used = s.quota_total);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("a.jpg");
    std::fs::write(&image, b"\xff\xd8jpeg").unwrap();
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.ig]\nplatform = 'instagram'\nbase_url = '{}'\nuser_id = '{IG_USER}'\naccess_token_env = 'T'\n",
            fake.base()
        ),
        &[("T", IG_TOKEN)],
    )
    .await;
    let media = dreamos::social::MediaSpec {
        path: image.display().to_string(),
        url: Some("https://cdn.example/a.jpg".into()),
        alt: None,
    };
    let t = now();
    let after = limited(
        &outbox,
        PostContent {
            text: "caption".into(),
            media: vec![media],
            ..Default::default()
        },
        t,
    )
    .await;
    assert!(after.not_before > t, "{after:?}");
    assert!(fake.media().is_empty());
}

#[tokio::test]
async fn linkedin_429_without_headers_waits_for_midnight_utc() {
    let fake = FakeLinkedin::start().await;
    fake.with(|s| s.daily_posts = 0);
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.li]\nplatform = 'linkedin'\nbase_url = '{}'\nauthor_urn = '{AUTHOR}'\naccess_token_env = 'T'\n",
            fake.url
        ),
        &[("T", LI_TOKEN)],
    )
    .await;
    let t = now();
    let after = limited(
        &outbox,
        PostContent {
            text: "hello network".into(),
            ..Default::default()
        },
        t,
    )
    .await;
    let day = 86_400_000;
    assert_eq!(
        after.not_before,
        (t / day + 1) * day,
        "the next midnight UTC"
    );
    fake.with(|s| s.daily_posts = 150);
    assert_eq!(
        outbox.send_due(after.not_before).await.unwrap()[0].status,
        Status::Posted
    );
}

#[tokio::test]
async fn stocktwits_429_waits_for_x_ratelimit_reset() {
    let fake = FakeStocktwits::start().await;
    let reset = fake.with(|s| {
        s.used = s.hourly_limit;
        s.reset_at
    }) * 1000;
    let (_d, outbox) = outbox(
        &format!(
            "[social.accounts.st]\nplatform = 'stocktwits'\nbase_url = '{}'\naccess_token_env = 'T'\n",
            fake.url
        ),
        &[("T", ST_TOKEN)],
    )
    .await;
    let after = limited(
        &outbox,
        PostContent {
            text: "$SPY".into(),
            ..Default::default()
        },
        now(),
    )
    .await;
    assert_eq!(after.not_before, reset);
}
