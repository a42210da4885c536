//! Notes people leave each other: the sender's note on a share, and an upload request's note
//! and `from`, through the CLI and the API of a real server.

use crate::harness::*;

/// The id at the end of a share link or request URL.
fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn share_sent_with_a_note_shows_it_in_the_owner_view() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("slides.pdf"), b"%PDF-1.7").unwrap();
    let note = "Hi Bob,\n\tthe slides from Friday.";
    let sent = stdout(&once_client(
        &server,
        work.path(),
        &[
            "send",
            "slides.pdf",
            "--no-encrypt",
            "--note",
            &format!("  {note}\r\n"),
        ],
    ));
    let link = sent.trim();
    let view = owner_view(&server, last_segment(link)).await;
    assert_eq!(view["note"], note, "{view}");

    let status = stdout(&once_client(&server, work.path(), &["status", link]));
    assert!(
        status.contains("note            Hi Bob,\n                \tthe slides from Friday.\n"),
        "{status}"
    );

    // Without one, the view says so with null and `status` prints no note line.
    let plain = share_bytes(&server, "plain.txt", b"plain", 1).await;
    let view = owner_view(&server, &plain.id).await;
    assert!(view["note"].is_null(), "{view}");
    let status = stdout(&once_client(&server, work.path(), &["status", &plain.url]));
    assert!(
        !status.lines().any(|line| line.starts_with("note")),
        "{status}"
    );
}

#[tokio::test]
async fn too_long_note_is_refused_with_invalid_note_and_creates_nothing() {
    let server = Server::start();
    let create = |note: String| {
        client()
            .post(server.url("/api/v1/shares"))
            .header("Authorization", server.auth())
            .json(&serde_json::json!({"filename": "a.txt", "size": 1, "note": note}))
            .send()
    };
    let refused = create("x".repeat(1001)).await.unwrap();
    assert_eq!(error_code(refused).await, (400, "invalid_note".into()));
    let control = create("bell\u{7}".into()).await.unwrap();
    assert_eq!(error_code(control).await, (400, "invalid_note".into()));
    let (status, listed) = api_get(&server, "/api/v1/shares").await;
    assert_eq!(status, 200);
    assert_eq!(listed["shares"], serde_json::json!([]), "{listed}");

    // The CLI refuses it before uploading anything.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"a").unwrap();
    let long = "x".repeat(1001);
    let output = once_client(&server, work.path(), &["send", "a.txt", "--note", &long]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("longer than 1000 characters"), "{stderr}");
    let (_, listed) = api_get(&server, "/api/v1/shares").await;
    assert_eq!(listed["shares"], serde_json::json!([]), "{listed}");

    // The limit counts characters: 1000 two-byte characters are one note.
    let accepted = create("é".repeat(1000)).await.unwrap();
    assert_eq!(accepted.status(), 201);
}

#[tokio::test]
async fn request_with_a_note_and_from_shows_both_in_the_requester_view() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let note = "The signed contract, please.\nPage 3 too.";
    let url = stdout(&once_client(
        &server,
        work.path(),
        &[
            "request",
            "--note",
            note,
            "--from",
            " Alice (accounting) ",
            "--no-encrypt",
        ],
    ))
    .trim()
    .to_owned();
    let id = last_segment(&url);
    let view = request_view(&server, id).await;
    assert_eq!(view["note"], note, "{view}");
    assert_eq!(view["from"], "Alice (accounting)", "{view}");

    // The uploader sees both at the request URL.
    let open: serde_json::Value = client()
        .get(&url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["note"], note, "{open}");
    assert_eq!(open["from"], "Alice (accounting)", "{open}");

    let listing = stdout(&once_client(&server, work.path(), &["requests"]));
    assert!(listing.contains("from  Alice (accounting)\n"), "{listing}");
    assert!(
        listing.contains("note  The signed contract, please.\n"),
        "{listing}"
    );

    // The share the upload becomes has no note: the uploader wrote none.
    let uploaded = client()
        .put(format!("{url}/contract.pdf"))
        .body(b"%PDF".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let view = request_view(&server, id).await;
    assert_eq!(view["state"], "fulfilled", "{view}");
    assert!(view["share"]["note"].is_null(), "{view}");
    assert_eq!(view["note"], note, "{view}");
}

#[tokio::test]
async fn request_with_a_multi_line_from_or_long_note_is_refused_and_creates_nothing() {
    let server = Server::start();
    for body in [
        serde_json::json!({"from": "Alice\nBob"}),
        serde_json::json!({"from": "a".repeat(101)}),
        serde_json::json!({"note": "n".repeat(1001)}),
    ] {
        let response = client()
            .post(server.url("/api/v1/requests"))
            .header("Authorization", server.auth())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (400, "invalid_note".into()));
    }
    let (status, listed) = api_get(&server, "/api/v1/requests").await;
    assert_eq!(status, 200);
    assert_eq!(listed["requests"], serde_json::json!([]), "{listed}");
    // Absent and blank are the same: no note, no name.
    let view = create_request(&server, serde_json::json!({"note": "  ", "from": ""})).await;
    assert!(view["note"].is_null() && view["from"].is_null(), "{view}");
}
