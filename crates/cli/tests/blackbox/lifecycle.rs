//! Leases, resumable downloads, expiry and the reaper, crashes, hostile file names, start-up with
//! no configuration and graceful shutdown.

use std::time::Duration;

use crate::harness::*;
use serde_json::json;

async fn claim_location(link: &str) -> String {
    let response = claim(link).await;
    assert_eq!(response.status(), 303);
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn range_get(url: &str, from: usize) -> reqwest::Response {
    client()
        .get(url)
        .header("Range", format!("bytes={from}-"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn interrupted_download_resumes_with_range_inside_the_lease() {
    let server = Server::start();
    let bytes = payload(3 * 1024 * 1024, 11);
    let share = share_bytes(&server, "big.bin", &bytes, 1).await;
    let location = claim_location(&share.url).await;
    let (stream, first_half) = tokio::task::spawn_blocking({
        let location = location.clone();
        move || partial_get(&location, 1024 * 1024)
    })
    .await
    .unwrap();
    drop(stream);
    let response = range_get(&location, first_half.len()).await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"].to_str().unwrap(),
        format!(
            "bytes {}-{}/{}",
            first_half.len(),
            bytes.len() - 1,
            bytes.len()
        )
    );
    let mut whole = first_half;
    whole.extend_from_slice(&response.bytes().await.unwrap());
    assert!(whole == bytes, "resumed download differs");
    // The link itself stays used up; only the lease URL resumes.
    assert_eq!(claim(&share.url).await.status(), 410);
    let unsatisfiable = range_get(&location, bytes.len()).await;
    assert_eq!(unsatisfiable.status(), 416);
}

#[tokio::test]
async fn download_url_dies_with_the_lease_and_the_reaper_then_removes_the_bytes() {
    let server = Server::start_with(&[("ONCE_CLAIM_LEASE", "1s")]);
    let share = share_bytes(&server, "a.txt", b"leased", 1).await;
    let location = claim_location(&share.url).await;
    assert_eq!(server.blob_files().len(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = error_code(client().get(&location).send().await.unwrap()).await;
    // On S3 the bucket refuses the expired presigned URL (with its own XML error).
    let expected = if server.is_s3() {
        (403, String::new())
    } else {
        (403, "url_expired".into())
    };
    assert_eq!(expired, expected);
    server.reap();
    assert!(
        server.blob_files().is_empty(),
        "bytes still on disk after the lease"
    );
    assert_eq!(
        claim(&share.url).await.status(),
        410,
        "a reaped share still answers 410"
    );
}

#[tokio::test]
async fn expired_share_gets_410_and_reap_removes_its_bytes() {
    let server = Server::start();
    let share = create_share(
        &server,
        json!({"filename": "e.txt", "size": 7, "expires_in": 1}),
    )
    .await;
    send_to_ticket(&server, &share, b"expires".to_vec())
        .await
        .unwrap();
    assert_eq!(server.blob_files().len(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (410, "share_expired".into())
    );
    let report = server.reap();
    assert!(report.contains("reaped 1 shares"));
    assert!(server.blob_files().is_empty());
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (410, "share_expired".into())
    );
    // Idempotent: a second pass finds nothing and fails on nothing.
    assert!(server.reap().contains("reaped 0 shares"));
}

#[tokio::test]
async fn built_in_reaper_retires_revoked_shares() {
    let server = Server::start_with(&[("ONCE_REAP_INTERVAL", "200ms")]);
    let share = share_bytes(&server, "r.txt", b"revoke me", 1).await;
    let response = client()
        .delete(server.url(&format!("/api/v1/shares/{}", share.id)))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // Revoking deletes the bytes at once; the reaper then retires the share.
    assert!(server.blob_files().is_empty());
    for _ in 0..50 {
        if owner_view(&server, &share.id).await["state"] == "gone" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        owner_view(&server, &share.id).await["state"],
        "gone",
        "the built-in reaper did not run"
    );
}

#[tokio::test]
async fn hostile_file_names_cannot_escape_the_data_dir_or_inject_headers() {
    let server = Server::start();
    for (raw, shown) in [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        (
            "evil\r\nSet-Cookie: owned=1\r\n.txt",
            "evilSet-Cookie: owned=1.txt",
        ),
    ] {
        let share = share_bytes(&server, raw, b"payload", 1).await;
        assert_eq!(share.json["filename"], shown);
        let (headers, body) = download(&share.url).await;
        assert_eq!(body, b"payload");
        assert!(headers.get("set-cookie").is_none(), "header injected");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert_eq!(
            once_domain::Filename::from_content_disposition(disposition)
                .unwrap()
                .as_str(),
            shown
        );
    }
    // curl-style uploads with encoded traversal in the path segment.
    let response = client()
        .put(server.url("/api/v1/files/..%2F..%2Fetc%2Fshadow"))
        .header("Authorization", server.auth())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Nothing was written outside blobs/ and tmp/.
    let mut entries: Vec<String> = files_in(&server.data_dir())
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    entries.retain(|name| !name.starts_with("once.db"));
    let expected: &[&str] = if server.is_s3() {
        &["master.key"]
    } else {
        &["blobs", "master.key", "staging", "tmp"]
    };
    assert_eq!(entries, expected);
    for blob in server.blob_files() {
        let name = blob.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            once_domain::BlobKey::parse(&name).is_ok(),
            "unexpected file {name}"
        );
    }
    assert!(!server.dir.path().join("etc").exists());
}

#[tokio::test]
async fn killed_mid_upload_the_restarted_server_serves_no_partial_file_and_the_ticket_still_works()
{
    let mut server = Server::start_with(&[("ONCE_ORPHAN_GRACE", "0s")]);
    let bytes = payload(2 * 1024 * 1024, 5);
    let share = create_share(&server, json!({"filename": "a.bin", "size": bytes.len()})).await;
    if server.is_s3() {
        // The bytes go to the bucket, not through the server: crash the server while a
        // client's upload to the bucket breaks off, then finish with the same ticket.
        cut_off_upload(&share.upload_url, bytes.len(), &bytes[..bytes.len() / 2]);
        server.restart();
        assert!(
            server.blob_files().is_empty(),
            "a partial upload became visible"
        );
        assert_eq!(
            error_code(claim(&share.url).await).await,
            (404, "share_not_ready".into())
        );
        send_to_ticket(&server, &share, bytes.clone())
            .await
            .expect("the ticket is still usable");
        assert!(download(&share.url).await.1 == bytes);
        return;
    }
    let upload_url = share.upload_url.clone();
    let half = bytes[..bytes.len() / 2].to_vec();
    let declared = bytes.len();
    // Start the upload, then SIGKILL the server while the body is half sent.
    let uploader = std::thread::spawn(move || {
        let parsed = url::Url::parse(&upload_url).unwrap();
        let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        use std::io::Write;
        write!(
            stream,
            "PUT {}?{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n",
            parsed.path(),
            parsed.query().unwrap()
        )
        .unwrap();
        stream.write_all(&half).unwrap();
        stream.flush().unwrap();
        stream
    });
    let stream = uploader.join().unwrap();
    for _ in 0..50 {
        if !server.temp_files().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.temp_files().len(),
        1,
        "the upload should be in progress"
    );
    server.restart();
    drop(stream);
    assert!(
        server.blob_files().is_empty(),
        "a partial upload became visible"
    );
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (404, "share_not_ready".into())
    );
    send_to_ticket(&server, &share, bytes.clone())
        .await
        .expect("the ticket is still usable");
    assert!(download(&share.url).await.1 == bytes);
    // The crash left a temporary file; the reaper removes it.
    assert_eq!(server.temp_files().len(), 1);
    // Grace 0s means "older than now"; file times are compared at whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    server.reap();
    assert!(
        server.temp_files().is_empty(),
        "reaper left the crashed upload's temporary file"
    );
}

#[tokio::test]
async fn killed_mid_download_the_claim_stays_claimed_and_resumes_after_restart() {
    let mut server = Server::start();
    let bytes = payload(4 * 1024 * 1024, 9);
    let share = share_bytes(&server, "d.bin", &bytes, 1).await;
    let other = share_bytes(&server, "untouched.bin", b"untouched", 1).await;
    let location = claim_location(&share.url).await;
    let (stream, first) = tokio::task::spawn_blocking({
        let location = location.clone();
        move || partial_get(&location, 1024 * 1024)
    })
    .await
    .unwrap();
    server.restart();
    drop(stream);
    assert_eq!(
        claim(&share.url).await.status(),
        410,
        "the answered claim was lost"
    );
    let response = range_get(&location, first.len()).await;
    assert_eq!(response.status(), 206);
    let mut whole = first;
    whole.extend_from_slice(&response.bytes().await.unwrap());
    assert!(whole == bytes);
    assert_eq!(
        download(&other.url).await.1,
        b"untouched",
        "an unclaimed share was affected"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn serve_with_no_configuration_starts_and_serves_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    // A port of our own, since the default 8080 may be taken on a shared machine; everything
    // else is default: data directory, database, secrets.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(
        line.trim(),
        format!("once listening on http://127.0.0.1:{port}")
    );
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(dir.path().join("once-data").join("once.db").exists());
    // The data directory holds the master key and every file: its owner only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("once-data"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");
    let output = std::process::Command::new(BIN)
        .args(["keys", "create", "--name", "me"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let response = client()
        .put(format!("{base}/api/v1/files/hello.txt"))
        .bearer_auth(&token)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let link = response.text().await.unwrap().trim().to_owned();
    assert_eq!(download(&link).await.1, b"hello");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_an_in_flight_download_finish_then_exits_cleanly() {
    let mut server = Server::start();
    let bytes = payload(8 * 1024 * 1024, 2);
    let share = share_bytes(&server, "g.bin", &bytes, 1).await;
    let location = claim_location(&share.url).await;
    let (mut stream, first) = tokio::task::spawn_blocking({
        let location = location.clone();
        move || partial_get(&location, 64 * 1024)
    })
    .await
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused while the old one keeps streaming to the end. (Only the
    // body is read: an S3 server keeps the connection open afterwards.)
    let remaining = bytes.len() - first.len();
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = vec![0; remaining];
        std::io::Read::read_exact(&mut stream, &mut rest).unwrap();
        rest
    })
    .await
    .unwrap();
    let mut whole = first;
    whole.extend_from_slice(&rest);
    assert!(
        whole == bytes,
        "the in-flight download was cut ({} of {} bytes)",
        whole.len(),
        bytes.len()
    );
    let exit = server.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_never_name_a_share() {
    let server = Server::start();
    let share = share_bytes(&server, "m.bin", &payload(10, 1), 1).await;
    download(&share.url).await;
    assert_eq!(claim(&share.url).await.status(), 410);
    assert_eq!(get_json(&server.url("/no/such/page")).await.status(), 404);
    let text = metrics_text(&server).await;
    for expected in [
        "once_http_requests_total{route=\"/s/{id}\",method=\"GET\",status=\"303\"} 1",
        "once_http_requests_total{route=\"/s/{id}\",method=\"GET\",status=\"410\"} 1",
        "once_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
    ] {
        assert!(
            text.lines().any(|line| line == expected),
            "missing {expected:?} in:\n{text}"
        );
    }
    // A histogram with buckets (not a summary), by route.
    assert!(
        text.contains(
            "once_http_request_duration_seconds_bucket{route=\"/s/{id}\",method=\"GET\",le=\"0.1\"}"
        ),
        "{text}"
    );
    assert!(!text.contains(&share.id), "a share id in the metrics");
}

#[tokio::test]
async fn metrics_count_claims_and_bytes_through_the_server() {
    let server = Server::start();
    let share = share_bytes(&server, "m.bin", &payload(1000, 1), 1).await;
    download(&share.url).await;
    assert_eq!(claim(&share.url).await.status(), 410);
    let text = metrics_text(&server).await;
    let mut expected = vec![
        "once_shares_created_total 1",
        "once_claims_total{outcome=\"claimed\"} 1",
        "once_claims_total{outcome=\"refused\"} 1",
        "once_uploads_total{outcome=\"published\"} 1",
    ];
    if server.is_s3() {
        // The bytes went to and from the bucket directly: none through the server.
        assert!(!text.contains("once_bytes_sent_total"), "{text}");
    } else {
        expected.extend([
            "once_bytes_received_total 1000",
            "once_bytes_sent_total 1000",
        ]);
    }
    for expected in expected {
        assert!(
            text.lines().any(|line| line == expected),
            "missing {expected:?} in:\n{text}"
        );
    }
}
