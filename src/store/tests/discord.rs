use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::store::testing::{on_each_backend, TestDb};
use crate::store::DiscordOutboxStore;

const T0: i64 = 1_800_000_000_000;
const LEASE: i64 = 60_000;

/// Delivers like `clients::discord::outbox::deliver` until the outbox is empty, noting
/// each post it sends in `sent`.
async fn deliver(store: Arc<dyn DiscordOutboxStore>, sent: Arc<Mutex<HashMap<i64, u32>>>) {
    loop {
        let claim = store.outbox_claim(3, T0, T0 + LEASE).await.expect("claim");
        if claim.rows.is_empty() {
            if store.outbox_pending(1).await.expect("pending").is_empty() {
                return;
            }
            // The other node holds the outbox.
            tokio::task::yield_now().await;
            continue;
        }
        for row in claim.rows {
            *sent.lock().expect("sent").entry(row.id).or_default() += 1;
            let done = store.outbox_done(row.id, claim.lease_until).await;
            assert!(done.expect("done"), "the claim is still ours");
        }
    }
}

on_each_backend! {
    #[tokio::test]
    async fn queued_posts_survive_a_reopen_and_leave_when_done() {
        let (db, store) = TestDb::open().await;
        let outbox = store.discord_outbox();
        outbox
            .outbox_push("channel:5".into(), json!({"content": "a"}), 1)
            .await
            .expect("push");
        outbox
            .outbox_push("webhook_env:HOOK".into(), json!({"content": "b"}), 2)
            .await
            .expect("push");
        drop((outbox, store));
        let outbox = db.open_again().await.discord_outbox();
        let claim = outbox.outbox_claim(10, T0, T0 + LEASE).await.expect("claim");
        assert_eq!(claim.rows.len(), 2);
        assert_eq!(claim.rows[0].target, "channel:5");
        assert_eq!(claim.rows[1].body, json!({"content": "b"}));
        assert!(outbox
            .outbox_failed(claim.rows[0].id, claim.lease_until, "503".into())
            .await
            .expect("failed"));
        assert!(outbox
            .outbox_done(claim.rows[1].id, claim.lease_until)
            .await
            .expect("done"));
        let rows = outbox.outbox_pending(10).await.expect("pending");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].attempts, 1);
        let again = outbox.outbox_claim(10, T0 + 1, T0 + 1 + LEASE).await.expect("claim");
        assert_eq!(again.rows, rows, "a failed post is claimed again at once");
    }

    #[tokio::test]
    async fn a_live_claim_keeps_other_nodes_out_until_it_lapses() {
        let (db, store) = TestDb::open().await;
        let a = store.discord_outbox();
        let b = db.open_again().await.discord_outbox();
        for i in 0..4 {
            a.outbox_push("channel:1".into(), json!({"n": i}), i)
                .await
                .expect("push");
        }
        let held = a.outbox_claim(2, T0, T0 + LEASE).await.expect("claim");
        assert_eq!(held.rows.len(), 2);
        let other = b.outbox_claim(10, T0 + 1, T0 + 1 + LEASE).await.expect("claim");
        assert!(other.rows.is_empty(), "nothing while a's claim is live: {other:?}");
        // a dies; once its lease lapsed b takes the same posts, in order.
        let later = T0 + LEASE + 1;
        let taken = b.outbox_claim(10, later, later + LEASE).await.expect("claim");
        let ids: Vec<i64> = taken.rows.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(&ids[..2], &[held.rows[0].id, held.rows[1].id]);
        assert!(
            !a.outbox_done(held.rows[0].id, held.lease_until)
                .await
                .expect("done"),
            "a's claim is gone"
        );
        assert!(!a
            .outbox_failed(held.rows[1].id, held.lease_until, "late".into())
            .await
            .expect("failed"));
        // b gives back what it did not try; a new claim gets it at once.
        b.outbox_release(ids[1..].to_vec(), taken.lease_until)
            .await
            .expect("release");
        assert!(b.outbox_done(ids[0], taken.lease_until).await.expect("done"));
        let rest = a.outbox_claim(10, later + 1, later + 1 + LEASE).await.expect("claim");
        let rest: Vec<i64> = rest.rows.iter().map(|r| r.id).collect();
        assert_eq!(rest, ids[1..].to_vec());
        let pending = a.outbox_pending(10).await.expect("pending");
        assert!(pending.iter().all(|r| r.attempts == 0), "a's late failure did not count");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_delivering_at_once_send_each_post_once() {
        let (db, store) = TestDb::open().await;
        let a = store.discord_outbox();
        let b = db.open_again().await.discord_outbox();
        let mut pushed = Vec::new();
        for i in 0..60 {
            let node = if i % 2 == 0 { &a } else { &b };
            pushed.push(
                node.outbox_push("channel:1".into(), json!({"n": i}), i)
                    .await
                    .expect("push"),
            );
        }
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let one = tokio::spawn(deliver(a, sent.clone()));
        let two = tokio::spawn(deliver(b, sent.clone()));
        one.await.expect("node a");
        two.await.expect("node b");
        let sent = sent.lock().expect("sent");
        let mut ids: Vec<i64> = sent.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, pushed, "every post was sent");
        assert!(sent.values().all(|n| *n == 1), "each once: {sent:?}");
    }
}
