//! Quotas per key (`key_shares_per_day`, `key_bytes_stored`): the share that would pass one is
//! refused with `403 quota_exceeded` before any byte is stored, whether the key creates it or
//! someone uploads to the key's request; other keys are not affected; and since the counts
//! come from the database, the quota holds across instances sharing it.

use crate::harness::*;

const KIB: usize = 1024;

fn blob_count(server: &Server) -> usize {
    server.blob_files().len()
}

#[tokio::test]
async fn a_key_past_its_daily_shares_is_refused_before_anything_is_stored() {
    let server = Server::start_with(&[("ONCE_KEY_SHARES_PER_DAY", "2")]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"a").unwrap();
    for _ in 0..2 {
        link_of(&server, work.path(), &["send", "a.txt", "-q"]);
    }
    let refused = once_client(&server, work.path(), &["send", "a.txt", "-q"]);
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(
        said.contains("quota_exceeded") && said.contains("key_shares_per_day"),
        "{said}"
    );
    let (status, code) = error_code(
        post_share(
            &server,
            &serde_json::json!({"filename": "b.txt", "size": 1}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "quota_exceeded"));
    assert_eq!(blob_count(&server), 2);
    let (_, listed) = api_get(&server, "/api/v1/shares").await;
    assert_eq!(listed["shares"].as_array().unwrap().len(), 2, "{listed}");

    // Another key has its own count.
    let created = server.once(&["keys", "create", "--name", "other"]);
    assert!(created.status.success());
    let other = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let sent = client_command(&server, work.path(), &["send", "a.txt", "-q"])
        .env("ONCE_KEY", &other)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", stderr(&sent));
}

#[tokio::test]
async fn a_file_past_the_bytes_quota_is_refused_with_nothing_stored_until_room_is_made() {
    let server = Server::start_with(&[("ONCE_KEY_BYTES_STORED", "1MiB")]);
    let work = tempfile::tempdir().unwrap();
    let bytes = payload(600 * KIB, 3);
    std::fs::write(work.path().join("big.bin"), &bytes).unwrap();
    let first = link_of(
        &server,
        work.path(),
        &["send", "big.bin", "-q", "--no-encrypt"],
    );
    let refused = once_client(
        &server,
        work.path(),
        &["send", "big.bin", "-q", "--no-encrypt"],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("key_bytes_stored"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(blob_count(&server), 1);
    assert!(server.temp_files().is_empty(), "{:?}", server.temp_files());

    // An upload to the key's request is the key's share too: refused before a byte is taken.
    let request = link_of(&server, work.path(), &["request", "--no-encrypt"]);
    let put = client()
        .put(format!("{request}/scan.bin"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(put).await, (403, "quota_exceeded".to_owned()));
    assert_eq!(blob_count(&server), 1);
    let uploader = tempfile::tempdir().unwrap();
    std::fs::write(uploader.path().join("scan.bin"), &bytes).unwrap();
    let sent = once_client(
        &server,
        uploader.path(),
        &["send", "--to", &request, "scan.bin"],
    );
    assert!(!sent.status.success());
    assert!(
        stderr(&sent).contains("quota_exceeded"),
        "{}",
        stderr(&sent)
    );

    // Once the first share is downloaded it holds nothing, and the next file fits.
    let (_, downloaded) = download(&first).await;
    assert_eq!(downloaded, bytes);
    link_of(
        &server,
        work.path(),
        &["send", "big.bin", "-q", "--no-encrypt"],
    );
}

#[tokio::test]
async fn the_daily_share_quota_holds_across_two_instances_on_one_database() {
    let Some(database) =
        once_meta::testing::TestDatabase::create("the_daily_share_quota_holds_across_instances")
            .await
    else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("ONCE_DATABASE_URL", database.url()),
        ("ONCE_KEY_SHARES_PER_DAY", "3"),
    ];
    let first = Server::start_with_data_dir(&data.path().join("data"), &env);
    let second = Server::start_with_data_dir(&data.path().join("data"), &env);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), b"a").unwrap();
    // The first instance's key, on both.
    let send_on = |server: &Server| {
        client_command(server, work.path(), &["send", "a.txt", "-q"])
            .env("ONCE_KEY", &first.token)
            .output()
            .unwrap()
    };
    for server in [&first, &second, &first] {
        let sent = send_on(server);
        assert!(sent.status.success(), "{}", stderr(&sent));
    }
    for server in [&second, &first] {
        let refused = send_on(server);
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains("quota_exceeded"),
            "{}",
            stderr(&refused)
        );
    }
}
