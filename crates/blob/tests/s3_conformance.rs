//! The `BlobStore` conformance suite against a real S3-compatible server (s3s-fs), plus what
//! only presigned URLs can get wrong: tampering, expiry, a different Content-Length, a second
//! upload to the same ticket, and multipart uploads.

use std::sync::Arc;
use std::time::Duration;

use once_blob::conformance::{CHECKS, PENDING_BUDGET, PENDING_CHECKS, run};
use once_blob::s3::S3BlobStore;
use once_blob::testing::S3TestServer;
use once_blob::{BlobStore, ReportedPart};
use once_domain::{BlobKey, Sha256Digest};
use sha2::{Digest, Sha256};

fn key() -> BlobKey {
    BlobKey::generate()
}

fn in_seconds(seconds: i64) -> once_domain::Instant {
    time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds)
}

async fn single_ticket(
    store: &S3BlobStore,
    key: &BlobKey,
    body: &[u8],
    expires_in: i64,
) -> (String, Vec<(String, String)>) {
    let digest = Sha256Digest(Sha256::digest(body).into());
    let ticket = store
        .presign_upload(
            key,
            body.len() as u64,
            "text/plain",
            Some(digest),
            in_seconds(expires_in),
        )
        .await
        .unwrap()
        .unwrap();
    (ticket.url, ticket.headers)
}

async fn send(url: &str, headers: &[(String, String)], body: Vec<u8>) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new().put(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn s3_store_passes_the_conformance_suite() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    let store: Arc<dyn BlobStore> =
        Arc::new(S3BlobStore::connect(server.settings()).await.unwrap());
    for check in CHECKS {
        println!("s3: {check}");
        run(check, store.clone()).await;
    }
}

#[tokio::test]
async fn s3_store_passes_the_pending_space_checks() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    for check in PENDING_CHECKS {
        let store = S3BlobStore::connect(server.settings())
            .await
            .unwrap()
            .with_max_buffered_bytes(PENDING_BUDGET);
        println!("s3: {check}");
        run(check, Arc::new(store)).await;
    }
}

#[tokio::test]
async fn presigned_put_is_refused_when_tampered_expired_resized_or_repeated() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    let store = S3BlobStore::connect(server.settings()).await.unwrap();
    let body = b"ten bytes!".to_vec();

    let target = key();
    let (url, headers) = single_ticket(&store, &target, &body, 60).await;
    // A changed signature, or the same signature on another key, is refused by the bucket.
    let signature_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone();
    let flipped = if &url[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(signature_at..=signature_at, flipped);
    assert_eq!(send(&tampered, &headers, body.clone()).await, 403);
    let other_key = url.replace(target.as_str(), key().as_str());
    assert_eq!(send(&other_key, &headers, body.clone()).await, 403);
    // A body of another length than the signed Content-Length is refused.
    let mut longer = headers.clone();
    for (name, value) in longer.iter_mut() {
        if name == "content-length" {
            *value = "11".into();
        }
    }
    assert_eq!(send(&url, &longer, b"eleven byte".to_vec()).await, 403);
    assert_eq!(
        store.size(&target).await.unwrap(),
        None,
        "nothing stored by refused uploads"
    );
    // The real upload works once; the second one is refused by If-None-Match.
    assert!(send(&url, &headers, body.clone()).await.is_success());
    assert_eq!(send(&url, &headers, body.clone()).await, 412);
    let completed = store.complete_upload(&target, None, &[]).await.unwrap();
    assert_eq!(completed.size, 10);

    let late = key();
    let (url, headers) = single_ticket(&store, &late, &body, 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        send(&url, &headers, body).await,
        403,
        "expired URL accepted"
    );
}

/// The part URLs of a multipart upload of `body` in parts of `part_size`, as (number, url, range).
fn part_urls(
    store: &S3BlobStore,
    target: &BlobKey,
    upload_id: &str,
    body_len: usize,
    part_size: usize,
) -> Vec<(u16, String, std::ops::Range<usize>)> {
    (0..body_len.div_ceil(part_size))
        .map(|index| {
            let range = index * part_size..((index + 1) * part_size).min(body_len);
            let number = u16::try_from(index + 1).unwrap();
            let url = store
                .presign_part(
                    target,
                    upload_id,
                    number,
                    range.len() as u64,
                    in_seconds(60),
                )
                .unwrap();
            (number, url, range)
        })
        .collect()
}

#[tokio::test]
async fn multipart_part_urls_are_signed_for_their_length_and_assemble() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    let store = S3BlobStore::connect(server.settings()).await.unwrap();
    let body: Vec<u8> = (0..12 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let target = key();
    let upload_id = store
        .start_multipart(&target, "application/octet-stream")
        .await
        .unwrap();
    let parts = part_urls(&store, &target, &upload_id, body.len(), 5 * 1024 * 1024);
    assert_eq!(parts.len(), 3);
    let mut receipts = Vec::new();
    for (number, url, range) in &parts {
        let chunk = body[range.clone()].to_vec();
        if *number == 1 {
            // One byte short: the part's signed length refuses it (the server may also just
            // close the connection on the mismatched request).
            let short = reqwest::Client::new()
                .put(url)
                .body(chunk[1..].to_vec())
                .send()
                .await;
            assert!(short.is_err() || short.unwrap().status() == 403);
        }
        let response = reqwest::Client::new()
            .put(url)
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        receipts.push(ReportedPart {
            number: *number,
            etag,
        });
    }
    let listed = store.list_parts(&target, &upload_id).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[2].size,
        2 * 1024 * 1024,
        "the store lists part sizes"
    );
    let completed = store
        .complete_upload(&target, Some(&upload_id), &receipts)
        .await
        .unwrap();
    assert_eq!(completed.size, body.len() as u64);
    let url = store
        .presign_download(
            &target,
            None,
            "attachment; filename=\"x.bin\"",
            "application/octet-stream",
            in_seconds(60),
        )
        .unwrap();
    let response = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=6000000-6000009")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.bytes().await.unwrap().to_vec(),
        body[6_000_000..6_000_010].to_vec()
    );
    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"x.bin\""
    );
    assert!(response.bytes().await.unwrap().to_vec() == body);
}

#[tokio::test]
async fn aborted_multipart_upload_cannot_be_completed() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    let store = S3BlobStore::connect(server.settings()).await.unwrap();
    let target = key();
    let upload_id = store
        .start_multipart(&target, "application/octet-stream")
        .await
        .unwrap();
    let parts = part_urls(
        &store,
        &target,
        &upload_id,
        6 * 1024 * 1024,
        5 * 1024 * 1024,
    );
    let response = reqwest::Client::new()
        .put(&parts[0].1)
        .body(vec![1u8; parts[0].2.len()])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    store.abort_upload(&target, &upload_id).await.unwrap();
    let receipts = [ReportedPart {
        number: 1,
        etag: "\"x\"".into(),
    }];
    assert!(
        store
            .complete_upload(&target, Some(&upload_id), &receipts)
            .await
            .is_err()
    );
    assert_eq!(store.size(&target).await.unwrap(), None);
}
