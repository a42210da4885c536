//! The readiness probe (`MetaStore::ping`, behind `/readyz`) fails, within its bound, whenever
//! the store cannot durably commit a write, and passes again once it can. Each test gives the
//! probe a deadline well above `READY_TIMEOUT` but far below the store's own 30 s waits, so a
//! probe that waited for those fails the test instead of passing late.

use std::path::Path;
use std::time::Duration;

use once_meta::postgres::PostgresMetaStore;
use once_meta::sqlite::SqliteMetaStore;
use once_meta::testing::faults::{PrivateCluster, SmallVolume};
use once_meta::{MetaResult, MetaStore};
use sqlx::{Connection, Executor};

const DEADLINE: Duration = Duration::from_secs(10);

async fn probe(store: &dyn MetaStore) -> MetaResult<()> {
    tokio::time::timeout(DEADLINE, store.ping())
        .await
        .expect("the readiness probe answers within its bound")
}

async fn sqlite(path: &Path) -> SqliteMetaStore {
    SqliteMetaStore::open(path).await.expect("open the store")
}

#[tokio::test]
async fn a_sqlite_store_is_ready_when_it_can_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir.path().join("once.db")).await;
    probe(&store).await.expect("ready");
    probe(&store).await.expect("ready again");
}

#[tokio::test]
async fn a_sqlite_store_whose_database_file_was_deleted_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.db");
    let store = sqlite(&path).await;
    probe(&store).await.expect("ready before");
    std::fs::remove_file(&path).unwrap();
    let error = probe(&store)
        .await
        .expect_err("not ready once the file is gone");
    assert!(error.to_string().contains("deleted"), "{error}");
}

#[tokio::test]
async fn a_sqlite_store_whose_database_file_was_replaced_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.db");
    let store = sqlite(&path).await;
    let other = dir.path().join("other.db");
    drop(sqlite(&other).await);
    std::fs::rename(&other, &path).unwrap();
    let error = probe(&store)
        .await
        .expect_err("not ready once the file is another");
    assert!(error.to_string().contains("replaced"), "{error}");
}

#[tokio::test]
async fn a_sqlite_store_is_not_ready_while_another_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.db");
    let store = sqlite(&path).await;
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // Held far longer than the probe's bound (and as long as the store's own busy timeout).
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    probe(&store)
        .await
        .expect_err("not ready while the write lock is held");
    holder.execute("ROLLBACK").await.unwrap();
    probe(&store)
        .await
        .expect("ready once the lock is released");
}

#[tokio::test]
async fn a_sqlite_store_is_not_ready_on_a_full_disk_and_ready_again_once_space_returns() {
    let Some(volume) = SmallVolume::mount("sqlite readiness on a full disk", 4 << 20) else {
        return;
    };
    let store = sqlite(&volume.path().join("once.db")).await;
    probe(&store).await.expect("ready before");
    volume.fill();
    probe(&store)
        .await
        .expect_err("not ready while the disk is full");
    volume.free();
    probe(&store).await.expect("ready once space returns");
}

#[tokio::test]
async fn a_postgres_store_is_not_ready_while_the_server_is_down_and_ready_once_it_is_back() {
    let Some(cluster) = PrivateCluster::start("postgres readiness while down", 64 << 20) else {
        return;
    };
    let store = PostgresMetaStore::open(&cluster.url())
        .await
        .expect("open the store");
    probe(&store).await.expect("ready before");
    cluster.stop();
    probe(&store)
        .await
        .expect_err("not ready while the server is down");
    cluster.ensure_running();
    probe(&store).await.expect("ready once the server is back");
}
