//! `once send` and `once get` with end-to-end encryption (`docs/encryption.md`), the real CLI
//! against the real server: round trips of the interesting record sizes and of a file in
//! several parts, passwords, links without their key, tampered ciphertext, a resumed send, what
//! the server's data directory holds, and `--no-encrypt`.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn encrypted_send_and_get_round_trip_files_of_0_1_65536_and_65537_bytes() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    for size in [0usize, 1, 65536, 65537] {
        let name = format!("file of {size} bytes.bin");
        let bytes = payload(size, size as u64);
        std::fs::write(work.path().join(&name), &bytes).unwrap();
        let link = link_of(&server, work.path(), &["send", &name, "-q"]);
        let (url, secret) = link.split_once('#').expect("the link carries its key");
        assert!(url.starts_with(&format!("{}/s/", server.base)), "{link}");
        assert_eq!(secret.len(), 43, "{link}");
        let id = url.rsplit('/').next().unwrap();
        let view = owner_view(&server, id).await;
        assert_eq!(view["encrypted"], Value::Bool(true), "{view}");
        assert_eq!(view["filename"], "encrypted", "{view}");
        assert_eq!(
            view["size"].as_u64().unwrap(),
            size as u64 + 16 * (size as u64).div_ceil(65536).max(1),
            "the server holds the ciphertext's size"
        );

        let inbox = tempfile::tempdir().unwrap();
        stdout(&once_client(&server, inbox.path(), &["get", &link, "-q"]));
        let received = std::fs::read(inbox.path().join(&name)).expect("saved under its name");
        assert!(received == bytes, "{size} bytes came back different");
        assert_eq!(
            files_in(inbox.path()).len(),
            1,
            "nothing but the file is left"
        );
    }
}

#[tokio::test]
async fn an_encrypted_file_in_several_parts_round_trips() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", "5MiB")]);
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(12 * MIB as usize + 12345, 3);
    std::fs::write(work.path().join("parts.bin"), &bytes).unwrap();
    let link = link_of(&server, work.path(), &["send", "parts.bin", "-q"]);
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(
        &server,
        inbox.path(),
        &["get", &link, "-o", "out.bin", "-q"],
    ));
    assert!(std::fs::read(inbox.path().join("out.bin")).unwrap() == bytes);
}

#[tokio::test]
async fn an_encrypted_folder_and_a_pipe_round_trip() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("album")).unwrap();
    std::fs::write(work.path().join("album/a.txt"), b"first").unwrap();
    std::fs::write(work.path().join("album/b.txt"), b"second").unwrap();
    let link = link_of(&server, work.path(), &["send", "album", "-q"]);
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(
        &server,
        inbox.path(),
        &["get", &link, "-x", "-q"],
    ));
    assert_eq!(
        std::fs::read(inbox.path().join("album/b.txt")).unwrap(),
        b"second"
    );

    let piped = client_command(&server, work.path(), &["send", "-", "-q"])
        .stdin(std::fs::File::open(work.path().join("album/a.txt")).unwrap())
        .output()
        .unwrap();
    let link = stdout(&piped).trim().to_owned();
    let output = once_client(&server, inbox.path(), &["get", &link, "-o", "-"]);
    assert_eq!(stdout(&output), "first");
}

#[tokio::test]
async fn a_wrong_password_claims_nothing_and_the_right_one_works_after() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("secret.txt"), b"behind a password").unwrap();
    std::fs::write(work.path().join("right"), "correct horse\n").unwrap();
    std::fs::write(work.path().join("wrong"), "battery staple\n").unwrap();
    let link = link_of(
        &server,
        work.path(),
        &["send", "secret.txt", "--password-file", "right", "-q"],
    );

    let inbox = tempfile::tempdir().unwrap();
    let wrong_file = work.path().join("wrong");
    let wrong = once_client(
        &server,
        inbox.path(),
        &[
            "get",
            &link,
            "--password-file",
            wrong_file.to_str().unwrap(),
        ],
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("wrong password"),
        "{}",
        stderr(&wrong)
    );
    assert!(
        files_in(inbox.path()).is_empty(),
        "a wrong password wrote something"
    );

    let no_password = once_client(&server, inbox.path(), &["get", &link]);
    assert!(
        !no_password.status.success(),
        "no terminal, no password file"
    );
    assert!(
        stderr(&no_password).contains("--password-file"),
        "{}",
        stderr(&no_password)
    );

    let right_file = work.path().join("right");
    stdout(&once_client(
        &server,
        inbox.path(),
        &[
            "get",
            &link,
            "--password-file",
            right_file.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read(inbox.path().join("secret.txt")).unwrap(),
        b"behind a password"
    );
}

#[tokio::test]
async fn a_link_without_its_key_is_incomplete_and_claims_nothing() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"keyed").unwrap();
    let link = link_of(&server, work.path(), &["send", "a.txt", "-q"]);

    let inbox = tempfile::tempdir().unwrap();
    let bare = once_client(&server, inbox.path(), &["get", without_key(&link)]);
    assert!(!bare.status.success());
    assert!(stderr(&bare).contains("incomplete"), "{}", stderr(&bare));
    assert!(files_in(inbox.path()).is_empty());

    let damaged = format!("{}#{}", without_key(&link), "A".repeat(43));
    let wrong_key = once_client(&server, inbox.path(), &["get", &damaged]);
    assert!(!wrong_key.status.success());
    assert!(
        stderr(&wrong_key).contains("does not open this share"),
        "{}",
        stderr(&wrong_key)
    );

    stdout(&once_client(&server, inbox.path(), &["get", &link]));
    assert_eq!(std::fs::read(inbox.path().join("a.txt")).unwrap(), b"keyed");
}

#[tokio::test]
async fn tampered_ciphertext_fails_the_get_and_leaves_no_output_file() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("t.bin"), payload(200_000, 9)).unwrap();
    let link = link_of(&server, work.path(), &["send", "t.bin", "-q"]);
    let blobs = server.blob_files();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let mut stored = std::fs::read(&blobs[0]).unwrap();
    stored[100_000] ^= 0x01;
    std::fs::write(&blobs[0], &stored).unwrap();

    let inbox = tempfile::tempdir().unwrap();
    let output = once_client(&server, inbox.path(), &["get", &link]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("tampered"), "{}", stderr(&output));
    assert!(
        files_in(inbox.path()).is_empty(),
        "left behind: {:?}",
        files_in(inbox.path())
    );
}

#[tokio::test]
async fn an_interrupted_encrypted_send_resumes_with_the_same_link() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", "5MiB")]);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("big.img");
    write_big_file(&original, 120);
    let mut first = client_command(&server, work.path(), &["send", "big.img", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let record = record_with_parts(&mut first, work.path(), 3).await;
    let share_id = record["share_id"].as_str().unwrap().to_owned();
    first.kill().unwrap();
    first.wait().unwrap();

    let again = once_client(&server, work.path(), &["send", "big.img"]);
    let link = stdout(&again).trim().to_owned();
    assert!(stderr(&again).contains("resuming"), "{}", stderr(&again));
    assert!(link.contains(&share_id), "another share: {link}");
    assert!(link.contains('#'), "{link}");
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link, "-q"]));
    assert!(same_file_contents(&original, &inbox.path().join("big.img")));
}

#[tokio::test]
async fn the_server_keeps_neither_the_name_nor_the_contents_of_an_encrypted_share() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let name = "plans-for-the-surprise-party.txt";
    let marker = "MARKER-7f3a9c-the-cake-is-in-the-garage";
    std::fs::write(work.path().join(name), marker.repeat(100)).unwrap();
    let link = link_of(
        &server,
        work.path(),
        &["send", name, "--note", "NOTE-MARKER-42", "-q"],
    );
    let held = all_bytes_under(&server.data_dir());
    for secret in [name, marker, "NOTE-MARKER-42", "surprise-party"] {
        assert!(
            !contains(&held, secret.as_bytes()),
            "the data directory holds {secret:?}"
        );
    }
    assert!(!server.log().contains(name));
    // The owner's view says what it is without naming it.
    let status = stdout(&once_client(&server, work.path(), &["status", &link]));
    assert!(status.contains("end to end"), "{status}");
    let listing = stdout(&once_client(&server, work.path(), &["list"]));
    for shown in [&status, &listing] {
        assert!(!shown.contains("surprise-party"), "{shown}");
    }
    let inbox = tempfile::tempdir().unwrap();
    let output = once_client(&server, inbox.path(), &["get", &link]);
    assert!(
        stderr(&output).contains("NOTE-MARKER-42"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(inbox.path().join(name)).unwrap(),
        marker.repeat(100)
    );
}

#[tokio::test]
async fn no_encrypt_sends_the_file_as_it_is_and_curl_downloads_it() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("open.txt"), b"for anyone with the link").unwrap();
    let link = link_of(
        &server,
        work.path(),
        &["send", "open.txt", "--no-encrypt", "-q"],
    );
    assert!(!link.contains('#'), "{link}");
    let id = link.rsplit('/').next().unwrap();
    let view = owner_view(&server, id).await;
    assert_eq!(view["filename"], "open.txt");
    assert_eq!(view["encrypted"], Value::Bool(false));
    let curl = std::process::Command::new("curl")
        .args(["-sSfL", &link])
        .output()
        .expect("run curl");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert_eq!(curl.stdout, b"for anyone with the link");

    let refused = once_client(
        &server,
        work.path(),
        &["send", "open.txt", "--no-encrypt", "--password-file", "x"],
    );
    assert!(!refused.status.success());
}

#[tokio::test]
async fn curl_of_an_encrypted_link_gets_the_406_and_once_get_still_works() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("c.txt"), b"not for curl").unwrap();
    let link = link_of(&server, work.path(), &["send", "c.txt", "-q"]);
    let curl = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &link])
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "406");
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link]));
    assert_eq!(
        std::fs::read(inbox.path().join("c.txt")).unwrap(),
        b"not for curl"
    );
}

#[tokio::test]
async fn a_killed_get_of_a_password_share_resumes_without_claiming_again_and_keeps_no_key() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(120 * MIB as usize, 5);
    std::fs::write(work.path().join("big.bin"), &bytes).unwrap();
    let password = work.path().join("pw");
    std::fs::write(&password, "correct horse\n").unwrap();
    let password = password.to_str().unwrap();
    let link = link_of(
        &server,
        work.path(),
        &["send", "big.bin", "--password-file", password, "-q"],
    );

    let inbox = tempfile::tempdir().unwrap();
    let part = inbox.path().join("big.bin.part");
    let mut child = client_command(
        &server,
        inbox.path(),
        &["get", &link, "--password-file", password, "-q"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 2 * MIB {
        assert!(std::time::Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let record = std::fs::read_to_string(inbox.path().join("big.bin.part.once"))
        .expect("the download record is kept");
    let secret = link.split_once('#').unwrap().1;
    assert!(!record.contains(secret), "the record holds the link's key");
    assert!(!inbox.path().join("big.bin").exists());

    // Without the key the record is of no use, and says so.
    let keyless = once_client(&server, inbox.path(), &["get", without_key(&link)]);
    assert!(!keyless.status.success());
    assert!(stderr(&keyless).contains("#KEY"), "{}", stderr(&keyless));

    // One download, already claimed: only the resume can finish it.
    let again = once_client(
        &server,
        inbox.path(),
        &["get", &link, "--password-file", password],
    );
    stdout(&again);
    assert!(stderr(&again).contains("resuming"), "{}", stderr(&again));
    assert!(std::fs::read(inbox.path().join("big.bin")).unwrap() == bytes);
    assert!(!part.exists() && !inbox.path().join("big.bin.part.once").exists());
}
