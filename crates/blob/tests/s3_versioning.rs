//! Versioning mode of the S3 store, against moto's server (the one installable S3 server with
//! bucket versioning; it checks no signatures, which the s3s-fs suite covers). A ticket's URL
//! can be replayed until it expires; here the bucket accepts every replay, and the store must
//! still serve only the first complete upload and delete every version.

use std::sync::Arc;

use once_blob::conformance::{CHECKS, run};
use once_blob::s3::{S3BlobStore, WriteGuard};
use once_blob::testing::{UNVERSIONED_BUCKET, VersionedS3TestServer};
use once_blob::{BlobStore, DirectUpload};
use once_domain::BlobKey;

fn in_seconds(seconds: i64) -> once_domain::Instant {
    time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds)
}

async fn put(url: &str, headers: &[(String, String)], body: &[u8]) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new().put(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

/// A single-PUT ticket for a 5-byte text file: its URL and signed headers.
async fn five_byte_ticket(store: &S3BlobStore, key: &BlobKey) -> (String, Vec<(String, String)>) {
    match store
        .presign_upload(key, 5, "text/plain", None, in_seconds(60))
        .await
        .unwrap()
    {
        Some(DirectUpload { url, headers, .. }) => (url, headers),
        other => panic!("expected a single PUT, got {other:?}"),
    }
}

#[tokio::test]
async fn versioned_store_passes_the_conformance_suite() {
    let Some(server) = VersionedS3TestServer::start() else {
        return;
    };
    let store = S3BlobStore::connect(server.settings()).await.unwrap();
    assert_eq!(store.write_guard(), WriteGuard::Versioning);
    let store: Arc<dyn BlobStore> = Arc::new(store);
    for check in CHECKS {
        println!("s3 versioning: {check}");
        run(check, store.clone()).await;
    }
}

#[tokio::test]
async fn replayed_uploads_are_kept_but_only_the_first_is_served_then_all_are_deleted() {
    let Some(server) = VersionedS3TestServer::start() else {
        return;
    };
    let store = S3BlobStore::connect(server.settings()).await.unwrap();
    let key = BlobKey::generate();
    let (url, headers) = five_byte_ticket(&store, &key).await;
    assert!(
        !headers.iter().any(|(name, _)| name == "if-none-match"),
        "versioning mode does not rely on conditional writes"
    );
    // The bucket takes both uploads to the same ticket before the client completes...
    assert!(put(&url, &headers, b"first").await.is_success());
    assert!(put(&url, &headers, b"later").await.is_success());
    let completed = store.complete_upload(&key, None, &[]).await.unwrap();
    assert_eq!(completed.size, 5);
    let version = completed
        .version
        .expect("versioning mode records a version");
    // ...and one more after the share was published.
    assert!(put(&url, &headers, b"after").await.is_success());
    assert_eq!(
        server.version_count(),
        3,
        "the replays are kept as evidence"
    );

    let download = store
        .presign_download(
            &key,
            Some(&version),
            "attachment; filename=\"a.txt\"",
            "text/plain",
            in_seconds(60),
        )
        .unwrap();
    let body = reqwest::get(&download)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &body[..],
        b"first",
        "only the first complete upload is served"
    );
    let read = store.open(&key, Some(&version), None).await.unwrap();
    let mut bytes = Vec::new();
    let mut stream = read.body;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, b"first");

    // The reaper's delete removes every version, and repeating it is harmless.
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(server.version_count(), 0);
    assert_eq!(store.size(&key).await.unwrap(), None);
}

#[tokio::test]
async fn versioning_mode_refuses_to_start_on_a_bucket_without_versioning() {
    let Some(server) = VersionedS3TestServer::start() else {
        return;
    };
    let mut settings = server.settings();
    settings.bucket = UNVERSIONED_BUCKET.into();
    let error = S3BlobStore::connect(settings.clone())
        .await
        .err()
        .expect("must refuse to start");
    assert!(
        error.to_string().contains("versioning is not enabled"),
        "{error}"
    );
    // Auto mode probes instead: this bucket refuses overwrites, which is enough.
    settings.write_guard = WriteGuard::Auto;
    let store = S3BlobStore::connect(settings).await.unwrap();
    assert_eq!(store.write_guard(), WriteGuard::ConditionalWrites);
}

#[tokio::test]
async fn conditional_writes_on_a_versioned_bucket_still_delete_every_version() {
    let Some(server) = VersionedS3TestServer::start() else {
        return;
    };
    let mut settings = server.settings();
    settings.write_guard = WriteGuard::Auto;
    let store = S3BlobStore::connect(settings).await.unwrap();
    // moto refuses overwrites, so auto picks conditional writes even on a versioned bucket.
    assert_eq!(store.write_guard(), WriteGuard::ConditionalWrites);
    assert_eq!(server.version_count(), 0, "the start-up probe left nothing");
    let key = BlobKey::generate();
    let (url, headers) = five_byte_ticket(&store, &key).await;
    assert_eq!(put(&url, &headers, b"bytes").await, 200);
    assert_eq!(put(&url, &headers, b"again").await, 412);
    assert_eq!(server.version_count(), 1);
    // A plain DELETE would leave the bytes behind a delete marker.
    store.delete(&key).await.unwrap();
    assert_eq!(server.version_count(), 0);
}
