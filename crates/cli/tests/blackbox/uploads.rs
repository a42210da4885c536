//! One-time upload slots: first complete upload wins, failed or partial uploads change nothing,
//! limits and checksums are enforced, and tickets expire on their own clock.

use crate::harness::*;
use serde_json::json;

/// What a refusal looks like depends on who refuses: on the embedded store the server does
/// (with our JSON codes), on S3 the bucket does, checking what the presigned URL signed.
fn expect_refusal(
    server: &Server,
    outcome: Result<(), (u16, String)>,
    fs: (u16, &str),
    s3: (u16, &str),
) {
    let (status, code) = outcome.expect_err("the upload should have been refused");
    let (want_status, want_code) = if server.is_s3() { s3 } else { fs };
    assert_eq!(status, want_status, "code {code}");
    if !want_code.is_empty() {
        assert_eq!(code, want_code);
    }
}

#[tokio::test]
async fn second_upload_to_a_ticket_is_refused_and_changes_nothing() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.txt", "size": 5})).await;
    send_to_ticket(&server, &share, b"first".to_vec())
        .await
        .unwrap();
    let second = send_to_ticket(&server, &share, b"other".to_vec()).await;
    // S3: the bucket refuses the second PUT (If-None-Match is signed into the URL).
    expect_refusal(
        &server,
        second,
        (409, "slot_used"),
        (412, "s3:PreconditionFailed"),
    );
    assert_eq!(download(&share.url).await.1, b"first");
    // The refused bytes never become the share's: on the embedded store they are kept aside
    // as evidence (one more blob, named by no share, recorded for the owner; webhooks.rs has
    // the whole story), and the bucket never took them at all.
    let blobs: Vec<Vec<u8>> = server
        .blob_files()
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    if server.is_s3() {
        assert_eq!(
            blobs,
            [b"first".to_vec()],
            "the refused upload left no object"
        );
    } else {
        assert_eq!(blobs.len(), 2, "the share's blob and the kept evidence");
        assert!(blobs.contains(&b"other".to_vec()));
        let refused = &owner_view(&server, &share.id).await["refused"];
        assert_eq!(refused[0]["kept"], true, "{refused}");
        assert_eq!(refused[0]["sha256"], sha256_hex(b"other"), "{refused}");
    }
    // Reporting completion again is refused (S3; the embedded store has nothing to complete)
    // and changes nothing either.
    let again = complete(&server, &share).await;
    if server.is_s3() {
        assert_eq!(again, Err((409, "slot_used".into())));
    } else {
        assert_eq!(again, Ok(()));
    }
    assert_eq!(owner_view(&server, &share.id).await["state"], "ready");
}

#[tokio::test]
async fn upload_cut_off_half_way_leaves_the_ticket_usable() {
    let server = Server::start();
    let bytes = payload(1024 * 1024, 3);
    let share = create_share(&server, json!({"filename": "a.bin", "size": bytes.len()})).await;
    cut_off_upload(&share.upload_url, bytes.len(), &bytes[..bytes.len() / 2]);
    // Not published: the link is not claimable and nothing is stored.
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (404, "share_not_ready".into())
    );
    let view = owner_view(&server, &share.id).await;
    assert_eq!(view["state"], "pending");
    assert_eq!(server.blob_files().len(), 0);
    assert_eq!(
        complete(&server, &share).await.map_err(|e| e.0),
        if server.is_s3() { Err(400) } else { Ok(()) }
    );
    send_to_ticket(&server, &share, bytes.clone())
        .await
        .unwrap();
    assert!(download(&share.url).await.1 == bytes);
    assert_eq!(
        server.temp_files().len(),
        0,
        "the cut-off upload left a temporary file"
    );
}

#[tokio::test]
async fn oversize_body_is_refused_and_nothing_is_published() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.bin", "size": 10})).await;
    let outcome = send_to_ticket(&server, &share, vec![1; 11]).await;
    // S3: the body length differs from the signed Content-Length.
    expect_refusal(&server, outcome, (413, "too_large"), (403, ""));
    assert_eq!(owner_view(&server, &share.id).await["state"], "pending");
    // A chunked body (no Content-Length) is cut off as soon as it passes the size.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 6]), Ok(vec![2; 6])];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = client()
        .put(&share.upload_url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    if !server.is_s3() {
        assert_eq!(error_code(response).await, (413, "too_large".into()));
    }
    assert!(server.blob_files().is_empty());
    send_to_ticket(&server, &share, vec![1; 10])
        .await
        .expect("the slot is still free");
}

#[tokio::test]
async fn short_body_is_rejected_and_nothing_published() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.bin", "size": 10})).await;
    let outcome = send_to_ticket(&server, &share, vec![1; 9]).await;
    expect_refusal(&server, outcome, (400, "size_mismatch"), (403, ""));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 4]), Ok(vec![2; 4])];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = client()
        .put(&share.upload_url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    if !server.is_s3() {
        assert_eq!(error_code(response).await, (400, "size_mismatch".into()));
    }
    assert_eq!(owner_view(&server, &share.id).await["state"], "pending");
    assert_eq!(error_code(claim(&share.url).await).await.0, 404);
    assert!(server.blob_files().is_empty());
}

#[tokio::test]
async fn wrong_sha256_is_rejected_and_nothing_published() {
    let server = Server::start();
    let share = create_share(
        &server,
        json!({"filename": "a.bin", "size": 4, "sha256": sha256_hex(b"good")}),
    )
    .await;
    let outcome = send_to_ticket(&server, &share, b"evil".to_vec()).await;
    // S3: the signed x-amz-checksum-sha256 makes the bucket answer BadDigest.
    expect_refusal(
        &server,
        outcome,
        (400, "checksum_mismatch"),
        (400, "s3:BadDigest"),
    );
    if server.is_s3() {
        // Some S3-compatible servers keep the object despite BadDigest; completing anyway is
        // caught by the server's own check, which removes the object so the slot stays free.
        let (status, code) = complete(&server, &share).await.unwrap_err();
        assert_eq!(status, 400);
        assert!(
            code == "checksum_mismatch" || code == "nothing_uploaded",
            "{code}"
        );
    }
    assert_eq!(owner_view(&server, &share.id).await["state"], "pending");
    assert!(server.blob_files().is_empty());
    send_to_ticket(&server, &share, b"good".to_vec())
        .await
        .unwrap();
    assert_eq!(
        owner_view(&server, &share.id).await["sha256"],
        sha256_hex(b"good")
    );
}

#[tokio::test]
async fn upload_after_the_ticket_expired_gets_403() {
    let server = Server::start_with(&[("ONCE_UPLOAD_EXPIRES_IN", "1s")]);
    let share = create_share(&server, json!({"filename": "a.txt", "size": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let outcome = send_to_ticket(&server, &share, b"x".to_vec()).await;
    expect_refusal(&server, outcome, (403, "upload_expired"), (403, ""));
    assert_eq!(
        owner_view(&server, &share.id).await["upload_attempts"],
        0,
        "changed nothing"
    );
    assert!(server.blob_files().is_empty());
}

#[tokio::test]
async fn tampered_upload_ticket_gets_403() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.txt", "size": 1})).await;
    let other = create_share(&server, json!({"filename": "b.txt", "size": 1})).await;
    // One ticket's signature on another ticket's target.
    let mut stolen = url::Url::parse(&share.upload_url).unwrap();
    stolen.set_path(url::Url::parse(&other.upload_url).unwrap().path());
    let stolen = stolen.to_string();
    assert_ne!(stolen, share.upload_url);
    expect_refusal(
        &server,
        send_to_url(&server, &share, &stolen, b"x".to_vec()).await,
        (403, "bad_url_signature"),
        (403, ""),
    );
    let tampered = tamper_signature(&share.upload_url);
    expect_refusal(
        &server,
        send_to_url(&server, &share, &tampered, b"x".to_vec()).await,
        (403, "bad_url_signature"),
        (403, ""),
    );
    assert!(server.blob_files().is_empty());
}

#[tokio::test]
async fn wrong_methods_and_oversize_json_bodies_get_json_errors() {
    let server = Server::start();
    let wrong_method = client()
        .delete(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong_method).await,
        (405, "method_not_allowed".into())
    );
    // Over the 64 KiB api_body_limit, and small enough that the whole body sits in the socket
    // buffers before the refusal: the server answers 413 from Content-Length without reading
    // it and closes, so a body the client is still writing would end in a broken pipe instead
    // of the answer (there is no lingering close yet).
    let huge = format!(r#"{{"filename": "{}"}}"#, "a".repeat(100 * 1024));
    let oversize = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(oversize).await, (413, "too_large".into()));
    let metrics = metrics_text(&server).await;
    assert!(
        !metrics.contains("once_shares_created_total"),
        "a refused request created a share:\n{metrics}"
    );
}

#[tokio::test]
async fn bad_share_requests_get_400_with_stable_codes_and_create_nothing() {
    let server = Server::start();
    let cases = [
        (json!({"filename": "..", "size": 1}), "invalid_filename"),
        (
            json!({"filename": "a", "size": 1, "max_downloads": 0}),
            "invalid_max_downloads",
        ),
        (
            json!({"filename": "a", "size": 1, "expires_in": 0}),
            "invalid_expiry",
        ),
        (
            json!({"filename": "a", "size": 1, "sha256": "abc"}),
            "invalid_sha256",
        ),
        // (A share without a size is an upload of unknown length, in parts: not an error.)
        (json!({"filename": "a", "size": "1"}), "invalid_json"),
        (
            json!({"filename": "a", "size": 1, "surprise": true}),
            "invalid_json",
        ),
    ];
    for (body, code) in cases {
        let response = post_share(&server, &body).await;
        assert_eq!(error_code(response).await, (400, code.into()), "{body}");
    }
    let response = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .json(&json!({"filename": "a", "size": 20u64 << 40}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (413, "too_large".into()));
}

#[tokio::test]
async fn upload_request_accepts_one_curl_upload_then_409() {
    let server = Server::start();
    let request = create_request(&server, json!({"max_size": 1000})).await;
    let url = request["url"].as_str().unwrap().to_owned();
    // `curl -T report.csv URL/` appends the file name.
    let response = client()
        .put(format!("{url}/report.csv"))
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let second = client()
        .put(format!("{url}/other.csv"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(second).await, (409, "slot_used".into()));

    let view = request_view(&server, request["id"].as_str().unwrap()).await;
    assert_eq!(view["state"], "fulfilled");
    assert_eq!(view["share"]["filename"], "report.csv");
    let link = view["share"]["url"].as_str().unwrap();
    assert_eq!(download(link).await.1, b"a,b\n1,2\n");
}

#[tokio::test]
async fn upload_request_refuses_oversize_and_stays_open() {
    let server = Server::start();
    let request = create_request(&server, json!({"max_size": 10, "filename": "fixed.txt"})).await;
    let url = request["url"].as_str().unwrap().to_owned();
    let response = client().put(&url).body(vec![0u8; 11]).send().await.unwrap();
    assert_eq!(error_code(response).await, (413, "too_large".into()));
    let response = client().put(&url).body(vec![0u8; 10]).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let listed: serde_json::Value = client()
        .get(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["requests"][0]["share"]["filename"], "fixed.txt");
}

#[tokio::test]
async fn upload_request_after_expiry_gets_403() {
    let server = Server::start();
    let request = create_request(&server, json!({"max_size": 10, "expires_in": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = client()
        .put(request["url"].as_str().unwrap())
        .body("late")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (403, "upload_expired".into()));
}
