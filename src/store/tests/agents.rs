use serde_json::json;

use crate::store::testing::{on_each_backend, TestDb};
use crate::store::AgentTransition;

fn step(agent: &str, to: &str, at: i64) -> AgentTransition {
    AgentTransition {
        agent: agent.into(),
        from: "stopped".into(),
        to: to.into(),
        reason: format!("to {to}"),
        at,
    }
}

on_each_backend! {
    #[tokio::test]
    async fn transitions_and_state_survive_reopening() {
        let (db, store) = TestDb::open().await;
        {
            let store = store.agents();
            for (i, to) in ["starting", "running", "stopping"].iter().enumerate() {
                store
                    .record_agent_transition(step("scout", to, i as i64))
                    .await
                    .expect("record");
            }
            store
                .record_agent_transition(step("other", "starting", 9))
                .await
                .expect("record");
            store
                .save_agent_state("scout".into(), json!({"seen": 2}), 1)
                .await
                .expect("save");
            store
                .save_agent_state("scout".into(), json!({"seen": 3}), 2)
                .await
                .expect("save again");
        }
        drop(store);
        let store = db.open_again().await.agents();
        let log = store
            .agent_transitions("scout".into(), 2)
            .await
            .expect("read");
        let tos: Vec<&str> = log.iter().map(|t| t.to.as_str()).collect();
        assert_eq!(tos, ["running", "stopping"], "newest two, oldest first");
        assert_eq!(log[1].reason, "to stopping");
        assert_eq!(
            store.load_agent_state("scout".into()).await.expect("load"),
            Some(json!({"seen": 3})),
            "the last save wins"
        );
        assert_eq!(
            store.load_agent_state("nobody".into()).await.expect("load"),
            None
        );
        assert_eq!(
            store
                .load_agent_states(vec!["nobody".into(), "scout".into(), "nobody".into()])
                .await
                .expect("load several"),
            vec![None, Some(json!({"seen": 3})), None],
            "one answer per name, in order"
        );
    }

}
