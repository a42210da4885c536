//! End-to-end encrypted upload requests with the real CLI on both sides: `once request` keeps
//! the private key and puts the public key in the link's fragment, `once send --to` seals to
//! it, and only the requester's `once get` opens the upload. Plain uploads to such a request
//! are refused and change nothing; a send to it resumes like any other.

use std::path::Path;

use serde_json::Value;

use crate::harness::*;

/// The requester's key files (the harness sets `HOME` to the command's folder).
fn request_keys_in(home: &Path) -> Vec<std::path::PathBuf> {
    files_in(&home.join(".local/state/once/request-keys"))
}

/// The requester's `once get` (in `home`) of the share the request's upload became.
async fn requester_gets(server: &Server, home: &Path, link: &str) {
    let view = request_view(server, request_id(link)).await;
    assert_eq!(view["state"], "fulfilled", "{view}");
    let share_url = view["share"]["url"].as_str().unwrap();
    stdout(&once_client(server, home, &["get", share_url, "-q"]));
}

/// A command that must have failed, saying `why`.
fn assert_refused(output: &std::process::Output, why: &str) {
    assert!(!output.status.success(), "{why}: it succeeded");
    assert!(stderr(output).contains(why), "{}", stderr(output));
}

fn request_id(link: &str) -> &str {
    without_key(link).rsplit('/').next().unwrap()
}

/// `once request` in `home`; returns the whole link, checked to carry a 43-character key.
fn encrypted_request(server: &Server, home: &Path) -> String {
    let link = link_of(server, home, &["request"]);
    let (url, public) = link
        .split_once('#')
        .expect("the link carries the public key");
    assert!(url.starts_with(&format!("{}/r/", server.base)), "{link}");
    assert_eq!(public.len(), 43, "{link}");
    link
}

#[tokio::test]
async fn an_upload_to_an_encrypted_request_opens_only_with_the_requesters_key() {
    let server = Server::start();
    let requester = tempfile::tempdir().unwrap();
    let uploader = tempfile::tempdir().unwrap();
    let link = encrypted_request(&server, requester.path());
    let public = link.split_once('#').unwrap().1;

    // The private key is kept, for the requester alone, under the public key's name.
    let keys = request_keys_in(requester.path());
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(
        keys[0].file_name().unwrap().to_str().unwrap(),
        format!("{public}.key")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let view = request_view(&server, request_id(&link)).await;
    assert_eq!(view["encrypted"], Value::Bool(true), "{view}");
    // `once requests` shows the whole link again, key included.
    let listing = stdout(&once_client(&server, requester.path(), &["requests"]));
    assert!(listing.contains(&link), "{listing}");

    // Two records and a bit, with a marker in the name and the content.
    let name = "MARKER-contract-signed-9d2e.pdf";
    let marker = b"MARKER-CONTENT-5b1f-keep-this-secret";
    let mut bytes = payload(2 * 65536 + 5, 11);
    bytes[70_000..70_000 + marker.len()].copy_from_slice(marker);
    std::fs::write(uploader.path().join(name), &bytes).unwrap();
    let sent = stdout(&once_client(
        &server,
        uploader.path(),
        &["send", "--to", &link, name],
    ));
    assert!(sent.contains("Uploaded"), "{sent}");

    let view = request_view(&server, request_id(&link)).await;
    assert_eq!(view["state"], "fulfilled", "{view}");
    let share_url = view["share"]["url"].as_str().unwrap().to_owned();
    assert_eq!(view["share"]["filename"], "encrypted", "{view}");
    assert_eq!(view["share"]["encrypted"], Value::Bool(true), "{view}");
    let mut held = all_bytes_under(&server.data_dir());
    for blob in server.blob_files() {
        held.extend(std::fs::read(blob).unwrap_or_default());
    }
    for secret in [name.as_bytes(), marker, b"contract-signed"] {
        assert!(
            !contains(&held, secret),
            "the server holds {:?}",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(!server.log().contains(name));
    // The requester's listing opens the name with the key kept here; the server never had it.
    let listing = stdout(&once_client(&server, requester.path(), &["requests"]));
    assert!(
        listing.contains(&format!("{name} (encrypted)")),
        "{listing}"
    );

    // The request link and the share link together do not open it: the uploader's machine
    // has both, but not the private key. Nothing is claimed by trying.
    let refused = once_client(&server, uploader.path(), &["get", &share_url]);
    assert_refused(&refused, "private key is not here");
    assert!(
        !files_in(uploader.path())
            .iter()
            .any(|path| path.extension().is_some_and(|ext| ext == "part")),
        "a partial download was left"
    );
    let with_request_key = once_client(
        &server,
        uploader.path(),
        &["get", &format!("{share_url}#{public}")],
    );
    assert!(!with_request_key.status.success());
    let id = share_url.rsplit('/').next().unwrap();
    assert_eq!(owner_view(&server, id).await["state"], "ready");

    // The requester's get finds the key and writes the file under the uploader's name.
    let inbox = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(inbox.path().join(".local/state/once")).unwrap();
    copy_dir(
        &requester.path().join(".local/state/once/request-keys"),
        &inbox.path().join(".local/state/once/request-keys"),
    );
    stdout(&once_client(
        &server,
        inbox.path(),
        &["get", &share_url, "-q"],
    ));
    assert_eq!(std::fs::read(inbox.path().join(name)).unwrap(), bytes);
    assert_eq!(claim(&share_url).await.status(), 410);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in files_in(from) {
        std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
}

#[tokio::test]
async fn plain_uploads_to_an_encrypted_request_are_refused_and_change_nothing() {
    let server = Server::start();
    let requester = tempfile::tempdir().unwrap();
    let uploader = tempfile::tempdir().unwrap();
    let link = encrypted_request(&server, requester.path());
    std::fs::write(uploader.path().join("a.txt"), b"sealed for the requester").unwrap();

    let put = client()
        .put(format!("{}/a.txt", without_key(&link)))
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(put).await,
        (400, "encryption_required".to_owned())
    );

    let no_key = once_client(
        &server,
        uploader.path(),
        &["send", "--to", without_key(&link), "a.txt"],
    );
    assert_refused(&no_key, "has lost its key");
    let no_encrypt = once_client(
        &server,
        uploader.path(),
        &["send", "--to", &link, "--no-encrypt", "a.txt"],
    );
    assert_refused(&no_encrypt, "leave out --no-encrypt");
    let damaged = format!("{}#{}", without_key(&link), "A".repeat(40));
    let bad_key = once_client(
        &server,
        uploader.path(),
        &["send", "--to", &damaged, "a.txt"],
    );
    assert_refused(&bad_key, "key (the part after '#') is damaged");
    let password = once_client(
        &server,
        uploader.path(),
        &["send", "--to", &link, "--password-file", "a.txt", "a.txt"],
    );
    assert_refused(&password, "leave them out with --to");
    let view = request_view(&server, request_id(&link)).await;
    assert_eq!(view["state"], "open", "{view}");
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());

    // The whole link still works, and the requester reads what was sent.
    stdout(&once_client(
        &server,
        uploader.path(),
        &["send", "--to", &link, "a.txt"],
    ));
    requester_gets(&server, requester.path(), &link).await;
    assert_eq!(
        std::fs::read(requester.path().join("a.txt")).unwrap(),
        b"sealed for the requester"
    );
}

#[tokio::test]
async fn a_plain_request_still_takes_curl_and_no_key_is_kept() {
    let server = Server::start();
    let requester = tempfile::tempdir().unwrap();
    // A fixed name is the server's to see: only a plain request takes one.
    let fixed = once_client(
        &server,
        requester.path(),
        &["request", "--filename", "x.pdf"],
    );
    assert_refused(&fixed, "add --no-encrypt");
    assert!(request_keys_in(requester.path()).is_empty());
    let url = link_of(&server, requester.path(), &["request", "--no-encrypt"]);
    assert!(!url.contains('#'), "{url}");
    assert!(request_keys_in(requester.path()).is_empty());
    let put = client()
        .put(format!("{url}/open.txt"))
        .body("for the server too")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let view = request_view(&server, request_id(&url)).await;
    assert_eq!(view["encrypted"], Value::Bool(false), "{view}");
    requester_gets(&server, requester.path(), &url).await;
    assert_eq!(
        std::fs::read(requester.path().join("open.txt")).unwrap(),
        b"for the server too"
    );
}

#[tokio::test]
async fn an_interrupted_send_to_an_encrypted_request_resumes_and_the_requester_reads_it() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", "5MiB")]);
    let requester = tempfile::tempdir().unwrap();
    let uploader = tempfile::tempdir().unwrap();
    let link = encrypted_request(&server, requester.path());
    let original = uploader.path().join("scan.img");
    write_big_file(&original, 60);
    let mut first = client_command(
        &server,
        uploader.path(),
        &["send", "--to", &link, "scan.img"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let record = record_with_parts(&mut first, uploader.path(), 3).await;
    // The record keeps what derives the same keys again, never a key of the requester's.
    assert_eq!(record["recipient"], link.split_once('#').unwrap().1);
    assert!(record["ephemeral"].is_string(), "{record}");
    first.kill().unwrap();
    first.wait().unwrap();

    let again = once_client(
        &server,
        uploader.path(),
        &["send", "--to", &link, "scan.img"],
    );
    assert!(stdout(&again).contains("Uploaded"));
    assert!(stderr(&again).contains("resuming"), "{}", stderr(&again));
    assert!(
        files_in(&uploader.path().join(".local/state/once/uploads")).is_empty(),
        "the record is left"
    );

    requester_gets(&server, requester.path(), &link).await;
    assert!(same_file_contents(
        &original,
        &requester.path().join("scan.img")
    ));
}

/// What PostgreSQL holds, as `pg_dump` writes it (data and schema).
fn pg_dump(url: &str) -> Vec<u8> {
    let output = std::process::Command::new("pg_dump")
        .args(["--data-only", "--dbname", url])
        .output()
        .expect("run pg_dump (Debian's postgresql-client)");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn encrypted_files_leave_no_name_or_content_in_postgres_through_the_s3_store() {
    let Some(database) = once_meta::testing::TestDatabase::create(
        "encrypted_files_leave_no_name_or_content_in_postgres",
    )
    .await
    else {
        return;
    };
    let bucket = once_blob::testing::S3TestServer::start()
        .expect("s3s-fs (cargo install s3s-fs@0.14.1 --features binary)");
    let server = Server::start_on(
        Storage::S3(bucket),
        &[("ONCE_DATABASE_URL", database.url())],
    );
    let sender = tempfile::tempdir().unwrap();
    let requester = tempfile::tempdir().unwrap();
    let shared = "MARKER-shared-name-41c7.txt";
    let uploaded = "MARKER-uploaded-name-8e02.txt";
    let content = "MARKER-CONTENT-e5d3-nobody-but-the-recipient";
    std::fs::write(sender.path().join(shared), content.repeat(50)).unwrap();
    std::fs::write(sender.path().join(uploaded), content.repeat(70)).unwrap();
    let link = link_of(&server, sender.path(), &["send", shared, "-q"]);
    let request = encrypted_request(&server, requester.path());
    stdout(&once_client(
        &server,
        sender.path(),
        &["send", "--to", &request, uploaded],
    ));

    let mut held = pg_dump(database.url());
    assert!(
        contains(&held, b"encrypted"),
        "the dump holds no share rows"
    );
    let objects = server.blob_files();
    assert_eq!(objects.len(), 2, "{objects:?}");
    for object in objects {
        held.extend(std::fs::read(object).unwrap());
    }
    held.extend(all_bytes_under(&server.data_dir()));
    for secret in [shared, uploaded, content, "MARKER"] {
        assert!(
            !contains(&held, secret.as_bytes()),
            "PostgreSQL, the bucket or the data directory holds {secret:?}"
        );
    }
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link, "-q"]));
    assert_eq!(
        std::fs::read_to_string(inbox.path().join(shared)).unwrap(),
        content.repeat(50)
    );
    requester_gets(&server, requester.path(), &request).await;
    assert_eq!(
        std::fs::read_to_string(requester.path().join(uploaded)).unwrap(),
        content.repeat(70)
    );
}
