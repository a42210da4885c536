//! One upload protocol on every store (create, parts, complete), end to end with the real
//! binary: uploads of any size through a proxy that refuses bodies over 100 MB, resuming an
//! interrupted `once send`, archives of folders and many files, pipes, the refusals of bad
//! parts, races between two uploaders, and uploads to a request that go straight to the bucket.
//! Every test runs on the store `ONCE_TEST_BLOB` names (the embedded one by default); those
//! that show something of both stores start each one themselves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use once_blob::testing::S3TestServer;
use serde_json::{Value, json};

const MIB: u64 = 1024 * 1024;
const SMALL_PARTS: &str = "5MiB";

/// Both stores, each with a bucket of its own where it needs one.
fn both_stores() -> Vec<Storage> {
    let mut stores = vec![Storage::Disk];
    if let Some(bucket) = S3TestServer::start() {
        stores.push(Storage::S3(bucket));
    }
    stores
}

fn client_via(server: &Server, endpoint: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    client_command(server, dir, args)
        .env("ONCE_SERVER", endpoint)
        .output()
        .expect("run once")
}

/// `once send FILE --to URL` in `dir`, with no server or key configured at all.
fn send_without_key(dir: &Path, file: &str, request_url: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["send", file, "--to", request_url])
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .output()
        .unwrap()
}

/// `PUT` of one part to its URL; the status and the ETag (unquoted) it answered.
async fn put_part(url: &str, bytes: Vec<u8>) -> (u16, String, String) {
    let response = client()
        .put(url)
        .header("content-length", bytes.len())
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|value| value.to_str().unwrap().trim_matches('"').to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|json| json["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, etag, code)
}

async fn post_json(url: &str, auth: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = client().post(url).json(&body);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code_of(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

fn part_url(ticket: &Value, number: u64) -> String {
    ticket["multipart"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["number"] == number)
        .map(|part| part["url"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no URL for part {number} in {ticket}"))
}

fn completed(parts: &[(u64, String)]) -> Value {
    json!({
        "parts": parts
            .iter()
            .map(|(number, etag)| json!({"part_number": number, "etag": etag}))
            .collect::<Vec<_>>()
    })
}

/// A multipart share of `size` bytes (server started with 5 MiB parts).
async fn multipart_share(server: &Server, size: u64) -> CreatedShare {
    let share = create_share(server, json!({"filename": "big.bin", "size": size})).await;
    assert!(
        share.json["upload"]["multipart"].is_object(),
        "{}",
        share.json
    );
    share
}

#[tokio::test]
async fn three_hundred_mib_pass_a_proxy_that_refuses_bodies_over_100_mb_on_both_stores() {
    for storage in both_stores() {
        let s3 = matches!(storage, Storage::S3(_));
        // With S3 the part URLs are the bucket's: put the same kind of proxy in front of it,
        // so every byte of the upload passes a 100 MB body limit.
        let bucket_proxy = match &storage {
            Storage::S3(bucket) => Some(BodyLimitProxy::start(
                &bucket.endpoint,
                CLOUDFLARE_FREE_LIMIT,
            )),
            _ => None,
        };
        let env: Vec<(&str, &str)> = bucket_proxy
            .iter()
            .map(|proxy| ("ONCE_S3_ENDPOINT", proxy.endpoint.as_str()))
            .collect();
        let server = Server::start_on(storage, &env);
        let proxy = BodyLimitProxy::start(&server.base, CLOUDFLARE_FREE_LIMIT);

        // The proxy does refuse a body over its limit (a one-step upload of 101 MB).
        let refused = client()
            .put(format!("{}/api/v1/files/big.bin", proxy.endpoint))
            .header("Authorization", server.auth())
            .header("content-length", 101_000_000u64)
            .body(vec![0u8; 101_000_000])
            .send()
            .await
            .map(|response| response.status().as_u16());
        assert!(
            matches!(refused, Ok(413) | Err(_)),
            "the proxy passed a 101 MB body: {refused:?}"
        );
        assert_eq!(proxy.refused(), 1);

        let work = tempfile::tempdir().unwrap();
        let original = work.path().join("big.img");
        write_big_file(&original, 300);
        let sent = client_via(&server, &proxy.endpoint, work.path(), &["send", "big.img"]);
        let link = stdout(&sent).trim().to_owned();
        assert!(link.starts_with(&proxy.endpoint), "{link}");
        let inbox = tempfile::tempdir().unwrap();
        stdout(&client_via(
            &server,
            &proxy.endpoint,
            inbox.path(),
            &["get", &link],
        ));
        assert!(same_file_contents(&original, &inbox.path().join("big.img")));
        let through = match &bucket_proxy {
            Some(bucket_proxy) => bucket_proxy.forwarded_bytes(),
            None => proxy.forwarded_bytes(),
        };
        assert!(
            through >= 300 * MIB,
            "only {through} B passed the proxy (s3: {s3})"
        );
        assert_eq!(
            proxy.refused(),
            1,
            "a request of the upload was refused by the proxy"
        );
        println!("s3={s3}: 300 MiB sent through a 100 MB body limit in parts");
    }
}

/// Bytes of the upload the server holds so far (the owner's view of the stored parts).
async fn stored_bytes(server: &Server, share_id: &str) -> u64 {
    let (status, parts) = api_get(server, &format!("/api/v1/shares/{share_id}/parts")).await;
    if status != 200 {
        return 0;
    }
    parts["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|part| part["size"].as_u64().unwrap())
        .sum()
}

/// The only pending share of the server's key (the one `once send` is filling).
async fn pending_share_id(server: &Server, work: &Path) -> Option<String> {
    let record_dir = work.join(".local/state/once/uploads");
    // Only finished records: a send killed while saving leaves its `.json.tmp` behind.
    let record = files_in(&record_dir)
        .into_iter()
        .find(|path| path.extension().is_some_and(|ext| ext == "json"))?;
    let text = std::fs::read_to_string(record).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    let _ = server;
    record["share_id"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_send_killed_half_way_resumes_from_the_stored_parts_and_arrives_intact() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", "16MiB")]);
    let proxy = BodyLimitProxy::start(&server.base, CLOUDFLARE_FREE_LIMIT);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("big.img");
    write_big_file(&original, 300);

    let mut first = client_command(&server, work.path(), &["send", "big.img"])
        .env("ONCE_SERVER", &proxy.endpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a bit more than half the file is stored (on S3 the parts go to the
    // bucket; the owner's view of the stored parts is the measure either way).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never got half-way"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it was killed"
        );
        if let Some(id) = pending_share_id(&server, work.path()).await
            && stored_bytes(&server, &id).await >= 160 * MIB
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let share_id = pending_share_id(&server, work.path()).await.unwrap();
    let stored_before = stored_bytes(&server, &share_id).await;

    let before = proxy.forwarded_bytes();
    let again = client_via(&server, &proxy.endpoint, work.path(), &["send", "big.img"]);
    let link = stdout(&again).trim().to_owned();
    let second_run = proxy.forwarded_bytes() - before;
    println!(
        "resume: {stored_before} B were stored when the first run was killed; the second run \
         sent {second_run} B of {} B",
        300 * MIB
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("resuming"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        link.contains(&share_id),
        "the resumed upload made another share: {link}"
    );
    assert!(
        second_run < 150 * MIB,
        "the second run sent {second_run} B, not less than half"
    );
    let inbox = tempfile::tempdir().unwrap();
    stdout(&client_via(
        &server,
        &proxy.endpoint,
        inbox.path(),
        &["get", &link],
    ));
    assert!(same_file_contents(&original, &inbox.path().join("big.img")));
    assert!(
        files_in(&work.path().join(".local/state/once/uploads")).is_empty(),
        "the resume record outlived the upload"
    );
}

/// Every file and directory below `root`, as (relative path, contents; None for a directory).
fn tree(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            if path.is_dir() {
                found.push((relative, None));
                stack.push(path);
            } else {
                found.push((relative, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_folder_of_a_thousand_files_is_sent_as_one_archive_and_extracted_identical() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("project");
    std::fs::create_dir_all(root.join("docs/deep/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(
        root.join("docs/Résumé – 報告.txt"),
        "non-ASCII names survive",
    )
    .unwrap();
    std::fs::write(
        root.join("docs/deep/deeper/data.bin"),
        payload(3 * MIB as usize, 5),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("many")).unwrap();
    for index in 0..1000 {
        std::fs::write(
            root.join(format!("many/file-{index:04}.txt")),
            format!("file {index}\n"),
        )
        .unwrap();
    }
    let sent = once_client(&server, work.path(), &["send", "project", "--no-encrypt"]);
    let link = stdout(&sent).trim().to_owned();
    assert!(link.contains("/s/"), "{link}");

    // The listing is kept with the share, for the landing page and the owner.
    let id = link.rsplit('/').next().unwrap();
    let view = owner_view(&server, id).await;
    assert_eq!(view["filename"], "project.zip");
    assert_eq!(view["content_type"], "application/zip");
    assert!(
        view["contents"]["entries"].as_u64().unwrap() >= 1006,
        "{}",
        view["contents"]
    );

    // The landing page shows what is inside, without using the link up.
    let landing = client()
        .get(&link)
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(landing.contains("A ZIP archive of"), "{landing}");
    assert!(landing.contains("project/docs/"), "{landing}");

    let inbox = tempfile::tempdir().unwrap();
    let out = inbox.path().join("out");
    stdout(&once_client(
        &server,
        inbox.path(),
        &["get", &link, "--extract", "-o", "out"],
    ));
    assert_eq!(tree(&out.join("project")), tree(&root));
    assert!(
        !out.join("project.zip").exists(),
        "the archive was kept after extracting"
    );
}

#[tokio::test]
async fn several_files_and_a_folder_are_one_archive() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), "A").unwrap();
    std::fs::write(work.path().join("b.txt"), "B").unwrap();
    std::fs::create_dir_all(work.path().join("c/d")).unwrap();
    std::fs::write(work.path().join("c/d/e.txt"), "E").unwrap();
    let link = stdout(&once_client(
        &server,
        work.path(),
        &["send", "a.txt", "b.txt", "c"],
    ))
    .trim()
    .to_owned();
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link, "-x"]));
    assert_eq!(std::fs::read(inbox.path().join("a.txt")).unwrap(), b"A");
    assert_eq!(std::fs::read(inbox.path().join("b.txt")).unwrap(), b"B");
    assert_eq!(std::fs::read(inbox.path().join("c/d/e.txt")).unwrap(), b"E");
}

#[tokio::test]
async fn a_tar_piped_into_send_comes_out_of_get_identical() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("sub/big.bin"), payload(30 * MIB as usize, 7)).unwrap();
    std::fs::write(source.join("small.txt"), "small").unwrap();

    // 30 MiB through a pipe: more than the client reads ahead, so the size is unknown and
    // the upload goes in parts.
    let send = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar c -C src . | {BIN} send - --name backup.tar --no-encrypt"
        ))
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("ONCE_SERVER", &server.base)
        .env("ONCE_KEY", &server.token)
        .env("HOME", work.path())
        .output()
        .unwrap();
    let link = stdout(&send).trim().to_owned();
    let id = link.rsplit('/').next().unwrap();
    let view = owner_view(&server, id).await;
    assert_eq!(view["filename"], "backup.tar");
    assert!(view["size"].as_u64().unwrap() > 30 * MIB);

    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let fetch = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{BIN} get '{link}' -o - | tar x -C out"))
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("ONCE_SERVER", &server.base)
        .env("HOME", work.path())
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    assert_eq!(tree(&out), tree(&source));
}

#[tokio::test]
async fn a_short_pipe_is_sent_in_one_request_with_its_checksum() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let mut child = client_command(
        &server,
        work.path(),
        &["send", "-", "--name", "note.txt", "--no-encrypt"],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello from a pipe\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let link = stdout(&output).trim().to_owned();
    let view = owner_view(&server, link.rsplit('/').next().unwrap()).await;
    assert_eq!(view["size"], 18);
    assert_eq!(view["sha256"], sha256_hex(b"hello from a pipe\n"));
    let (_, body) = download(&link).await;
    assert_eq!(body, b"hello from a pipe\n");
}

#[tokio::test]
async fn bad_parts_are_refused_each_with_its_own_code() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
    let size = 12 * MIB;
    let body = payload(size as usize, 3);
    let share = multipart_share(&server, size).await;
    let ticket = &share.json["upload"];
    let complete_url = ticket["complete_url"].as_str().unwrap();
    let parts_url = ticket["multipart"]["parts_url"].as_str().unwrap();
    let auth = server.auth();
    let chunk = |number: u64| {
        let start = ((number - 1) * 5 * MIB) as usize;
        body[start..(start + 5 * MIB as usize).min(body.len())].to_vec()
    };

    // A part URL takes exactly its signed length (a server may refuse before the body is
    // written, and the connection then breaks instead).
    let short = client()
        .put(part_url(ticket, 1))
        .header("content-length", 5 * MIB - 1)
        .body(chunk(1)[1..].to_vec())
        .send()
        .await
        .map(|response| response.status().as_u16());
    assert!(
        matches!(short, Ok(400 | 403) | Err(_)),
        "a short part got {short:?}"
    );
    let mut etags = Vec::new();
    for number in 1..=3 {
        let (status, etag, code) = put_part(&part_url(ticket, number), chunk(number)).await;
        assert_eq!(status, 200, "part {number}: {code}");
        etags.push((number, etag));
    }
    // A part may be sent again with the same bytes.
    let (status, etag, _) = put_part(&part_url(ticket, 2), chunk(2)).await;
    assert_eq!((status, etag.as_str()), (200, etags[1].1.as_str()));
    if !server.is_s3() {
        // The embedded store refuses other bytes for a stored part at once; S3 cannot, and
        // completion refuses the stale tag instead (below).
        let mut other = chunk(2);
        other[0] ^= 1;
        let (status, _, code) = put_part(&part_url(ticket, 2), other).await;
        assert_eq!((status, code.as_str()), (409, "part_conflict"));
    }
    // No URL for a part past the declared size.
    let (status, answer) = post_json(parts_url, Some(&auth), json!({"part_numbers": [4]})).await;
    assert_eq!(
        (status, code_of(&answer)),
        (413, "part_beyond_size"),
        "{answer}"
    );

    let refusals = [
        (
            completed(&[etags[1].clone(), etags[0].clone(), etags[2].clone()]),
            400,
            "part_out_of_order",
        ),
        (
            completed(&[etags[0].clone(), etags[2].clone()]),
            400,
            "part_missing",
        ),
        (
            completed(&[etags[0].clone(), etags[1].clone()]),
            400,
            "size_mismatch",
        ),
        (
            completed(&[etags[0].clone(), (2, "0".repeat(64)), etags[2].clone()]),
            // A store that lists no part tags (s3s-fs) can only tell once it assembled them (so
            // this refusal comes last).
            if server.is_s3() { 400 } else { 409 },
            if server.is_s3() {
                "invalid_parts"
            } else {
                "part_conflict"
            },
        ),
    ];
    for (report, status, code) in refusals {
        let (got, answer) = post_json(complete_url, Some(&auth), report).await;
        assert_eq!((got, code_of(&answer)), (status, code), "{answer}");
    }
    // None of the refusals changed anything: the right report still completes the upload.
    assert_eq!(owner_view(&server, &share.id).await["state"], "pending");
    let (status, answer) = post_json(complete_url, Some(&auth), completed(&etags)).await;
    assert_eq!(status, 200, "{answer}");
    let (_, downloaded) = download(&share.url).await;
    assert!(downloaded == body);
}

/// Uploads `body` to every part of the ticket; the tags, or the refusal of a part.
async fn upload_all(ticket: &Value, body: &[u8]) -> Result<Vec<(u64, String)>, String> {
    let part_size = ticket["multipart"]["part_size"].as_u64().unwrap() as usize;
    let mut etags = Vec::new();
    for (index, chunk) in body.chunks(part_size).enumerate() {
        let number = index as u64 + 1;
        let (status, etag, code) = put_part(&part_url(ticket, number), chunk.to_vec()).await;
        if status != 200 {
            return Err(format!("{status} {code}"));
        }
        etags.push((number, etag));
    }
    Ok(etags)
}

#[tokio::test]
async fn two_uploaders_racing_to_complete_one_ticket_leave_exactly_one_winner_on_both_stores() {
    for storage in both_stores() {
        let server = Server::start_on(storage, &[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
        let size = 11 * MIB;
        let (mine, theirs) = (payload(size as usize, 1), payload(size as usize, 2));
        let share = multipart_share(&server, size).await;
        let ticket = share.json["upload"].clone();
        let first = upload_all(&ticket, &mine).await.unwrap();
        // The second uploader's parts: refused on the embedded store (the parts hold other
        // bytes), stored over the first ones on S3.
        let second = upload_all(&ticket, &theirs).await;
        let complete_url = ticket["complete_url"].as_str().unwrap().to_owned();
        let auth = server.auth();
        let second_report = second.clone().unwrap_or_else(|_| first.clone());
        let (a, b) = tokio::join!(
            post_json(&complete_url, Some(&auth), completed(&first)),
            post_json(&complete_url, Some(&auth), completed(&second_report)),
        );
        println!("completions: {} {} / {} {}", a.0, a.1, b.0, b.1);
        let (_, downloaded) = download(&share.url).await;
        // Exactly one completion publishes; the other is refused: the share is taken, or
        // (S3) the parts it names were overwritten, which the store reports as its own
        // refusal when it lists no part tags.
        let statuses = [a.0, b.0];
        assert_eq!(
            statuses.iter().filter(|status| **status == 200).count(),
            1,
            "{a:?} {b:?}"
        );
        let loser = if a.0 == 200 { &b } else { &a };
        assert!(
            [
                (409, "slot_used"),
                (409, "part_conflict"),
                (400, "invalid_parts")
            ]
            .contains(&(loser.0, code_of(&loser.1))),
            "{}",
            loser.1
        );
        match second {
            // Embedded store: the second uploader's parts were refused, so only the first
            // uploader's bytes were ever stored.
            Err(refusal) => {
                assert!(refusal.starts_with("409 part_conflict"), "{refusal}");
                assert!(downloaded == mine);
            }
            // S3: the parts now hold the second uploader's bytes: the first report cannot
            // have won, and the bytes served are the second's, whole.
            Ok(_) => {
                assert_eq!(b.0, 200, "{}", b.1);
                assert!(downloaded == theirs);
            }
        }
        let view = owner_view(&server, &share.id).await;
        assert!(view["upload_attempts"].as_u64().unwrap() >= 2, "{view}");
    }
}

async fn start_session(request_url: &str, body: Value) -> Value {
    let (status, answer) = post_json(&format!("{request_url}/uploads"), None, body).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

#[tokio::test]
async fn two_uploaders_racing_to_one_request_leave_exactly_one_winner_on_both_stores() {
    for storage in both_stores() {
        let s3 = matches!(storage, Storage::S3(_));
        let server = Server::start_on(storage, &[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
        let request = create_request(&server, json!({"max_size": 64 * MIB})).await;
        let request_url = request["url"].as_str().unwrap();
        let size = 7 * MIB;
        let (mine, theirs) = (payload(size as usize, 11), payload(size as usize, 12));
        let a = start_session(request_url, json!({"filename": "a.bin", "size": size})).await;
        let b = start_session(request_url, json!({"filename": "b.bin", "size": size})).await;
        // The uploader never learns the share's link: its token is not the share id.
        assert!(!a.to_string().contains("/s/"), "{a}");
        let a_parts = upload_all(&a["upload"], &mine).await.unwrap();
        let b_parts = upload_all(&b["upload"], &theirs).await.unwrap();
        let (first, second) = tokio::join!(
            post_json(
                a["upload"]["complete_url"].as_str().unwrap(),
                None,
                completed(&a_parts)
            ),
            post_json(
                b["upload"]["complete_url"].as_str().unwrap(),
                None,
                completed(&b_parts)
            ),
        );
        let statuses = [first.0, second.0];
        assert!(
            statuses.contains(&201) && statuses.iter().filter(|s| **s == 201).count() == 1,
            "s3={s3}: {first:?} {second:?}"
        );
        let loser = if first.0 == 201 { &second } else { &first };
        assert_eq!(
            (loser.0, code_of(&loser.1)),
            (409, "slot_used"),
            "{}",
            loser.1
        );
        let winner_bytes = if first.0 == 201 { &mine } else { &theirs };

        let id = request["id"].as_str().unwrap();
        let view = request_view(&server, id).await;
        assert_eq!(view["state"], "fulfilled");
        assert_eq!(view["refused_uploads"], 1, "{view}");
        let link = view["share"]["url"].as_str().unwrap();
        let (_, downloaded) = download(link).await;
        assert!(
            &downloaded == winner_bytes,
            "s3={s3}: the loser's bytes were served"
        );
        // A third uploader is turned away before it sends a byte.
        let (status, answer) =
            post_json(&format!("{request_url}/uploads"), None, json!({"size": 1})).await;
        assert_eq!((status, code_of(&answer)), (409, "slot_used"));
    }
}

#[tokio::test]
async fn an_upload_to_a_request_through_the_s3_store_moves_no_file_bytes_through_the_server() {
    let Some(bucket) = S3TestServer::start() else {
        return;
    };
    let server = Server::start_on(Storage::S3(bucket), &[]);
    let request = create_request(&server, json!({"max_size": 512 * MIB})).await;
    let request_url = request["url"].as_str().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("scan.img");
    write_big_file(&original, 256);

    let before = process_io_bytes(server.pid());
    let output = send_without_key(work.path(), "scan.img", &request_url);
    let said = stdout(&output);
    let server_io = process_io_bytes(server.pid()) - before;
    assert!(said.contains("Uploaded scan.img"), "{said}");
    println!("256 MiB uploaded to a request: server I/O {server_io} B");
    assert!(
        server_io < 8 * MIB,
        "the server moved {server_io} B for a 256 MiB upload to a request"
    );
    let id = request["id"].as_str().unwrap();
    let view = request_view(&server, id).await;
    let link = view["share"]["url"].as_str().unwrap().to_owned();
    let inbox = tempfile::tempdir().unwrap();
    stdout(&once_client(&server, inbox.path(), &["get", &link]));
    assert!(same_file_contents(
        &original,
        &inbox.path().join("scan.img")
    ));
}

#[tokio::test]
async fn once_send_to_a_request_url_uploads_without_a_key() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
    let request = create_request(&server, json!({"max_size": 64 * MIB})).await;
    let request_url = request["url"].as_str().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    let original = payload(12 * MIB as usize, 21);
    std::fs::write(work.path().join("report.pdf"), &original).unwrap();
    let output = send_without_key(work.path(), "report.pdf", &request_url);
    assert!(stdout(&output).contains("Uploaded report.pdf"));
    let id = request["id"].as_str().unwrap();
    let view = request_view(&server, id).await;
    let (_, downloaded) = download(view["share"]["url"].as_str().unwrap()).await;
    assert!(downloaded == original);
    // A second upload to the used URL is refused.
    let again = send_without_key(work.path(), "report.pdf", &request_url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("slot_used"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test]
async fn the_reaper_removes_the_staged_parts_of_an_abandoned_upload() {
    let server = Server::start_with(&[
        ("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS),
        ("ONCE_UPLOAD_GRACE", "1s"),
    ]);
    // Two seconds, so that the part below gets in while the ticket lives even on a busy machine.
    let share = create_share(
        &server,
        json!({"filename": "big.bin", "size": 11 * MIB, "upload_expires_in": 2}),
    )
    .await;
    let ticket = &share.json["upload"];
    let (status, _, code) = put_part(&part_url(ticket, 1), payload(5 * MIB as usize, 1)).await;
    assert_eq!(status, 200, "{code}");
    let staging = server.data_dir().join("staging");
    if !server.is_s3() {
        assert_eq!(
            files_in(&staging).len(),
            1,
            "no staging area for the upload"
        );
    }
    // Ticket (2 s) and grace (1 s) over, with room to spare.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    server.reap();
    if !server.is_s3() {
        assert!(
            files_in(&staging).is_empty(),
            "staged parts outlived their abandoned upload: {:?}",
            files_in(&staging)
        );
    }
    assert_eq!(owner_view(&server, &share.id).await["state"], "gone");
}

#[tokio::test]
async fn an_upload_of_unknown_size_to_a_request_is_held_to_the_requests_limit() {
    let server = Server::start_with(&[("ONCE_UPLOAD_PART_SIZE", SMALL_PARTS)]);
    let request = create_request(&server, json!({"max_size": 6 * MIB})).await;
    let request_url = request["url"].as_str().unwrap();
    let session = start_session(request_url, json!({"filename": "pipe.bin"})).await;
    let parts_url = session["upload"]["multipart"]["parts_url"]
        .as_str()
        .unwrap();
    let (status, answer) = post_json(
        parts_url,
        None,
        json!({"parts": [{"number": 1, "size": 5 * MIB}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_json(
        parts_url,
        None,
        json!({"parts": [{"number": 2, "size": 5 * MIB}]}),
    )
    .await;
    assert_eq!(
        (status, code_of(&answer)),
        (413, "part_beyond_size"),
        "{answer}"
    );
    let (status, answer) = post_json(
        parts_url,
        None,
        json!({"parts": [{"number": 2, "size": MIB}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}
