use std::sync::Arc;

use super::*;
use crate::store::testing::{on_each_backend, TestDb};
use crate::store::{open_sqlite, KvStore};

async fn temp_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_sqlite(&dir.path().join("nested/dir/dreamos.db"))
        .await
        .expect("open store");
    (dir, store)
}

fn count(txn: &rusqlite::Connection) -> Result<i64, StoreError> {
    txn.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))
        .map_err(StoreError::sql("count"))
}

#[tokio::test]
async fn open_creates_directories_and_migrates_once() {
    let (dir, store) = temp_store().await;
    let last = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    assert_eq!(schema_version(&store).await.expect("version"), last);
    drop(store);
    // Reopening applies nothing twice.
    let again = open_sqlite(&dir.path().join("nested/dir/dreamos.db"))
        .await
        .expect("reopen");
    assert_eq!(schema_version(&again).await.expect("version"), last);
    let mode: String = again
        .read(|c| {
            c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(StoreError::sql("pragma"))
        })
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn the_database_and_its_new_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = temp_store().await;
    store
        .kv_set("ns", "k", serde_json::json!(1))
        .await
        .expect("write");
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("nested"), 0o700);
    assert_eq!(mode("nested/dir"), 0o700);
    assert_eq!(mode("nested/dir/dreamos.db"), 0o600);
    assert_eq!(mode("nested/dir/dreamos.db-wal"), 0o600);
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_both_versions() {
    let (dir, store) = temp_store().await;
    store
        .write(|txn| {
            txn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)",
                [],
            )
            .map_err(StoreError::sql("insert"))
        })
        .await
        .expect("write");
    drop(store);
    let err = open_sqlite(&dir.path().join("nested/dir/dreamos.db"))
        .await
        .expect_err("too new");
    let text = err.to_string();
    assert!(
        text.contains("schema version 999") && text.contains("upgrade dreamos"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unopenable_path_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").expect("write");
    let err = open_sqlite(&blocker.join("db.sqlite"))
        .await
        .expect_err("cannot open");
    assert!(
        err.to_string().contains(&*blocker.to_string_lossy()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_commit_and_a_failing_job_undoes_only_itself() {
    let (_dir, store) = temp_store().await;
    let mut handles = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .write(move |txn| {
                    txn.execute(
                        "INSERT INTO kv (ns, key, value, updated_at) VALUES ('t', ?1, '1', 0)",
                        [i.to_string()],
                    )
                    .map_err(StoreError::sql("insert"))?;
                    if i % 10 == 0 {
                        // Fails after writing: its row must not survive.
                        return Err(StoreError::corrupt("test", "deliberate"));
                    }
                    Ok(i)
                })
                .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        if h.await.expect("join").is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 180);
    // An answer means committed: a separate connection sees every successful row.
    assert_eq!(store.read(count).await.expect("count"), 180);
}

#[tokio::test]
async fn a_panicking_job_is_an_error_not_a_dead_writer() {
    let (_dir, store) = temp_store().await;
    let err = store
        .write(|_txn| -> Result<(), StoreError> { panic!("boom") })
        .await
        .expect_err("panic reported");
    assert!(err.to_string().contains("boom"), "{err}");
    store
        .kv_set("ns", "after", serde_json::json!(1))
        .await
        .expect("writer still alive");
}

#[tokio::test]
async fn errors_name_the_database() {
    let (dir, store) = temp_store().await;
    let err = store
        .read(|c| {
            c.execute("SELECT * FROM no_such_table", [])
                .map_err(StoreError::sql("test: select"))
        })
        .await
        .expect_err("bad sql");
    let text = err.to_string();
    assert!(
        text.starts_with("test: select failed in database"),
        "{text}"
    );
    assert!(text.contains(&*dir.path().to_string_lossy()), "{text}");
}

on_each_backend! {
#[tokio::test]
async fn kv_round_trips_json_per_namespace() {
    let (_db, store) = TestDb::open().await;
    let store = store.kv();
    let value = serde_json::json!({"count": 3, "names": ["a", "b"]});
    store
        .kv_set("scout", "state", value.clone())
        .await
        .expect("set");
    assert_eq!(
        store.kv_get("scout", "state").await.expect("get"),
        Some(value)
    );
    assert_eq!(store.kv_get("other", "state").await.expect("get"), None);
    store
        .kv_set("scout", "state", serde_json::json!(null))
        .await
        .expect("overwrite");
    assert_eq!(
        store.kv_get("scout", "state").await.expect("get"),
        Some(serde_json::Value::Null)
    );
    assert!(store.kv_delete("scout", "state").await.expect("delete"));
    assert!(!store
        .kv_delete("scout", "state")
        .await
        .expect("delete again"));
    assert_eq!(store.kv_get("scout", "state").await.expect("get"), None);
}
}
