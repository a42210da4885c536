//! The `BlobStore` conformance suite: the same checks, run unchanged against every backend
//! (see `tests/`). Each check takes a fresh, empty store and panics on a violation. The
//! [`PENDING_CHECKS`] take a store whose pending-upload budget is [`PENDING_BUDGET`].

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use once_domain::{BlobKey, Sha256Digest};
use sha2::{Digest, Sha256};

use crate::{BlobError, BlobStore, ByteStream, PutLimits, ReportedPart};

pub const CHECKS: &[&str] = &[
    "put_then_read_back_whole_and_by_range",
    "empty_blob_round_trips",
    "body_of_several_parts_round_trips",
    "oversize_body_is_refused_and_nothing_stored",
    "short_body_is_refused_and_nothing_stored",
    "checksum_mismatch_is_refused_and_nothing_stored",
    "interrupted_body_stores_nothing",
    "delete_is_idempotent",
    "unsatisfiable_range_is_refused",
    "listing_finds_only_old_blobs",
    "multipart_parts_are_listed_and_assembled_in_order",
    "multipart_retry_of_a_part_with_the_same_bytes_is_harmless",
    "multipart_abort_removes_the_upload",
];

/// The budget (disk for temporary files, memory for buffered parts) that unfinished uploads
/// may hold in the stores given to the [`PENDING_CHECKS`].
pub const PENDING_BUDGET: u64 = 64 * 1024;

pub const PENDING_CHECKS: &[&str] = &[
    "declared_upload_over_the_pending_budget_is_refused_before_any_byte",
    "undeclared_upload_is_refused_once_it_outgrows_the_pending_budget",
    "pending_space_is_held_while_an_upload_runs_and_released_after",
];

pub async fn run(check: &str, store: Arc<dyn BlobStore>) {
    if check == "pending_space_is_held_while_an_upload_runs_and_released_after" {
        return pending_space_is_held_while_an_upload_runs(store).await;
    }
    let store = store.as_ref();
    match check {
        "put_then_read_back_whole_and_by_range" => {
            put_then_read_back_whole_and_by_range(store).await
        }
        "empty_blob_round_trips" => empty_blob_round_trips(store).await,
        "body_of_several_parts_round_trips" => body_of_several_parts_round_trips(store).await,
        "oversize_body_is_refused_and_nothing_stored" => oversize_body_is_refused(store).await,
        "short_body_is_refused_and_nothing_stored" => short_body_is_refused(store).await,
        "checksum_mismatch_is_refused_and_nothing_stored" => {
            checksum_mismatch_is_refused(store).await
        }
        "interrupted_body_stores_nothing" => interrupted_body_stores_nothing(store).await,
        "delete_is_idempotent" => delete_is_idempotent(store).await,
        "unsatisfiable_range_is_refused" => unsatisfiable_range_is_refused(store).await,
        "listing_finds_only_old_blobs" => listing_finds_only_old_blobs(store).await,
        "multipart_parts_are_listed_and_assembled_in_order" => {
            multipart_parts_are_listed_and_assembled(store).await
        }
        "multipart_retry_of_a_part_with_the_same_bytes_is_harmless" => {
            multipart_part_retry_is_harmless(store).await
        }
        "multipart_abort_removes_the_upload" => multipart_abort_removes_the_upload(store).await,
        "declared_upload_over_the_pending_budget_is_refused_before_any_byte" => {
            declared_upload_over_the_budget_is_refused(store).await
        }
        "undeclared_upload_is_refused_once_it_outgrows_the_pending_budget" => {
            undeclared_upload_outgrowing_the_budget_is_refused(store).await
        }
        other => panic!("unknown conformance check {other}"),
    }
}

fn key() -> BlobKey {
    BlobKey::generate()
}

/// A deterministic body of `size` bytes, sent in uneven chunks.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

fn body_of(bytes: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(7919)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A body whose chunks the caller hands over one at a time, so an upload can pause for as long
/// as a test wants; the body ends when the sender is dropped.
pub fn controlled_body() -> (
    tokio::sync::mpsc::UnboundedSender<std::io::Result<Bytes>>,
    ByteStream,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (sender, Box::pin(body))
}

fn digest(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(bytes).into())
}

fn exact(bytes: &[u8]) -> PutLimits {
    PutLimits {
        expected_size: Some(bytes.len() as u64),
        max_size: u64::MAX,
        sha256: Some(digest(bytes)),
    }
}

async fn read_all(mut body: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn put_then_read_back_whole_and_by_range(store: &dyn BlobStore) {
    let bytes = pattern(100_000);
    let key = key();
    let info = store
        .put(&key, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    assert_eq!(info.size, 100_000);
    assert_eq!(info.sha256, digest(&bytes));
    assert_eq!(store.size(&key).await.unwrap(), Some(100_000));
    let whole = store.open(&key, None, None).await.unwrap();
    assert_eq!(whole.total_size, 100_000);
    assert_eq!(read_all(whole.body).await, bytes);
    let part = store.open(&key, None, Some(50_000..=50_099)).await.unwrap();
    assert_eq!(part.total_size, 100_000);
    assert_eq!(read_all(part.body).await, bytes[50_000..=50_099]);
    let tail = store.open(&key, None, Some(99_999..=99_999)).await.unwrap();
    assert_eq!(read_all(tail.body).await, vec![bytes[99_999]]);
}

async fn empty_blob_round_trips(store: &dyn BlobStore) {
    let key = key();
    let info = store.put(&key, body_of(&[]), exact(&[])).await.unwrap();
    assert_eq!(info.size, 0);
    assert_eq!(
        read_all(store.open(&key, None, None).await.unwrap().body).await,
        Vec::<u8>::new()
    );
}

/// Larger than the parts a store streams in (8 MiB on S3), so a multipart upload through the
/// server is assembled and read back.
async fn body_of_several_parts_round_trips(store: &dyn BlobStore) {
    let bytes = pattern(17 * 1024 * 1024 + 1);
    let key = key();
    let info = store
        .put(&key, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(store.pending_bytes(), 0);
    let whole = store.open(&key, None, None).await.unwrap();
    assert!(
        read_all(whole.body).await == bytes,
        "the bytes read back differ"
    );
}

async fn oversize_body_is_refused(store: &dyn BlobStore) {
    let bytes = pattern(1000);
    let key = key();
    let declared = PutLimits {
        expected_size: Some(999),
        max_size: u64::MAX,
        sha256: None,
    };
    let error = store
        .put(&key, body_of(&bytes), declared)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BlobError::TooLarge { limit: 999 }),
        "{error:?}"
    );
    let capped = PutLimits {
        expected_size: None,
        max_size: 10,
        sha256: None,
    };
    let error = store.put(&key, body_of(&bytes), capped).await.unwrap_err();
    assert!(
        matches!(error, BlobError::TooLarge { limit: 10 }),
        "{error:?}"
    );
    assert_eq!(store.size(&key).await.unwrap(), None);
}

async fn short_body_is_refused(store: &dyn BlobStore) {
    let bytes = pattern(1000);
    let key = key();
    let declared = PutLimits {
        expected_size: Some(1001),
        max_size: u64::MAX,
        sha256: None,
    };
    let error = store
        .put(&key, body_of(&bytes), declared)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            BlobError::SizeMismatch {
                expected: 1001,
                actual: 1000
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.size(&key).await.unwrap(), None);
}

async fn checksum_mismatch_is_refused(store: &dyn BlobStore) {
    let bytes = pattern(1000);
    let key = key();
    let wrong = PutLimits {
        sha256: Some(digest(b"other")),
        ..exact(&bytes)
    };
    let error = store.put(&key, body_of(&bytes), wrong).await.unwrap_err();
    assert!(matches!(error, BlobError::ChecksumMismatch), "{error:?}");
    assert_eq!(store.size(&key).await.unwrap(), None);
}

async fn interrupted_body_stores_nothing(store: &dyn BlobStore) {
    let key = key();
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from(pattern(5000))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let limits = PutLimits {
        expected_size: Some(10_000),
        max_size: u64::MAX,
        sha256: None,
    };
    let error = store
        .put(&key, Box::pin(futures::stream::iter(chunks)), limits)
        .await
        .unwrap_err();
    assert!(matches!(error, BlobError::Interrupted(_)), "{error:?}");
    assert_eq!(store.size(&key).await.unwrap(), None);
    assert!(matches!(
        store.open(&key, None, None).await,
        Err(BlobError::NotFound)
    ));
}

async fn delete_is_idempotent(store: &dyn BlobStore) {
    let bytes = pattern(10);
    let key = key();
    store
        .put(&key, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(store.size(&key).await.unwrap(), None);
}

async fn unsatisfiable_range_is_refused(store: &dyn BlobStore) {
    let bytes = pattern(10);
    let key = key();
    store
        .put(&key, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    let result = store.open(&key, None, Some(10..=20)).await;
    assert!(matches!(
        result,
        Err(BlobError::RangeNotSatisfiable { size: 10 })
    ));
}

async fn listing_finds_only_old_blobs(store: &dyn BlobStore) {
    let bytes = pattern(10);
    let key = key();
    store
        .put(&key, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    let long_ago = time::OffsetDateTime::UNIX_EPOCH;
    assert!(
        !store
            .list_older_than(long_ago)
            .await
            .unwrap()
            .contains(&key)
    );
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    assert!(
        store
            .list_older_than(tomorrow)
            .await
            .unwrap()
            .contains(&key)
    );
    store.remove_stale_uploads(tomorrow).await.unwrap();
}

fn assert_budget_refused(result: crate::BlobResult<crate::BlobInfo>) {
    let error = result.unwrap_err();
    assert!(
        matches!(error, BlobError::PendingSpaceExhausted { limit } if limit == PENDING_BUDGET),
        "{error:?}"
    );
}

async fn declared_upload_over_the_budget_is_refused(store: &dyn BlobStore) {
    let key = key();
    // Reading this body would end the upload as interrupted: the refusal must come first.
    let unread: ByteStream = Box::pin(futures::stream::iter(vec![Err(std::io::Error::other(
        "the body was read",
    ))]));
    let limits = PutLimits {
        expected_size: Some(PENDING_BUDGET + 1),
        max_size: u64::MAX,
        sha256: None,
    };
    assert_budget_refused(store.put(&key, unread, limits).await);
    assert_eq!(store.size(&key).await.unwrap(), None);
    assert_eq!(store.pending_bytes(), 0);
}

async fn undeclared_upload_outgrowing_the_budget_is_refused(store: &dyn BlobStore) {
    let key = key();
    let bytes = pattern(2 * PENDING_BUDGET as usize);
    let limits = PutLimits {
        expected_size: None,
        max_size: u64::MAX,
        sha256: None,
    };
    assert_budget_refused(store.put(&key, body_of(&bytes), limits).await);
    assert_eq!(store.size(&key).await.unwrap(), None);
    assert_eq!(store.pending_bytes(), 0);
}

async fn pending_space_is_held_while_an_upload_runs(store: Arc<dyn BlobStore>) {
    let size = PENDING_BUDGET / 2 + 1;
    let bytes = pattern(size as usize);
    let (sender, body) = controlled_body();
    sender
        .send(Ok(Bytes::copy_from_slice(&bytes[..100])))
        .unwrap();
    let first = key();
    let running = tokio::spawn({
        let store = store.clone();
        let first = first.clone();
        let limits = exact(&bytes);
        async move { store.put(&first, body, limits).await }
    });
    while store.pending_bytes() < size {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(store.pending_bytes(), size);

    // Two such uploads do not fit the budget together.
    let second = key();
    assert_budget_refused(store.put(&second, body_of(&bytes), exact(&bytes)).await);
    assert_eq!(store.size(&second).await.unwrap(), None);

    sender
        .send(Ok(Bytes::copy_from_slice(&bytes[100..])))
        .unwrap();
    drop(sender);
    assert_eq!(running.await.unwrap().unwrap().size, size);
    assert_eq!(store.pending_bytes(), 0);
    store
        .put(&second, body_of(&bytes), exact(&bytes))
        .await
        .unwrap();
    assert_eq!(store.pending_bytes(), 0);
}

/// S3's smallest part other than the last, so the multipart checks run on every store.
const PART: usize = 5 * 1024 * 1024;

/// Sends one part the way a client would: to the store's presigned URL where it has one,
/// otherwise through the server. Returns the part's tag.
async fn send_part(
    store: &dyn BlobStore,
    key: &BlobKey,
    upload_id: &str,
    number: u16,
    bytes: &[u8],
) -> String {
    let expires_at = once_domain::now() + time::Duration::seconds(60);
    match store.presign_part(key, upload_id, number, bytes.len() as u64, expires_at) {
        Some(url) => {
            let response = reqwest::Client::new()
                .put(url)
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let etag = response.headers()["etag"].to_str().unwrap();
            etag.trim_matches('"').to_owned()
        }
        None => {
            let stored = store
                .put_part(key, upload_id, number, bytes.len() as u64, body_of(bytes))
                .await
                .unwrap();
            assert_eq!(stored.number, number);
            assert_eq!(stored.size, bytes.len() as u64);
            stored.etag
        }
    }
}

async fn multipart_parts_are_listed_and_assembled(store: &dyn BlobStore) {
    let bytes = pattern(PART + 1000);
    let key = key();
    let upload_id = store
        .start_multipart(&key, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(store.list_parts(&key, &upload_id).await.unwrap(), vec![]);
    // Parts may arrive in any order.
    let second = send_part(store, &key, &upload_id, 2, &bytes[PART..]).await;
    let first = send_part(store, &key, &upload_id, 1, &bytes[..PART]).await;
    let listed = store.list_parts(&key, &upload_id).await.unwrap();
    // A store may list parts without their tags (then it checks them itself at completion).
    let listed: Vec<(u16, u64, bool)> = listed
        .iter()
        .map(|part| {
            let sent = if part.number == 1 { &first } else { &second };
            (
                part.number,
                part.size,
                part.etag.is_empty() || &part.etag == sent,
            )
        })
        .collect();
    assert_eq!(listed, vec![(1, PART as u64, true), (2, 1000, true)]);
    assert_eq!(
        store.size(&key).await.unwrap(),
        None,
        "visible before completion"
    );
    let reported = vec![
        ReportedPart {
            number: 1,
            etag: first,
        },
        ReportedPart {
            number: 2,
            etag: second,
        },
    ];
    let completed = store
        .complete_upload(&key, Some(&upload_id), &reported)
        .await
        .unwrap();
    assert_eq!(completed.size, bytes.len() as u64);
    if let Some(sha256) = completed.sha256 {
        assert_eq!(sha256, digest(&bytes));
    }
    let read = store
        .open(&key, completed.version.as_deref(), None)
        .await
        .unwrap();
    assert_eq!(read_all(read.body).await, bytes);
    // A retried completion (its first answer lost) finds the blob assembled.
    let again = store
        .complete_upload(&key, Some(&upload_id), &reported)
        .await
        .unwrap();
    assert_eq!(again.size, completed.size);
}

async fn multipart_part_retry_is_harmless(store: &dyn BlobStore) {
    let bytes = pattern(1000);
    let key = key();
    let upload_id = store
        .start_multipart(&key, "application/octet-stream")
        .await
        .unwrap();
    let first = send_part(store, &key, &upload_id, 1, &bytes).await;
    let again = send_part(store, &key, &upload_id, 1, &bytes).await;
    assert_eq!(first, again);
    let listed = store.list_parts(&key, &upload_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].etag.is_empty() || listed[0].etag == first);
    store.abort_upload(&key, &upload_id).await.unwrap();
}

async fn multipart_abort_removes_the_upload(store: &dyn BlobStore) {
    let key = key();
    let upload_id = store
        .start_multipart(&key, "application/octet-stream")
        .await
        .unwrap();
    let etag = send_part(store, &key, &upload_id, 1, &pattern(1000)).await;
    store.abort_upload(&key, &upload_id).await.unwrap();
    // (Some stores still answer ListParts for an aborted upload; none may complete it.)
    let reported = [ReportedPart { number: 1, etag }];
    assert!(
        store
            .complete_upload(&key, Some(&upload_id), &reported)
            .await
            .is_err(),
        "an aborted upload was completed"
    );
    store.abort_upload(&key, &upload_id).await.unwrap();
    assert_eq!(store.size(&key).await.unwrap(), None);
}
