//! The `MetaStore` conformance suite against SQLite: one test per check, each on a fresh
//! database file.

use std::sync::Arc;

use once_meta::MetaStore;
use once_meta::sqlite::SqliteMetaStore;

async fn open(_check: &str) -> Option<(tempfile::TempDir, Arc<dyn MetaStore>)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(&dir.path().join("once.db"))
        .await
        .unwrap();
    Some((dir, Arc::new(store)))
}

once_meta::conformance_tests!(open);
once_meta::outbox_conformance_tests!(open);
once_meta::refused_uploads_conformance_tests!(open);
