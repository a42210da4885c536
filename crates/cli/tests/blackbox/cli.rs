//! The `once` client commands end to end: `send`, `get` (including resuming after the client
//! itself was killed), `request`/`requests`, `status` and `revoke`, against a real server.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

#[tokio::test]
async fn send_then_get_round_trips_and_the_link_is_dead_after() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(3 * 1024 * 1024 + 17, 4);
    let name = "quarterly report (final).pdf";
    std::fs::write(work.path().join(name), &bytes).unwrap();
    let link = stdout(&once_client(
        &server,
        work.path(),
        &["send", name, "--downloads", "1", "--expires", "1h"],
    ))
    .trim()
    .to_owned();
    assert!(link.starts_with(&format!("{}/s/", server.base)), "{link}");

    let inbox = tempfile::tempdir().unwrap();
    let output = once_client(&server, inbox.path(), &["get", &link]);
    stdout(&output);
    let received = std::fs::read(inbox.path().join(name)).expect("saved under the sender's name");
    assert!(received == bytes);

    let again = once_client(&server, inbox.path(), &["get", &link, "-o", "second.pdf"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("share_consumed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!inbox.path().join("second.pdf").exists());
}

#[tokio::test]
async fn send_prints_a_qr_code_on_request() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"qr").unwrap();
    let printed = stdout(&once_client(
        &server,
        work.path(),
        &["send", "a.txt", "--qr"],
    ));
    let mut lines = printed.lines();
    assert!(lines.next().unwrap().contains("/s/"));
    assert!(
        printed.contains('█') || printed.contains('▀'),
        "no QR code in {printed:?}"
    );
}

#[tokio::test]
async fn get_resumes_after_the_client_was_killed_without_claiming_again() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(200 * 1024 * 1024, 8);
    std::fs::write(work.path().join("big.bin"), &bytes).unwrap();
    let link = stdout(&once_client(
        &server,
        work.path(),
        &["send", "big.bin", "-q"],
    ))
    .trim()
    .to_owned();

    let inbox = tempfile::tempdir().unwrap();
    let part = inbox.path().join("out.bin.part");
    let mut child = client_command(
        &server,
        inbox.path(),
        &["get", &link, "-o", "out.bin", "-q"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Kill the client as soon as some (not all) bytes are on disk.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have > 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "download never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::metadata(&part).expect("partial file kept").len();
    assert!(
        partial < bytes.len() as u64,
        "the download finished before the kill; nothing to resume"
    );
    assert!(!inbox.path().join("out.bin").exists());

    // The share allows one download and it was claimed: only a resume can finish it.
    stdout(&once_client(
        &server,
        inbox.path(),
        &["get", &link, "-o", "out.bin", "-q"],
    ));
    let received = std::fs::read(inbox.path().join("out.bin")).unwrap();
    assert!(received == bytes, "resumed file differs");
    assert!(
        !part.exists() && !inbox.path().join("out.bin.part.once").exists(),
        "leftovers after success"
    );
}

#[tokio::test]
async fn request_upload_then_requests_lists_the_share_link() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let url = stdout(&once_client(
        &server,
        work.path(),
        &["request", "--max-size", "1MB", "--expires", "1d"],
    ))
    .trim()
    .to_owned();
    assert!(url.starts_with(&format!("{}/r/", server.base)), "{url}");
    let response = client()
        .put(format!("{url}/scan.png"))
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let listing = stdout(&once_client(&server, work.path(), &["requests"]));
    assert!(listing.contains("fulfilled"), "{listing}");
    let link = listing
        .split_whitespace()
        .find(|word| word.contains("/s/"))
        .expect("share link listed")
        .to_owned();
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link, "-q"]));
    assert_eq!(
        std::fs::read(inbox.path().join("scan.png")).unwrap(),
        vec![7u8; 1000]
    );
}

#[tokio::test]
async fn status_and_revoke_work_on_links_and_ids() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("s.txt"), b"status").unwrap();
    let link = stdout(&once_client(
        &server,
        work.path(),
        &["send", "s.txt", "-n", "2"],
    ))
    .trim()
    .to_owned();
    let status = stdout(&once_client(&server, work.path(), &["status", &link]));
    assert!(
        status.contains("s.txt") && status.contains("available"),
        "{status}"
    );
    let id = link.rsplit('/').next().unwrap();
    stdout(&once_client(&server, work.path(), &["revoke", id]));
    assert_eq!(claim(&link).await.status(), 410);
}

#[tokio::test]
async fn missing_key_is_a_clear_error_before_any_upload() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"x").unwrap();
    let output = client_command(&server, work.path(), &["send", "a.txt"])
        .env_remove("ONCE_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no API key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
