//! What the faults review found beyond slow clients: fetchers that must not burn links,
//! readiness that tells the truth, the headers every answer carries, the JSON error shape for
//! every refusal, the upload window a caller may shorten, and uploads in flight per request URL.

use crate::harness::*;

/// The user agents (with their Accept) that claimed shares before: the Google snippet
/// fetcher, Yahoo Slurp, HeadlessChrome, IE11, Edge, and a browser sending `Accept: */*`.
const FETCHERS_THAT_MUST_NOT_CLAIM: &[(&str, &str)] = &[
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/W.X.Y.Z Mobile Safari/537.36 (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)",
        "*/*",
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "*/*",
    ),
    (
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "*/*",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        "*/*",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
        "*/*",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        "*/*",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.140 Safari/537.36 Edge/17.17134",
        "*/*",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "*/*",
    ),
];

#[tokio::test]
async fn every_listed_fetcher_leaves_the_share_claimable() {
    let server = Server::start();
    let bytes = payload(100, 1);
    let share = share_bytes(&server, "report.pdf", &bytes, 1).await;
    for (user_agent, accept) in FETCHERS_THAT_MUST_NOT_CLAIM {
        let response = client()
            .get(&share.url)
            .header("User-Agent", *user_agent)
            .header("Accept", *accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{user_agent}");
    }
    assert_eq!(owner_view(&server, &share.id).await["downloads_left"], 1);
    let (_, downloaded) = download(&share.url).await;
    assert_eq!(downloaded, bytes);
}

#[tokio::test]
async fn readiness_fails_when_uploads_cannot_be_written() {
    let server = Server::start();
    if server.is_s3() {
        return; // The staging directory is the embedded store's; S3 readiness is its bucket.
    }
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let tmp = server.data_dir().join("tmp");
    assert!(tmp.is_dir(), "{tmp:?}");
    // Root ignores permission bits, so swap the directory for a file instead.
    std::fs::rename(&tmp, server.data_dir().join("tmp.away")).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let broken = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(broken.status(), 503);
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(server.data_dir().join("tmp.away"), &tmp).unwrap();
    let healed = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(healed.status(), 200);
}

#[tokio::test]
async fn answers_carry_nosniff_no_store_and_downloads_a_sandbox() {
    let server = Server::start();
    let created = client()
        .post(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(created.headers()[name], value, "{name} on JSON");
    }
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.headers()["cache-control"], "no-store");
    let page = client()
        .get(server.url("/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");

    if !server.is_s3() {
        let share = share_bytes(&server, "page.html", b"<script>alert(1)</script>", 1).await;
        let (headers, _) = download(&share.url).await;
        assert_eq!(headers["content-security-policy"], "sandbox");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "private, no-store");
    }
}

#[tokio::test]
async fn a_path_that_is_not_utf8_gets_the_json_error_shape() {
    let server = Server::start();
    let response = client()
        .get(server.url("/s/%FF%FE"))
        .header("Accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "invalid_path".into()));
}

#[tokio::test]
async fn a_caller_may_ask_for_a_shorter_upload_window_but_not_a_longer_one() {
    let server = Server::start();
    let share = create_share(
        &server,
        serde_json::json!({"filename": "a.bin", "size": 1, "upload_expires_in": 30}),
    )
    .await;
    let created = time::OffsetDateTime::parse(
        share.json["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let window_ends = time::OffsetDateTime::parse(
        share.json["upload_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((window_ends - created).whole_seconds(), 30);
    let too_long = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .json(&serde_json::json!({"filename": "a.bin", "size": 1, "upload_expires_in": 86400}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(too_long).await, (400, "invalid_expiry".into()));
}

#[tokio::test]
async fn one_request_url_takes_only_so_many_uploads_at_once() {
    let server = Server::start_with(&[("ONCE_REQUEST_UPLOADS_IN_FLIGHT", "1")]);
    let created = create_request(&server, serde_json::json!({})).await;
    let url = created["url"].as_str().unwrap().to_owned();
    // The first upload stays open: its body never finishes.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender.send(Ok(vec![b'a'; 1024])).await.unwrap();
    let stream = futures_stream(receiver);
    let first_url = url.clone();
    let first = tokio::spawn(async move {
        client()
            .put(&first_url)
            .header("Content-Length", "4096")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = client().put(&url).body("second").send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(error_code(second).await, (429, "uploads_in_flight".into()));
    // Once the first gives up, the slot is free again, and the URL still takes its file. The
    // client drops the cut connection at once; the server notices a moment later, so allow it
    // a few seconds to let the slot go.
    drop(sender);
    let _ = first.await;
    let mut status = 0;
    for _ in 0..50 {
        status = client()
            .put(&url)
            .body("third")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201);
}

/// A receiver as the byte stream reqwest sends.
fn futures_stream(
    receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

#[tokio::test]
async fn the_server_log_in_a_file_is_plain_text() {
    let server = Server::start();
    share_bytes(&server, "a.txt", b"hello", 1).await;
    let log = server.log();
    assert!(log.contains("once is serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a log file: {log:?}"
    );
    assert!(
        !log.contains("Some("),
        "Rust debug output in the log: {log}"
    );
}
