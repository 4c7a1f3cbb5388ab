//! [`LeaseStore`] semantics, on each backend.

use super::testing::{on_each_backend, TestDb};
use super::{NodeRecord, FORGET_NODES_AFTER};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn node(name: &str, seen: i64) -> NodeRecord {
    NodeRecord {
        node: name.into(),
        addr: format!("127.0.0.1:{}", 7000 + name.len()),
        pid: 42,
        started: seen,
        last_seen: seen,
        units: names(&["agent:a", "discord"]),
    }
}

on_each_backend! {
    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_lapses() {
        let (_db, store) = TestDb::open().await;
        let leases = store.leases();
        let all = names(&["agent:a", "agent:b"]);
        let got = leases.acquire_leases(all.clone(), "n1".into(), 1_000, 11_000).await.unwrap();
        assert_eq!(got, all);
        // Held: another node gets nothing, the holder gets them again (without a new start).
        let got = leases.acquire_leases(all.clone(), "n2".into(), 5_000, 15_000).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
        let got = leases.acquire_leases(all.clone(), "n1".into(), 6_000, 16_000).await.unwrap();
        assert_eq!(got, all);
        let listed = leases.leases().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|l| l.node == "n1" && l.until == 16_000 && l.acquired == 1_000));
        // Lapsed (until <= now): the next node takes it.
        let got = leases.acquire_leases(names(&["agent:b", "agent:c"]), "n2".into(), 16_000, 26_000)
            .await
            .unwrap();
        assert_eq!(got, names(&["agent:b", "agent:c"]));
        let listed = leases.leases().await.unwrap();
        let holders: Vec<(&str, &str, i64)> = listed
            .iter()
            .map(|l| (l.name.as_str(), l.node.as_str(), l.acquired))
            .collect();
        assert_eq!(
            holders,
            [("agent:a", "n1", 1_000), ("agent:b", "n2", 16_000), ("agent:c", "n2", 16_000)]
        );
    }

    #[tokio::test]
    async fn renewal_keeps_what_is_still_held_and_release_hands_over_at_once() {
        let (_db, store) = TestDb::open().await;
        let leases = store.leases();
        leases.put_node(node("n1", 0)).await.unwrap();
        leases.acquire_leases(names(&["x", "y", "z"]), "n1".into(), 0, 10_000).await.unwrap();
        // y lapsed and went to n2 while n1 was stalled.
        let got = leases.acquire_leases(names(&["y"]), "n2".into(), 10_000, 20_000).await.unwrap();
        assert_eq!(got, names(&["y"]));
        let held = leases.renew_leases("n1".into(), 10_500, 20_500).await.unwrap();
        assert_eq!(held, names(&["x", "z"]));
        let nodes = leases.nodes().await.unwrap();
        assert_eq!(nodes[0].last_seen, 10_500, "renewal marks the node seen");
        // n1 lets z go: n2 gets it long before it would lapse.
        assert_eq!(leases.release_leases("n1".into(), names(&["z", "y"])).await.unwrap(), 1);
        let got = leases.acquire_leases(names(&["x", "z"]), "n2".into(), 11_000, 21_000)
            .await
            .unwrap();
        assert_eq!(got, names(&["z"]));
        assert_eq!(leases.renew_leases("n1".into(), 11_000, 21_000).await.unwrap(), names(&["x"]));
    }

    #[tokio::test]
    async fn concurrent_acquirers_on_separate_connections_never_share_a_lease() {
        let (db, store) = TestDb::open().await;
        let other = db.open_again().await;
        let (one, two) = (store.leases(), other.leases());
        let all: Vec<String> = (0..40).map(|i| format!("agent:{i:02}")).collect();
        for round in 0..3i64 {
            // Every lease lapses between rounds; both nodes race for all of them.
            let (now, until) = (round * 10_000, round * 10_000 + 10_000);
            let (a, b) = tokio::join!(
                one.acquire_leases(all.clone(), "n1".into(), now, until),
                two.acquire_leases(all.clone(), "n2".into(), now, until),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
            both.sort();
            assert_eq!(both, all, "round {round}: every lease exactly once ({a:?} / {b:?})");
        }
    }

    #[tokio::test]
    async fn nodes_are_recorded_replaced_removed_and_forgotten_after_a_day() {
        let (_db, store) = TestDb::open().await;
        let leases = store.leases();
        leases.put_node(node("old", 0)).await.unwrap();
        leases.put_node(node("n1", 1_000)).await.unwrap();
        let mut again = node("n1", 2_000);
        again.addr = "10.0.0.1:7878".into();
        again.pid = u32::MAX;
        leases.put_node(again.clone()).await.unwrap();
        let listed = leases.nodes().await.unwrap();
        assert_eq!(listed, [again.clone(), node("old", 0)]);
        let day = FORGET_NODES_AFTER;
        leases.put_node(node("n2", day + 1_000)).await.unwrap();
        let listed: Vec<String> = leases.nodes().await.unwrap().into_iter().map(|n| n.node).collect();
        assert_eq!(listed, ["n1", "n2"], "'old' was not seen for a day");
        leases.remove_node("n1".into()).await.unwrap();
        let listed: Vec<String> = leases.nodes().await.unwrap().into_iter().map(|n| n.node).collect();
        assert_eq!(listed, ["n2"]);
    }

    #[tokio::test]
    async fn a_lease_is_handed_over_only_by_its_holder() {
        let (_db, store) = TestDb::open().await;
        let leases = store.leases();
        let a = names(&["agent:a"]);
        leases.acquire_leases(a.clone(), "n1".into(), 1_000, 11_000).await.unwrap();
        let moved = leases
            .hand_over_lease("agent:a".into(), "n1".into(), "n2".into(), 2_000, 12_000)
            .await
            .unwrap();
        assert!(moved);
        let held = leases.leases().await.unwrap();
        assert_eq!((held[0].node.as_str(), held[0].until, held[0].acquired), ("n2", 12_000, 2_000));
        // n2 finds it at its next renewal; n1 no longer holds it and cannot move it again.
        assert_eq!(leases.renew_leases("n2".into(), 3_000, 13_000).await.unwrap(), a);
        assert!(leases.renew_leases("n1".into(), 3_000, 13_000).await.unwrap().is_empty());
        let again = leases
            .hand_over_lease("agent:a".into(), "n1".into(), "n3".into(), 3_000, 13_000)
            .await
            .unwrap();
        assert!(!again);
        assert_eq!(leases.leases().await.unwrap()[0].node, "n2");
    }
}
