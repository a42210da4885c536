//! What only the S3 store must show, end to end with the real binary: big files move through
//! the bucket and not the server, a multipart upload survives a part cut off mid-way, and in
//! versioning mode a replayed upload URL is never served and the reaper leaves the bucket
//! empty. (The whole black-box suite also runs on S3 with `ONCE_TEST_BLOB=s3`.)

use std::time::Duration;

use crate::harness::*;
use once_blob::testing::{S3TestServer, VersionedS3TestServer};
use serde_json::json;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_gibibyte_moves_through_the_bucket_while_the_server_sees_only_control_traffic() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    let bucket_pid = bucket.pid();
    let server = Server::start_on(Storage::S3(bucket), &[]);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("disk.img");
    write_big_file(&original, 1024);

    let (server_before, bucket_before) =
        (process_io_bytes(server.pid()), process_io_bytes(bucket_pid));
    let link = stdout(&once_client(&server, work.path(), &["send", "disk.img"]))
        .trim()
        .to_owned();
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link]));
    let server_io = process_io_bytes(server.pid()) - server_before;
    let bucket_io = process_io_bytes(bucket_pid) - bucket_before;

    assert!(same_file_contents(
        &original,
        &inbox.path().join("disk.img")
    ));
    println!("1 GiB sent and fetched: server I/O {server_io} B, bucket I/O {bucket_io} B");
    // The bucket read the upload from the network and wrote it to disk, then read and sent it.
    assert!(bucket_io >= 2 * 1024 * MIB, "bucket I/O only {bucket_io} B");
    // The server only signed URLs and checked the result: kilobytes, not gigabytes. (The
    // kernel's counters miss socket receives, but a byte relayed must also be sent, and
    // writes to sockets are counted; the server's own byte counters must not exist either.)
    assert!(
        server_io < 8 * MIB,
        "the server moved {server_io} B for a 1 GiB transfer"
    );
    let metrics = metrics_text(&server).await;
    assert!(!metrics.contains("once_bytes_"), "{metrics}");
}

#[tokio::test]
async fn a_multipart_upload_survives_a_part_cut_off_mid_way_and_arrives_byte_identical() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    // Part 2's connection is cut after 1 MiB of it; the client must retry that part.
    let proxy = FaultyProxy::cutting(&bucket.endpoint, b"partNumber=2&", MIB as usize);
    let server = Server::start_on(
        Storage::S3(bucket),
        &[
            ("ONCE_S3_ENDPOINT", proxy.endpoint.as_str()),
            ("ONCE_UPLOAD_PART_SIZE", "32MiB"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("video.mp4");
    write_big_file(&original, 200);
    let link = stdout(&once_client(&server, work.path(), &["send", "video.mp4"]))
        .trim()
        .to_owned();
    assert_eq!(proxy.cuts(), 1, "the part upload was not cut");

    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link]));
    assert!(same_file_contents(
        &original,
        &inbox.path().join("video.mp4")
    ));
}

/// PUTs `body` to the ticket's URL with its signed headers, without completing.
async fn put_to_ticket(share: &CreatedShare, body: &'static [u8]) -> u16 {
    let mut request = client().put(&share.upload_url).body(body);
    for (name, value) in share.json["upload"]["headers"].as_object().unwrap() {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn versioning_mode_serves_only_the_first_upload_and_reap_empties_the_bucket() {
    let Some(bucket) = VersionedS3TestServer::start() else {
        return;
    };
    let server = Server::start_on(
        Storage::Versioned(bucket),
        &[
            ("ONCE_UPLOAD_PART_SIZE", "5MiB"),
            ("ONCE_UPLOAD_EXPIRES_IN", "3s"),
            ("ONCE_UPLOAD_GRACE", "0s"),
            ("ONCE_CLAIM_LEASE", "1s"),
        ],
    );
    assert!(
        server.log().contains("Versioning"),
        "the server reports its write guard: {}",
        server.log()
    );
    // This bucket cannot refuse a replayed upload URL: all three uploads are stored.
    let share = create_share(
        &server,
        json!({"filename": "a.txt", "size": 5, "max_downloads": 2}),
    )
    .await;
    assert_eq!(put_to_ticket(&share, b"first").await, 200);
    assert_eq!(put_to_ticket(&share, b"later").await, 200);
    complete(&server, &share).await.unwrap();
    assert_eq!(put_to_ticket(&share, b"after").await, 200);
    assert_eq!(server.versioned_bucket().version_count(), 3);
    // ...but both downloads get the first one.
    for _ in 0..2 {
        let (_, body) = download(&share.url).await;
        assert_eq!(body, b"first");
    }

    // A multipart upload abandoned after its first part.
    let abandoned = create_share(&server, json!({"filename": "big.bin", "size": 6 * MIB})).await;
    let part = &abandoned.json["upload"]["multipart"]["parts"][0];
    let response = client()
        .put(part["url"].as_str().unwrap())
        .body(vec![7u8; part["size"].as_u64().unwrap() as usize])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(server.versioned_bucket().pending_multipart_uploads(), 1);

    // After the lease and the upload window, one reaper pass leaves nothing behind.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    server.reap();
    assert_eq!(server.versioned_bucket().version_count(), 0);
    assert_eq!(server.versioned_bucket().pending_multipart_uploads(), 0);
    assert_eq!(claim(&share.url).await.status(), 410);
}

#[tokio::test]
async fn completing_with_wrong_parts_is_a_400_and_the_upload_can_still_finish() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    let server = Server::start_on(Storage::S3(bucket), &[("ONCE_UPLOAD_PART_SIZE", "5MiB")]);
    let bytes = payload(6 * MIB as usize, 8);
    let share = create_share(
        &server,
        json!({"filename": "two-parts.bin", "size": bytes.len()}),
    )
    .await;
    // Only the first part is uploaded at first.
    let parts = share.json["upload"]["multipart"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 2);
    let put_part = |index: usize| {
        let size = parts[0]["size"].as_u64().unwrap() as usize;
        let chunk = bytes[index * size..(bytes.len()).min((index + 1) * size)].to_vec();
        client()
            .put(parts[index]["url"].as_str().unwrap())
            .body(chunk)
            .send()
    };
    let first = put_part(0).await.unwrap();
    assert!(first.status().is_success());
    let first_etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let complete_with = |parts: serde_json::Value| {
        client()
            .post(share.json["upload"]["complete_url"].as_str().unwrap())
            .header("Authorization", server.auth())
            .json(&json!({ "parts": parts }))
            .send()
    };
    // Parts numbered with a gap, and a part the bucket never received, are the client's
    // mistake: 400, and the share stays unpublished and completable.
    let gap = complete_with(json!([{"part_number": 2, "etag": first_etag}]))
        .await
        .unwrap();
    assert_eq!(error_code(gap).await, (400, "part_missing".into()));
    let missing = complete_with(json!([
        {"part_number": 1, "etag": first_etag},
        {"part_number": 2, "etag": "\"0123456789abcdef0123456789abcdef\""},
    ]))
    .await
    .unwrap();
    assert_eq!(error_code(missing).await, (400, "part_missing".into()));
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (404, "share_not_ready".into()),
        "nothing was published"
    );

    let second = put_part(1).await.unwrap();
    assert!(second.status().is_success());
    let etags = [
        first_etag,
        second.headers()["etag"].to_str().unwrap().to_owned(),
    ];
    let right = complete_with(json!([
        {"part_number": 1, "etag": etags[0]},
        {"part_number": 2, "etag": etags[1]},
    ]))
    .await
    .unwrap();
    assert_eq!(right.status(), 200, "{}", right.text().await.unwrap());
    let (_, body) = download(&share.url).await;
    assert!(body == bytes);
}

#[tokio::test]
async fn once_get_checks_the_declared_sha256_that_only_the_recipient_can_check() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    // Above the read-back limit (64 MiB) a multipart upload's declared digest is taken as the
    // sender's word: here it is wrong, and the recipient's client must notice.
    let server = Server::start_on(Storage::S3(bucket), &[("ONCE_UPLOAD_PART_SIZE", "16MiB")]);
    let bytes = payload(65 * MIB as usize, 5);
    let share = create_share(
        &server,
        json!({
            "filename": "claimed.bin", "size": bytes.len(), "max_downloads": 2,
            "sha256": sha256_hex(b"something else entirely"),
        }),
    )
    .await;
    let parts = share.json["upload"]["multipart"]["parts"]
        .as_array()
        .unwrap();
    let mut receipts = Vec::new();
    let mut offset = 0;
    for part in parts {
        let size = part["size"].as_u64().unwrap() as usize;
        let response = client()
            .put(part["url"].as_str().unwrap())
            .body(bytes[offset..offset + size].to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        receipts.push(json!({
            "part_number": part["number"],
            "etag": response.headers()["etag"].to_str().unwrap(),
        }));
        offset += size;
    }
    let completed = client()
        .post(share.json["upload"]["complete_url"].as_str().unwrap())
        .header("Authorization", server.auth())
        .json(&json!({ "parts": receipts }))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);

    let inbox = tempfile::tempdir().unwrap();
    let output = once_client(&server, inbox.path(), &["get", &share.url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
    assert!(!inbox.path().join("claimed.bin").exists());
    assert!(inbox.path().join("claimed.bin.corrupt").exists());
    assert!(
        !inbox.path().join("claimed.bin.part.once").exists(),
        "a damaged download is not resumed"
    );

    let piped = once_client(&server, inbox.path(), &["get", &share.url, "-o", "-"]);
    assert!(
        !piped.status.success(),
        "a mismatch on stdout fails the command"
    );
    assert_eq!(piped.stdout.len(), bytes.len());
}

#[tokio::test]
async fn serve_refuses_to_start_on_a_bucket_that_neither_refuses_overwrites_nor_keeps_versions() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    // s3s-fs has no versioning; behind this proxy it also seems to accept overwrites.
    let proxy = FaultyProxy::ignoring_conditional_writes(&bucket.endpoint);
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .envs(bucket.env())
        .env("ONCE_S3_ENDPOINT", &proxy.endpoint)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "it never listened");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("accepted a second PUT") && stderr.contains("no versioning"),
        "{stderr}"
    );
    assert!(bucket.objects().is_empty(), "the probe object was removed");
}

#[tokio::test]
async fn reap_aborts_the_multipart_upload_of_a_server_that_crashed_mid_upload() {
    let Some(bucket) = VersionedS3TestServer::start() else {
        return;
    };
    let mut server = Server::start_on(
        Storage::Versioned(bucket),
        &[
            ("ONCE_UPLOAD_PART_SIZE", "5MiB"),
            ("ONCE_UPLOAD_GRACE", "0s"),
            ("ONCE_ORPHAN_GRACE", "0s"),
        ],
    );
    // A ticket upload in progress: recorded by its share, so it must survive the reaper.
    let ticket = create_share(&server, json!({"filename": "t.bin", "size": 6 * MIB})).await;
    assert!(ticket.json["upload"]["multipart"].is_object());
    assert_eq!(server.versioned_bucket().pending_multipart_uploads(), 1);

    // An upload through the server, which streams it to the bucket in 8 MiB parts...
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!(
            "PUT /api/v1/files/big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
             Content-Length: {}\r\n\r\n",
            server.addr,
            server.auth(),
            32 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    std::io::Write::write_all(&mut stream, &payload(12 * MIB as usize, 3)).unwrap();
    for _ in 0..100 {
        if server.versioned_bucket().pending_multipart_uploads() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.versioned_bucket().pending_multipart_uploads(), 2);
    // ...until the server dies: nobody recorded that upload id.
    server.kill();
    drop(stream);

    let report = server.reap();
    assert!(report.contains("1 stale uploads"), "{report}");
    assert_eq!(
        server.versioned_bucket().pending_multipart_uploads(),
        1,
        "only the ticket's upload, which its share records, is left"
    );
    assert_eq!(server.versioned_bucket().version_count(), 0);
}

#[tokio::test]
async fn once_send_retries_a_complete_whose_connection_was_cut() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    let server = Server::start_on(Storage::S3(bucket), &[]);
    // Between the client and the server: the first `complete` never arrives.
    let proxy = FaultyProxy::cutting(&server.base, b"/complete", 0);
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(300_000, 12);
    std::fs::write(work.path().join("notes.txt"), &bytes).unwrap();
    let output = client_command(&server, work.path(), &["send", "notes.txt", "--no-encrypt"])
        .env("ONCE_SERVER", &proxy.endpoint)
        .output()
        .unwrap();
    let link = stdout(&output).trim().to_owned();
    assert_eq!(proxy.cuts(), 1, "the complete was not cut");
    let (_, body) = download(&link).await;
    assert!(body == bytes);
}
