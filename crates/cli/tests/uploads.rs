//! One-time upload slots: first complete upload wins, failed or partial uploads change nothing,
//! limits and checksums are enforced, and tickets expire on their own clock.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn second_upload_to_a_ticket_gets_409_and_changes_nothing() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.txt", "size": 5})).await;
    assert_eq!(
        upload(&share.upload_url, b"first".to_vec()).await.status(),
        201
    );
    let second = upload(&share.upload_url, b"other".to_vec()).await;
    assert_eq!(error_code(second).await, (409, "slot_used".into()));
    assert_eq!(download(&share.url).await.1, b"first");
    assert_eq!(
        server.blob_files().len(),
        1,
        "the refused upload left no blob"
    );
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
    assert_eq!(upload(&share.upload_url, bytes.clone()).await.status(), 201);
    assert!(download(&share.url).await.1 == bytes);
    assert_eq!(
        server.temp_files().len(),
        0,
        "the cut-off upload left a temporary file"
    );
}

#[tokio::test]
async fn oversize_body_gets_413_and_nothing_is_published() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.bin", "size": 10})).await;
    let response = upload(&share.upload_url, vec![1; 11]).await;
    assert_eq!(error_code(response).await, (413, "too_large".into()));
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
    assert_eq!(error_code(response).await, (413, "too_large".into()));
    assert_eq!(
        upload(&share.upload_url, vec![1; 10]).await.status(),
        201,
        "the slot is still free"
    );
}

#[tokio::test]
async fn short_body_is_rejected_and_nothing_published() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.bin", "size": 10})).await;
    let response = upload(&share.upload_url, vec![1; 9]).await;
    assert_eq!(error_code(response).await, (400, "size_mismatch".into()));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 4]), Ok(vec![2; 4])];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = client()
        .put(&share.upload_url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "size_mismatch".into()));
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
    let response = upload(&share.upload_url, b"evil".to_vec()).await;
    assert_eq!(
        error_code(response).await,
        (400, "checksum_mismatch".into())
    );
    assert_eq!(owner_view(&server, &share.id).await["state"], "pending");
    assert!(server.blob_files().is_empty());
    assert_eq!(
        upload(&share.upload_url, b"good".to_vec()).await.status(),
        201
    );
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
    let response = upload(&share.upload_url, b"x".to_vec()).await;
    assert_eq!(error_code(response).await, (403, "upload_expired".into()));
    assert_eq!(
        owner_view(&server, &share.id).await["upload_attempts"],
        0,
        "changed nothing"
    );
}

#[tokio::test]
async fn tampered_upload_ticket_gets_403() {
    let server = Server::start();
    let share = create_share(&server, json!({"filename": "a.txt", "size": 1})).await;
    let other = create_share(&server, json!({"filename": "b.txt", "size": 1})).await;
    let stolen = share.upload_url.replace(&share.id, &other.id);
    assert_eq!(
        error_code(upload(&stolen, b"x".to_vec()).await).await,
        (403, "bad_url_signature".into())
    );
    let longer = share.upload_url.replace("expires=", "expires=9");
    assert_eq!(
        error_code(upload(&longer, b"x".to_vec()).await).await.0,
        403
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
        (json!({"filename": "a"}), "invalid_request"),
        (
            json!({"filename": "a", "size": 1, "surprise": true}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let response = client()
            .post(server.url("/api/v1/shares"))
            .header("Authorization", server.auth())
            .json(&body)
            .send()
            .await
            .unwrap();
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

async fn create_request(server: &Server, body: serde_json::Value) -> serde_json::Value {
    let response = client()
        .post(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
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

    let view: serde_json::Value = client()
        .get(server.url(&format!(
            "/api/v1/requests/{}",
            request["id"].as_str().unwrap()
        )))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
