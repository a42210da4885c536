//! Runs the whole `BlobStore` conformance suite against the file-system store, plus the checks
//! that only make sense for files on disk.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use once_blob::conformance::{CHECKS, run};
use once_blob::fs::FsBlobStore;
use once_blob::{BlobStore, PutLimits};
use once_domain::BlobKey;

#[tokio::test]
async fn fs_store_passes_the_conformance_suite() {
    for check in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        println!("fs: {check}");
        run(check, Arc::new(store)).await;
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn failed_and_dropped_uploads_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    let key = BlobKey::generate();
    let limits = PutLimits {
        expected_size: Some(3),
        max_size: 3,
        sha256: None,
    };
    let body = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(
        b"toolong",
    ))]));
    assert!(store.put(&key, body, limits).await.is_err());
    assert_eq!(count_files(&dir.path().join("tmp")), 0);

    // A request future dropped mid-body (the client went away) must clean up too.
    let first: Vec<std::io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"ab"))];
    let never_ending = Box::pin(futures::stream::iter(first).chain(futures::stream::pending()));
    let upload = store.put(
        &key,
        never_ending,
        PutLimits {
            expected_size: Some(10),
            max_size: 10,
            sha256: None,
        },
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), upload)
            .await
            .is_err()
    );
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("blobs")), 0);
}

#[tokio::test]
async fn stale_temporary_files_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    std::fs::write(dir.path().join("tmp").join("left-by-a-crash.part"), b"half").unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        store
            .remove_stale_uploads(now - time::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    let later = now + time::Duration::seconds(2);
    assert_eq!(store.remove_stale_uploads(later).await.unwrap(), 1);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

/// A body whose chunks the test hands over one at a time, so an upload can pause for as long
/// as the test wants.
fn controlled_body() -> (
    tokio::sync::mpsc::UnboundedSender<std::io::Result<Bytes>>,
    once_blob::ByteStream,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (sender, Box::pin(body))
}

/// Waits until the one temporary file in `temp` holds `size` bytes (the writer caught up).
async fn temp_file_reaches(temp: &std::path::Path, size: u64) {
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(temp)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .collect();
        if sizes == [size] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn upload_paused_past_the_grace_survives_a_stale_upload_sweep_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let key = BlobKey::generate();
    let (sender, body) = controlled_body();
    sender.send(Ok(Bytes::from_static(b"first half,"))).unwrap();
    let upload = tokio::spawn({
        let store = store.clone();
        let key = key.clone();
        async move {
            let limits = PutLimits {
                expected_size: Some(23),
                max_size: 23,
                sha256: None,
            };
            store.put(&key, body, limits).await
        }
    });
    let temp = dir.path().join("tmp");
    temp_file_reaches(&temp, 11).await;

    // A cutoff after the last write is what a pause longer than the grace looks like.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(store.remove_stale_uploads(later).await.unwrap(), 0);
    assert_eq!(count_files(&temp), 1);

    sender
        .send(Ok(Bytes::from_static(b" second half")))
        .unwrap();
    drop(sender);
    let info = upload.await.unwrap().unwrap();
    assert_eq!(info.size, 23);
    let mut read = store.open(&key, None, None).await.unwrap().body;
    let mut stored = Vec::new();
    while let Some(chunk) = read.next().await {
        stored.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(stored, b"first half, second half");
    assert_eq!(count_files(&temp), 0);
}
