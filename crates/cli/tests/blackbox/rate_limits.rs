//! Request rates (`key_rate_limit`, `address_rate_limit`): past its burst a key, or a client
//! address on the links that need no key, gets `429 rate_limited` with a `Retry-After` after
//! which the next request passes; other keys and addresses keep their own budgets, and the
//! refused requests change nothing. Runs on the data directory and (in the S3 pass) on S3.

use std::time::Duration;

use crate::harness::*;

/// `Retry-After` in seconds, which must be there.
fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

async fn list_with(server: &Server, token: &str) -> reqwest::Response {
    client()
        .get(server.url("/api/v1/shares"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_past_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let server = Server::start_with(&[("ONCE_KEY_RATE_LIMIT", "1"), ("ONCE_KEY_RATE_BURST", "4")]);
    for _ in 0..4 {
        assert_eq!(list_with(&server, &server.token).await.status(), 200);
    }
    // A create over the rate stores nothing.
    let refused = post_share(
        &server,
        &serde_json::json!({"filename": "a.txt", "size": 1}),
    )
    .await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    assert_eq!(error_code(refused).await, (429, "rate_limited".to_owned()));

    // Another key has its own budget.
    let created = server.once(&["keys", "create", "--name", "other"]);
    assert!(created.status.success());
    let other = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert_eq!(list_with(&server, &other).await.status(), 200);

    // The CLI says what happened and when to try again.
    let work = tempfile::tempdir().unwrap();
    let output = once_client(&server, work.path(), &["list"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("rate_limited"),
        "{}",
        stderr(&output)
    );

    // After the wait it was told, the key gets through, and nothing was created meanwhile.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let listed = list_with(&server, &server.token).await;
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["shares"].as_array().unwrap().len(), 0, "{listed}");
}

#[tokio::test]
async fn an_address_past_its_rate_on_links_gets_429_and_a_browser_a_page() {
    let server = Server::start_with(&[
        ("ONCE_ADDRESS_RATE_LIMIT", "1"),
        ("ONCE_ADDRESS_RATE_BURST", "3"),
    ]);
    let share = share_bytes(&server, "kept.txt", b"still here", 1).await;
    let unknown = server.url("/s/AAAAAAAAAAAAAAAAAAAAAA");
    for _ in 0..3 {
        assert_eq!(get_json(&unknown).await.status(), 404);
    }
    let refused = get_json(&unknown).await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    assert_eq!(error_code(refused).await.1, "rate_limited");
    // The real share's link is refused before anything happens to it.
    assert_eq!(claim(&share.url).await.status(), 429);
    let page = browser_get(&share.url).await;
    assert_eq!(page.status(), 429);
    assert!(retry_after(&page) >= 1);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The API with a key is another budget.
    assert_eq!(list_with(&server, &server.token).await.status(), 200);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, bytes) = download(&share.url).await;
    assert_eq!(
        bytes, b"still here",
        "the share was not claimable after the wait"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = Server::start_with(&[
        ("ONCE_ADDRESS_RATE_LIMIT", "1"),
        ("ONCE_ADDRESS_RATE_BURST", "2"),
        ("ONCE_TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let unknown = server.url("/s/AAAAAAAAAAAAAAAAAAAAAA");
    let from = |client_address: &'static str| {
        client()
            .get(&unknown)
            .header("Accept", "application/json")
            .header("X-Forwarded-For", client_address)
    };
    for _ in 0..2 {
        assert_eq!(from("203.0.113.1").send().await.unwrap().status(), 404);
    }
    assert_eq!(from("203.0.113.1").send().await.unwrap().status(), 429);
    assert_eq!(from("203.0.113.2").send().await.unwrap().status(), 404);
}
