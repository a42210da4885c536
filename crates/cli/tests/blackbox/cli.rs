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
    let link = link_of(
        &server,
        work.path(),
        &["send", name, "--downloads", "1", "--expires", "1h"],
    );
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
    let link = link_of(&server, work.path(), &["send", "big.bin", "-q"]);

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
    let url = link_of(
        &server,
        work.path(),
        &[
            "request",
            "--max-size",
            "1MB",
            "--expires",
            "1d",
            "--no-encrypt",
        ],
    );
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
    let link = link_of(
        &server,
        work.path(),
        &["send", "s.txt", "-n", "2", "--no-encrypt"],
    );
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

#[tokio::test]
async fn every_command_accepts_links_as_people_paste_them() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("p.txt"), b"pasted").unwrap();
    let link = link_of(&server, work.path(), &["send", "p.txt", "-n", "4", "-q"]);

    let inbox = tempfile::tempdir().unwrap();
    for (pasted, output) in [
        (format!("{link}/"), "slash.txt"),
        (format!("'{link}'"), "single.txt"),
        (format!("\"{link}\""), "double.txt"),
        (format!("<{link}/>"), "angle.txt"),
    ] {
        stdout(&once_client(
            &server,
            inbox.path(),
            &["get", &pasted, "-o", output, "-q"],
        ));
        assert_eq!(
            std::fs::read(inbox.path().join(output)).unwrap(),
            b"pasted",
            "{pasted}"
        );
    }

    // A server given as host:port, as people write it, with no scheme: the key is not sent
    // to a guess, but the refusal names the URL to use, and that URL works.
    let refused = client_command(&server, work.path(), &["status", &format!("{link}/")])
        .env("ONCE_SERVER", &server.addr)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    let meant = said
        .trim_end()
        .rsplit_once("did you mean ")
        .and_then(|(_, url)| url.strip_suffix('?'))
        .unwrap_or_else(|| panic!("no suggestion in {said}"));
    assert_eq!(meant, server.base);
    let status = client_command(&server, work.path(), &["status", &format!("{link}/")])
        .env("ONCE_SERVER", meant)
        .output()
        .unwrap();
    let status = stdout(&status);
    assert!(status.contains("0 of 4"), "{status}");
    stdout(&once_client(
        &server,
        work.path(),
        &["revoke", &format!("<{link}>")],
    ));
}

#[tokio::test]
async fn limits_are_read_and_reported_in_human_units() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let bare = once_client(&server, work.path(), &["request", "--max-size", "100"]);
    assert!(!bare.status.success());
    let said = String::from_utf8_lossy(&bare.stderr);
    assert!(said.contains("100 what? write 100MB or 100MiB"), "{said}");

    let huge = once_client(&server, work.path(), &["request", "--max-size", "100TB"]);
    let said = String::from_utf8_lossy(&huge.stderr);
    assert!(said.contains("allowed size of 10 GiB"), "{said}");

    std::fs::write(work.path().join("e.txt"), b"expiry").unwrap();
    let long = once_client(&server, work.path(), &["send", "e.txt", "--expires", "60d"]);
    let said = String::from_utf8_lossy(&long.stderr);
    assert!(said.contains("at most 30d"), "{said}");

    let sent = once_client(&server, work.path(), &["send", "e.txt", "--expires", "2d"]);
    stdout(&sent);
    let said = String::from_utf8_lossy(&sent.stderr);
    assert!(said.contains("(in 2d)"), "{said}");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_in_one_line_with_a_hint() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("u.txt"), b"unreachable").unwrap();
    // A loopback port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for args in [
        &["send", "u.txt"][..],
        &["requests"],
        &["status", "AAAAAAAAAAAAAAAAAAAAAA"],
    ] {
        let output = client_command(&server, work.path(), args)
            .env("ONCE_SERVER", format!("http://{closed}"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let said = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            said,
            format!(
                "once: cannot reach the once server at http://{closed}: connection refused \
                 (is `once serve` running there? check ONCE_SERVER or --server)\n"
            ),
            "{args:?}"
        );
    }
}
