//! Sharing and claiming through the real server: round trips, exactly-once claims, and link
//! previews that must not burn a share.

use crate::harness::*;

async fn round_trip(name: &str, bytes: Vec<u8>) {
    let server = Server::start();
    let share = share_bytes(&server, name, &bytes, 1).await;
    let (headers, body) = download(&share.url).await;
    assert!(
        body == bytes,
        "{name}: downloaded bytes differ ({} vs {} bytes)",
        body.len(),
        bytes.len()
    );
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let disposition = headers["content-disposition"].to_str().unwrap();
    let parsed = once_domain::Filename::from_content_disposition(disposition).unwrap();
    assert_eq!(parsed.as_str(), name, "{disposition}");
}

#[tokio::test]
async fn empty_file_round_trips() {
    round_trip("empty.bin", Vec::new()).await;
}

#[tokio::test]
async fn one_byte_file_round_trips() {
    round_trip("one.bin", vec![42]).await;
}

#[tokio::test]
async fn fifty_mib_file_round_trips_byte_identical() {
    round_trip("big.bin", payload(50 * 1024 * 1024, 7)).await;
}

#[tokio::test]
async fn non_ascii_name_with_quotes_and_spaces_round_trips_with_rfc6266_disposition() {
    let name = "naïve \"quarterly\" report – 2026.pdf";
    let server = Server::start();
    let share = share_bytes(&server, name, b"%PDF-1.7", 1).await;
    let (headers, _) = download(&share.url).await;
    assert_eq!(
        headers["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"na_ve _quarterly_ report _ 2026.pdf\"; \
         filename*=UTF-8''na%C3%AFve%20%22quarterly%22%20report%20%E2%80%93%202026.pdf"
    );
    if !server.is_s3() {
        // Served by once itself: never sniffed into HTML on our origin.
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn second_claim_of_single_use_share_gets_410() {
    let server = Server::start();
    let share = share_bytes(&server, "a.txt", b"secret", 1).await;
    download(&share.url).await;
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (410, "share_consumed".into())
    );
    // A browser sees a page saying so, with the same status.
    let page = client()
        .get(&share.url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    // What the person reads: the problem page's title.
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<h1>This link has been used</h1>")
    );
}

#[tokio::test]
async fn share_with_three_downloads_serves_exactly_three() {
    let server = Server::start();
    let share = share_bytes(&server, "a.txt", b"three times", 3).await;
    for _ in 0..3 {
        let (_, body) = download(&share.url).await;
        assert_eq!(body, b"three times");
    }
    assert_eq!(error_code(claim(&share.url).await).await.0, 410);
    assert_eq!(
        owner_view(&server, &share.id).await["availability"],
        "consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_claims_yield_exactly_one_download() {
    // One address storming one link: about the claim's exactness, not the rate limit
    // (limits.rs) that would refuse most of these first.
    let server = Server::start_with(&[("ONCE_ADDRESS_RATE_LIMIT", "0")]);
    let share = share_bytes(&server, "race.bin", &payload(4096, 1), 1).await;
    let claims = (0..200).map(|_| {
        let url = share.url.clone();
        tokio::spawn(async move { claim(&url).await.status().as_u16() })
    });
    let mut statuses = Vec::new();
    for handle in claims {
        statuses.push(handle.await.unwrap());
    }
    let won = statuses.iter().filter(|&&s| s == 303).count();
    let gone = statuses.iter().filter(|&&s| s == 410).count();
    assert_eq!((won, gone), (1, 199), "statuses: {statuses:?}");
    assert_eq!(owner_view(&server, &share.id).await["downloads_left"], 0);
}

#[tokio::test]
async fn previews_browsers_and_head_leave_the_share_claimable() {
    let server = Server::start();
    let share = share_bytes(&server, "photo.jpg", b"jpeg bytes", 1).await;
    let agents = [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        "Mattermost-Bot/1.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Microsoft Office Existence Discovery",
    ];
    for agent in agents {
        // Previewers often send */*; the user agent alone must protect the share.
        let response = client()
            .get(&share.url)
            .header("User-Agent", agent)
            .header("Accept", "*/*")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{agent}");
        let html = response.text().await.unwrap();
        assert!(html.contains("og:title"), "{agent}: no Open Graph card");
        assert!(
            !html.contains("photo.jpg"),
            "{agent}: preview leaked the file name"
        );
    }
    let browser = client()
        .get(&share.url)
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36",
        )
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 200);
    let landing = browser.text().await.unwrap();
    assert!(landing.contains("photo.jpg") && landing.contains("method=\"post\""));
    for _ in 0..3 {
        let head = client().head(&share.url).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    let view = owner_view(&server, &share.id).await;
    assert_eq!(view["downloads_left"], 1);
    assert_eq!(view["preview_hits"], agents.len() + 1 + 3);
    let (_, body) = download(&share.url).await;
    assert_eq!(body, b"jpeg bytes");
    let head = client().head(&share.url).send().await.unwrap();
    assert_eq!(head.status(), 410, "HEAD reports a consumed share");
}

#[tokio::test]
async fn landing_page_post_claims_and_redirects_to_the_bytes() {
    let server = Server::start();
    let share = share_bytes(&server, "doc.txt", b"posted", 1).await;
    let response = client()
        .post(&share.url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let bytes = client()
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"posted");
    let again = client()
        .post(&share.url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
}

#[tokio::test]
async fn unknown_share_is_404_and_malformed_id_too() {
    let server = Server::start();
    let unknown = server.url(&format!("/s/{}", once_domain::ShareId::generate()));
    assert_eq!(
        error_code(claim(&unknown).await).await,
        (404, "share_not_found".into())
    );
    assert_eq!(
        error_code(claim(&server.url("/s/..%2F..%2Fetc")).await)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn revoked_share_answers_410_and_owner_sees_it() {
    let server = Server::start();
    let share = share_bytes(&server, "a.txt", b"x", 2).await;
    // A download URL handed out before the revocation dies with it: the bytes go at once.
    let claimed = claim(&share.url).await;
    assert_eq!(claimed.status(), 303);
    let location = claimed.headers()["location"].to_str().unwrap().to_owned();
    let response = client()
        .delete(server.url(&format!("/api/v1/shares/{}", share.id)))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        error_code(claim(&share.url).await).await,
        (410, "share_revoked".into())
    );
    assert_eq!(
        owner_view(&server, &share.id).await["availability"],
        "revoked"
    );
    // 410 from the embedded store, 404 (NoSuchKey) from a bucket.
    let late = client().get(&location).send().await.unwrap().status();
    assert!(matches!(late.as_u16(), 404 | 410), "{late}");
    assert!(server.blob_files().is_empty(), "revoked bytes still stored");
}

#[tokio::test]
async fn curl_style_put_honours_max_downloads_and_max_days() {
    let server = Server::start();
    let response = client()
        .put(server.url("/api/v1/files/notes.txt"))
        .header("Authorization", server.auth())
        .header("Max-Downloads", "2")
        .header("Max-Days", "1")
        .body("via curl -T")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let link = response.text().await.unwrap().trim().to_owned();
    let id = link.rsplit('/').next().unwrap().to_owned();
    let view = owner_view(&server, &id).await;
    assert_eq!(view["max_downloads"], 2);
    let created = time::OffsetDateTime::parse(
        view["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        view["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::days(1));
    for _ in 0..2 {
        assert_eq!(download(&link).await.1, b"via curl -T");
    }
    assert_eq!(claim(&link).await.status(), 410);
}

#[tokio::test]
async fn the_owner_lists_their_shares_newest_first_a_page_at_a_time() {
    let server = Server::start();
    let mut made = Vec::new();
    for index in 0..3 {
        made.push(
            share_bytes(&server, &format!("file-{index}.txt"), b"x", 1)
                .await
                .id,
        );
    }
    // Another key's share and an uploader's unfinished upload to a request are not listed.
    let other = server.once(&["keys", "create", "--name", "someone else"]);
    let other_token = String::from_utf8(other.stdout).unwrap().trim().to_owned();
    let theirs = client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", format!("Bearer {other_token}"))
        .json(&serde_json::json!({"filename": "theirs.txt", "size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201);
    let request = create_request(&server, serde_json::json!({"max_size": 100})).await;
    let session = client()
        .post(format!("{}/uploads", request["url"].as_str().unwrap()))
        .json(&serde_json::json!({"filename": "attempt.bin", "size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 201);

    let page = |query: String| {
        let server = &server;
        async move { api_get(server, &format!("/api/v1/shares{query}")).await }
    };
    let (status, first) = page("?limit=2".into()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["shares"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, second) = page(format!("?limit=2&after={next}")).await;
    let mut listed: Vec<String> = first["shares"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["shares"].as_array().unwrap())
        .map(|share| share["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(second["shares"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next"].is_null(), "{second}");
    listed.sort();
    made.sort();
    assert_eq!(listed, made);

    for bad in ["?limit=0", "?limit=1000", "?after=nonsense", "?colour=red"] {
        let (status, answer) = page(bad.into()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str().unwrap()),
            (400, "invalid_query"),
            "{bad}: {answer}"
        );
    }

    let work = tempfile::tempdir().unwrap();
    let printed = stdout(&once_client(&server, work.path(), &["list"]));
    assert_eq!(printed.lines().count(), 4, "{printed}");
    for index in 0..3 {
        assert!(printed.contains(&format!("file-{index}.txt")), "{printed}");
    }
    assert!(!printed.contains("theirs.txt") && !printed.contains("attempt.bin"));
}
