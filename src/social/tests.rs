//! The outbox's state machine against a scripted client (an in-memory implementation of
//! the `SocialClient` contract; the platform clients themselves are tested against their
//! fake servers in tests/). Time is passed explicitly, so nothing sleeps. Each test runs
//! on SQLite and on PostgreSQL (`on_each_backend!`).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::*;
use crate::clients::social::*;
use crate::config::Config;
use crate::store::testing::{on_each_backend, TestDb};
use crate::store::{Millis, SocialStore};

const T0: Millis = 1_800_000_000_000;
const MIN: Millis = 60_000;

/// What the scripted client was asked to do, and what it answers next.
#[derive(Default)]
struct Script {
    posts: Vec<PostRequest>,
    finds: usize,
    find_fails: bool,
    answers: VecDeque<Result<Reply<Posted>, SocialError>>,
    found: Option<Posted>,
    metrics: i64,
    expires_at: Option<Millis>,
}

struct Scripted(Arc<Mutex<Script>>);

fn err(kind: ErrorKind, retry_at: Option<Millis>) -> SocialError {
    SocialError {
        platform: Platform::X,
        kind,
        op: "post".into(),
        status: Some(429),
        message: "scripted".into(),
        code: None,
        retry_at,
    }
}

fn ok(id: &str) -> Result<Reply<Posted>, SocialError> {
    Ok(Reply {
        value: Posted {
            id: id.into(),
            url: None,
        },
        rates: vec![],
    })
}

impl SocialClient for Scripted {
    fn platform(&self) -> Platform {
        Platform::X
    }
    fn check_text(&self, req: &PostRequest) -> Result<(), SocialError> {
        if req.text.chars().count() > 280 {
            return Err(err(ErrorKind::Invalid, None));
        }
        Ok(())
    }
    fn preview(&self, req: &PostRequest) -> Vec<RequestPreview> {
        vec![RequestPreview {
            method: "POST".into(),
            url: "http://x/2/tweets".into(),
            headers: vec![],
            body: req.text.clone(),
        }]
    }
    fn post<'a>(
        &'a self,
        req: &'a PostRequest,
    ) -> BoxFuture<'a, Result<Reply<Posted>, SocialError>> {
        Box::pin(async move {
            let mut s = self.0.lock().unwrap();
            s.posts.push(req.clone());
            let n = s.posts.len();
            s.answers
                .pop_front()
                .unwrap_or_else(|| ok(&format!("tw{n}")))
        })
    }
    fn delete<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<Reply<()>, SocialError>> {
        Box::pin(async {
            Ok(Reply {
                value: (),
                rates: vec![],
            })
        })
    }
    fn metrics<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<Reply<Metrics>, SocialError>> {
        Box::pin(async move {
            let mut s = self.0.lock().unwrap();
            s.metrics += 5;
            let m = [("like_count".to_string(), s.metrics)]
                .into_iter()
                .collect();
            Ok(Reply {
                value: m,
                rates: vec![],
            })
        })
    }
    fn find<'a>(
        &'a self,
        _req: &'a PostRequest,
        _since: Millis,
    ) -> BoxFuture<'a, Result<Option<Posted>, SocialError>> {
        Box::pin(async move {
            let mut s = self.0.lock().unwrap();
            s.finds += 1;
            if s.find_fails {
                return Err(err(ErrorKind::Unavailable, None));
            }
            Ok(s.found.clone())
        })
    }
    fn refresh<'a>(&'a self) -> BoxFuture<'a, Result<Tokens, SocialError>> {
        Box::pin(async { Err(err(ErrorKind::Auth, None)) })
    }
    fn expires_at(&self) -> BoxFuture<'_, Option<Millis>> {
        let at = self.0.lock().unwrap().expires_at;
        Box::pin(async move { at })
    }
}

struct Fixture {
    db: TestDb,
    outbox: Outbox,
    script: Arc<Mutex<Script>>,
}

fn config(account_extra: &str) -> Arc<Config> {
    let text = format!(
        "[social]\nmetrics_after = ['1h', '6h']\n[social.accounts.main]\nplatform = 'x'\n{account_extra}\n"
    );
    Arc::new(Config::parse(&text, Path::new("t.toml")).unwrap())
}

/// An outbox on `store` whose platform client is `script`.
fn outbox_on(
    store: Arc<dyn SocialStore>,
    config: Arc<Config>,
    script: &Arc<Mutex<Script>>,
) -> Outbox {
    let s2 = script.clone();
    let connect: Connect = Arc::new(move |_spec, _http, _tokens| {
        Ok(Arc::new(Scripted(s2.clone())) as Arc<dyn SocialClient>)
    });
    Outbox::new(store, config, connect, None)
}

async fn fixture(account_extra: &str) -> Fixture {
    let (db, store) = TestDb::open().await;
    let script = Arc::new(Mutex::new(Script::default()));
    let outbox = outbox_on(store.social(), config(account_extra), &script);
    Fixture { db, outbox, script }
}

fn order(text: &str) -> PostOrder {
    PostOrder {
        account: "main".into(),
        content: PostContent {
            text: text.into(),
            ..Default::default()
        },
        source: "test".into(),
        ..Default::default()
    }
}

async fn queue(f: &Fixture, o: PostOrder, now: Millis) -> PostRecord {
    match f.outbox.enqueue(o, now).await.unwrap() {
        Queued::Created(p) => p,
        other => panic!("not created: {other:?}"),
    }
}

on_each_backend! {
    #[tokio::test]
    async fn a_post_is_stored_before_sending_and_posted_once() {
        let f = fixture("").await;
        let p = queue(&f, order("hello"), T0).await;
        assert_eq!(p.status, Status::Queued);
        assert!(
            f.script.lock().unwrap().posts.is_empty(),
            "nothing sent at enqueue"
        );
        let done = f.outbox.send_due(T0).await.unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, Status::Posted);
        assert_eq!(done[0].platform_id.as_deref(), Some("tw1"));
        assert!(f.outbox.send_due(T0 + MIN).await.unwrap().is_empty());
        assert_eq!(f.script.lock().unwrap().posts.len(), 1);
    }

    #[tokio::test]
    async fn idempotency_keys_and_content_dedup() {
        let f = fixture("").await;
        let mut o = order("same words");
        o.idempotency_key = Some("k1".into());
        let first = queue(&f, o.clone(), T0).await;
        match f.outbox.enqueue(o, T0 + 1).await.unwrap() {
            Queued::Existing(p) => assert_eq!(p.id, first.id),
            other => panic!("{other:?}"),
        }
        let e = f
            .outbox
            .enqueue(order("same words"), T0 + 2)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "duplicate");
        assert!(
            e.to_string()
                .starts_with(&format!("duplicate of post {}", first.id)),
            "{e}"
        );
        // Outside the 24 h window the same words are a new post.
        queue(&f, order("same words"), T0 + 25 * 60 * MIN).await;
        let e = f
            .outbox
            .enqueue(order(&"x".repeat(281)), T0)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "invalid");
    }

    #[tokio::test]
    async fn a_rate_limited_post_waits_for_the_platforms_reset() {
        let f = fixture("").await;
        f.script
            .lock()
            .unwrap()
            .answers
            .push_back(Err(err(ErrorKind::RateLimited, Some(T0 + 15 * MIN))));
        let p = queue(&f, order("limited"), T0).await;
        let after = f.outbox.send_due(T0).await.unwrap();
        assert_eq!(after[0].status, Status::Queued);
        assert_eq!(after[0].not_before, T0 + 15 * MIN);
        assert_eq!(after[0].attempts, 0, "a rate limit is not a failed attempt");
        assert_eq!(after[0].error_kind.as_deref(), Some("rate_limited"));
        // Not hammered: nothing is sent before the reset, even for other posts of the account.
        queue(&f, order("another"), T0 + MIN).await;
        assert!(f
            .outbox
            .send_due(T0 + 10 * MIN)
            .await
            .unwrap()
            .iter()
            .all(|p| p.status == Status::Queued));
        assert_eq!(f.script.lock().unwrap().posts.len(), 1);
        let done = f.outbox.send_due(T0 + 15 * MIN).await.unwrap();
        assert!(done
            .iter()
            .any(|d| d.id == p.id && d.status == Status::Posted));
    }

    #[tokio::test]
    async fn a_sender_that_died_mid_call_is_reconciled_not_reposted() {
        let f = fixture("").await;
        let p = queue(&f, order("crash"), T0).await;
        // A sender claims it and dies before recording anything.
        let claimed = f
            .outbox
            .store()
            .claim_posts(T0, T0 + 2 * MIN, 1, None)
            .await
            .unwrap();
        assert_eq!(claimed[0].status, Status::Sending);
        // While its lease holds, nobody else touches it.
        assert!(f.outbox.send_due(T0 + MIN).await.unwrap().is_empty());
        // The platform had created it.
        f.script.lock().unwrap().found = Some(Posted {
            id: "tw-early".into(),
            url: None,
        });
        let done = f.outbox.send_due(T0 + 3 * MIN).await.unwrap();
        assert_eq!(done[0].id, p.id);
        assert_eq!(done[0].status, Status::Posted);
        assert_eq!(done[0].platform_id.as_deref(), Some("tw-early"));
        let s = f.script.lock().unwrap();
        assert_eq!(
            (s.finds, s.posts.len()),
            (1, 0),
            "looked up, never sent again"
        );
    }

    #[tokio::test]
    async fn a_lost_answer_is_looked_up_before_the_retry() {
        let f = fixture("").await;
        f.script
            .lock()
            .unwrap()
            .answers
            .push_back(Err(err(ErrorKind::Network, None)));
        queue(&f, order("net"), T0).await;
        let after = f.outbox.send_due(T0).await.unwrap();
        assert!(after[0].unsure);
        assert_eq!(after[0].not_before, T0 + 30_000);
        // The platform did not get it: sent again, once.
        let done = f.outbox.send_due(T0 + 30_000).await.unwrap();
        assert_eq!(done[0].status, Status::Posted);
        let s = f.script.lock().unwrap();
        assert_eq!((s.finds, s.posts.len()), (1, 2));
    }

    #[tokio::test]
    async fn unavailable_retries_with_backoff_then_dead_and_retry_revives() {
        let f = fixture("").await;
        for _ in 0..5 {
            f.script
                .lock()
                .unwrap()
                .answers
                .push_back(Err(err(ErrorKind::Unavailable, None)));
        }
        let p = queue(&f, order("down"), T0).await;
        let mut now = T0;
        let mut delays = vec![];
        loop {
            let r = f.outbox.send_due(now).await.unwrap().pop().unwrap();
            if r.status != Status::Queued {
                assert_eq!(r.status, Status::Dead);
                assert_eq!(r.attempts, 5);
                break;
            }
            delays.push((r.not_before - now) / 1000);
            now = r.not_before;
        }
        assert_eq!(delays, vec![30, 60, 120, 240]);
        let revived = f
            .outbox
            .store()
            .retry_post(p.id, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((revived.status, revived.attempts), (Status::Queued, 0));
        assert_eq!(
            f.outbox.send_due(now).await.unwrap()[0].status,
            Status::Posted
        );
    }

    #[tokio::test]
    async fn refusals_fail_at_once_and_replies_fail_with_them() {
        let f = fixture("").await;
        f.script
            .lock()
            .unwrap()
            .answers
            .push_back(Err(err(ErrorKind::Invalid, None)));
        let parent = queue(&f, order("bad"), T0).await;
        let mut child = order("reply");
        child.parent = Some(parent.id);
        let child = queue(&f, child, T0).await;
        f.outbox.send_due(T0).await.unwrap();
        let parent = f.outbox.store().get_post(parent.id).await.unwrap().unwrap();
        let child = f.outbox.store().get_post(child.id).await.unwrap().unwrap();
        assert_eq!(parent.status, Status::Failed);
        assert_eq!(child.status, Status::Failed);
        assert_eq!(
            child.error.as_deref(),
            Some("the post it replies to was not posted")
        );
    }

    #[tokio::test]
    async fn replies_wait_for_their_parent_and_carry_its_id() {
        let f = fixture("").await;
        let parent = queue(&f, order("1/2"), T0).await;
        let mut o = order("2/2");
        o.parent = Some(parent.id);
        queue(&f, o, T0).await;
        let done = f.outbox.send_due(T0).await.unwrap();
        assert_eq!(done.len(), 2);
        let s = f.script.lock().unwrap();
        assert_eq!(s.posts[0].reply_to, None);
        assert_eq!(s.posts[1].reply_to.as_deref(), Some("tw1"));
    }

    #[tokio::test]
    async fn caps_reschedule_to_the_next_safe_slot() {
        let f = fixture("daily_max = 2\nmin_gap = '30m'").await;
        queue(&f, order("one"), T0).await;
        queue(&f, order("two"), T0).await;
        queue(&f, order("three"), T0).await;
        let r = f.outbox.send_due(T0).await.unwrap();
        assert_eq!(r[0].status, Status::Posted);
        assert_eq!(r[1].status, Status::Queued);
        assert_eq!(r[1].not_before, T0 + 30 * MIN, "min_gap");
        let r = f.outbox.send_due(T0 + 30 * MIN).await.unwrap();
        assert_eq!(r[0].status, Status::Posted);
        assert_eq!(
            r[1].not_before,
            T0 + 24 * 60 * MIN,
            "daily_max: when the first leaves the day"
        );
        assert!(r[1].error.as_deref().unwrap().contains("daily_max"));
    }

    #[tokio::test]
    async fn metrics_are_read_at_each_offset_then_stop() {
        let f = fixture("").await;
        let p = queue(&f, order("watch me"), T0).await;
        f.outbox.send_due(T0).await.unwrap();
        assert_eq!(f.outbox.poll_metrics(T0 + 30 * MIN).await.unwrap(), 0);
        assert_eq!(f.outbox.poll_metrics(T0 + 60 * MIN).await.unwrap(), 1);
        assert_eq!(f.outbox.poll_metrics(T0 + 61 * MIN).await.unwrap(), 0);
        assert_eq!(f.outbox.poll_metrics(T0 + 6 * 60 * MIN).await.unwrap(), 1);
        let after = f.outbox.store().get_post(p.id).await.unwrap().unwrap();
        assert_eq!((after.metrics_next, after.metrics_done), (None, 2));
        let samples = f.outbox.store().metric_samples(vec![p.id]).await.unwrap();
        let values: Vec<i64> = samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![5, 10]);
    }

    #[tokio::test]
    async fn a_token_about_to_expire_is_warned_once_a_day() {
        let f = fixture("").await;
        f.script.lock().unwrap().expires_at = Some(T0 + 3 * 86_400_000);
        let w = f.outbox.check_tokens(T0).await;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].days_left, 3);
        assert!(f.outbox.check_tokens(T0 + 60 * MIN).await.is_empty());
        assert_eq!(f.outbox.check_tokens(T0 + 25 * 60 * MIN).await.len(), 1);
        f.script.lock().unwrap().expires_at = Some(T0 + 30 * 86_400_000);
        assert!(f.outbox.check_tokens(T0 + 50 * 60 * MIN).await.is_empty());
    }

    #[tokio::test]
    async fn cancel_only_what_is_queued() {
        let f = fixture("").await;
        let p = queue(&f, order("later"), T0).await;
        let c = f
            .outbox
            .store()
            .cancel_post(p.id, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.status, Status::Cancelled);
        assert!(f
            .outbox
            .store()
            .cancel_post(p.id, T0)
            .await
            .unwrap()
            .is_none());
        assert!(f.outbox.send_due(T0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_post_that_cannot_be_checked_is_never_sent_blind() {
        let f = fixture("").await;
        f.script
            .lock()
            .unwrap()
            .answers
            .push_back(Err(err(ErrorKind::Network, None)));
        f.script.lock().unwrap().find_fails = true;
        let p = queue(&f, order("maybe posted"), T0).await;
        let mut now = T0;
        let last = loop {
            let r = f.outbox.send_due(now).await.unwrap().pop().unwrap();
            if r.status != Status::Queued {
                break r;
            }
            assert!(r.unsure);
            now = r.not_before;
        };
        assert_eq!(last.status, Status::Dead);
        assert!(
            last.error
                .as_deref()
                .unwrap()
                .contains("look on the platform"),
            "{last:?}"
        );
        {
            let s = f.script.lock().unwrap();
            assert_eq!(s.posts.len(), 1, "only the first attempt was ever sent");
            assert_eq!(s.finds, 4);
        }
        // After a retry it is looked up again first.
        f.script.lock().unwrap().find_fails = false;
        f.script.lock().unwrap().found = Some(Posted {
            id: "tw-was-there".into(),
            url: None,
        });
        f.outbox.store().retry_post(p.id, now).await.unwrap();
        let done = f.outbox.send_due(now).await.unwrap().pop().unwrap();
        assert_eq!(done.platform_id.as_deref(), Some("tw-was-there"));
        assert_eq!(f.script.lock().unwrap().posts.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_sending_at_once_post_each_post_once() {
        let f = fixture("").await;
        // A second node: its own store connection and outbox worker, the same platform.
        let b = outbox_on(f.db.open_again().await.social(), config(""), &f.script);
        let mut ids = Vec::new();
        for i in 0..40 {
            ids.push(queue(&f, order(&format!("post {i}")), T0).await.id);
        }
        let (sent_a, sent_b) = tokio::join!(f.outbox.send_due(T0), b.send_due(T0));
        let mut sent: Vec<PostRecord> = sent_a.unwrap();
        sent.extend(sent_b.unwrap());
        assert!(sent.iter().all(|p| p.status == Status::Posted));
        let mut sent_ids: Vec<PostId> = sent.iter().map(|p| p.id).collect();
        sent_ids.sort_unstable();
        assert_eq!(sent_ids, ids, "each post sent by one node");
        let mut texts: Vec<String> = f
            .script
            .lock()
            .unwrap()
            .posts
            .iter()
            .map(|r| r.text.clone())
            .collect();
        assert_eq!(texts.len(), 40, "the platform got 40 requests");
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 40, "no post reached the platform twice");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_order_on_two_nodes_at_once_is_stored_once() {
        let f = fixture("").await;
        let b = outbox_on(f.db.open_again().await.social(), config(""), &f.script);
        for i in 0..10 {
            // The same idempotency key (a retried call): one post, the other node gets it.
            let mut o = order(&format!("keyed {i}"));
            o.idempotency_key = Some(format!("k{i}"));
            let (x, y) = tokio::join!(f.outbox.enqueue(o.clone(), T0), b.enqueue(o, T0));
            let (x, y) = (x.unwrap(), y.unwrap());
            let (created, existing) = match (x, y) {
                (Queued::Created(c), Queued::Existing(e)) | (Queued::Existing(e), Queued::Created(c)) => (c, e),
                other => panic!("one creates, one finds it: {other:?}"),
            };
            assert_eq!(created.id, existing.id);
            // The same words under different keys: one post, the other a duplicate.
            let (x, y) = tokio::join!(
                f.outbox.enqueue(order(&format!("words {i}")), T0),
                b.enqueue(order(&format!("words {i}")), T0)
            );
            let kinds = [&x, &y].map(|r| match r {
                Ok(Queued::Created(_)) => "created",
                Err(e) => e.kind(),
                Ok(_) => "other",
            });
            assert!(
                kinds == ["created", "duplicate"] || kinds == ["duplicate", "created"],
                "{kinds:?}"
            );
        }
        let all = f
            .outbox
            .store()
            .list_posts(PostFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 20);
    }
}
