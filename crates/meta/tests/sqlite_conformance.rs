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

/// SQLite's own checkpoints are off (they would run inside a commit on a request's path);
/// the store's task must still move the write-ahead log into the database file, or the log
/// would grow without end and the database file would never change.
#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_by_the_store_itself() {
    use once_domain::{AuditEvent, AuditKind, AuditSource, KeyId};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("once.db");
    let store = SqliteMetaStore::open(&database).await.unwrap();
    let size = || std::fs::metadata(&database).unwrap().len();
    // Past the checkpoint task's first round, which runs as soon as the store opens.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let before = size();
    let key = KeyId::generate();
    let source = AuditSource::new(None, None, None);
    let events: Vec<_> = (0..2000)
        .map(|_| {
            AuditEvent::new(AuditKind::KeyCreated, once_domain::now(), &source)
                .of_key(&key)
                .with_detail("x".repeat(100))
        })
        .collect();
    store.record_audits(&events).await.unwrap();
    // Well over SQLite's 1,000-page mark, yet the commit did not checkpoint by itself.
    assert_eq!(size(), before, "the commit checkpointed the log itself");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {before} bytes: nothing was checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
