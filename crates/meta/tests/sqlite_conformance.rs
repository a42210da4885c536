//! Runs the whole `MetaStore` conformance suite against SQLite, each check on a fresh database
//! file.

use std::sync::Arc;

use once_meta::conformance::{CHECKS, run};
use once_meta::sqlite::SqliteMetaStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    for check in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(&dir.path().join("once.db"))
            .await
            .unwrap();
        println!("sqlite: {check}");
        run(check, Arc::new(store)).await;
    }
}
