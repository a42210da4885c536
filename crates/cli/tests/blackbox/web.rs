//! The web app's server side, over plain HTTP: sessions (cookie, CSRF, expiry, revocation,
//! cross-site sign-in), pages and their policy, assets, the claim as data, and pages for
//! people where programs get JSON. The browser itself is tested in `tests/browser`.

use crate::harness::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";

/// A request as a browser makes it: a browser user agent asking for HTML.
fn browser_get(url: &str) -> reqwest::RequestBuilder {
    client()
        .get(url)
        .header("User-Agent", FIREFOX)
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
}

/// Signs in with `key`; returns the answer.
async fn sign_in_with(server: &Server, key: &str) -> reqwest::Response {
    client()
        .post(server.url("/session"))
        .header("User-Agent", FIREFOX)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("key", key)])
        .send()
        .await
        .unwrap()
}

/// Signs in with the server's key; returns the `name=value` of the session cookie.
async fn sign_in(server: &Server) -> String {
    let response = sign_in_with(server, &server.token).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// The settings block of a page (its script's JSON).
fn page_config(html: &str) -> serde_json::Value {
    let start = html.find("id=\"once-config\">").expect("config block") + 17;
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

async fn page(
    server: &Server,
    path: &str,
    cookie: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = browser_get(&server.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn signing_in_gives_a_strict_http_only_cookie_and_the_send_page() {
    let server = Server::start();
    let (_, _, anonymous) = page(&server, "/", "").await;
    assert!(anonymous.contains("data-page=\"signin\""), "{anonymous}");
    assert!(anonymous.contains("<form method=\"post\" action=\"/session\""));

    let response = sign_in_with(&server, &server.token).await;
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // Served over plain HTTP here; `Secure` comes with an https public URL.
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The key itself is nowhere in what the browser keeps.
    let secret = server.token.split_once('.').unwrap().1;
    assert!(!cookie.contains(secret));

    let session = cookie.split(';').next().unwrap();
    let (status, _, send) = page(&server, "/", session).await;
    assert_eq!(status, 200);
    assert!(send.contains("data-page=\"send\""), "{send}");
    assert!(!send.contains(secret));
    assert!(!page_config(&send)["csrf"].as_str().unwrap().is_empty());

    // A wrong key gets the form again, with a message, and no cookie.
    let wrong = sign_in_with(&server, &once_domain::ApiToken::generate().reveal()).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("That key was not accepted")
    );
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure() {
    let server = Server::start_with(&[("ONCE_PUBLIC_URL", "https://files.example.org")]);
    let response = client()
        .post(server.url("/session"))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("key", server.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_session_uses_the_api_but_changes_nothing_without_its_csrf_token() {
    let server = Server::start();
    let session = sign_in(&server).await;
    let (_, _, html) = page(&server, "/", &session).await;
    let csrf = page_config(&html)["csrf"].as_str().unwrap().to_owned();

    let list = client()
        .get(server.url("/api/v1/shares"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    let new_share = serde_json::json!({"filename": "a.txt", "size": 3});
    for token in [None, Some("bm90IHRoZSB0b2tlbg"), Some(session.as_str())] {
        let mut request = client()
            .post(server.url("/api/v1/shares"))
            .header("Cookie", &session)
            .json(&new_share);
        if let Some(token) = token {
            request = request.header("X-Once-CSRF", token);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(error_code(answer).await, (403, "csrf_rejected".into()));
    }
    let (_, listed) = api_get(&server, "/api/v1/shares").await;
    assert_eq!(listed["shares"].as_array().unwrap().len(), 0, "{listed}");

    let created = client()
        .post(server.url("/api/v1/shares"))
        .header("Cookie", &session)
        .header("X-Once-CSRF", &csrf)
        .json(&new_share)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions() {
    let server = Server::start();
    let session = sign_in(&server).await;
    let (id, _) = server.token.split_once('.').unwrap();
    assert!(server.once(&["keys", "revoke", id]).status.success());
    let answer = client()
        .get(server.url("/api/v1/shares"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(answer).await, (401, "session_invalid".into()));
    let response = browser_get(&server.url("/"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    // The browser is told, and its cookie dropped.
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("Your session has ended"), "{html}");
    assert!(html.contains("data-page=\"signin\""));
}

#[tokio::test]
async fn a_session_expires() {
    let server = Server::start_with(&[("ONCE_SESSION_LIFETIME", "1s")]);
    let session = sign_in(&server).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let answer = client()
        .get(server.url("/api/v1/shares"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(answer).await, (401, "session_expired".into()));
}

#[tokio::test]
async fn forged_sessions_and_cross_site_sign_ins_are_refused() {
    let server = Server::start();
    let (id, _) = server.token.split_once('.').unwrap();
    let forged = format!("once_session=v1.{id}.9999999999.AAAAAAAAAAAAAAAAAAAAAA.AAAA");
    let answer = client()
        .get(server.url("/api/v1/shares"))
        .header("Cookie", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(answer).await, (401, "session_invalid".into()));

    // A form on another site must not sign the browser in (to the attacker's key).
    for (name, value) in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "http://evil.example"),
    ] {
        let answer = client()
            .post(server.url("/session"))
            .header(name, value)
            .form(&[("key", server.token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{name}: {value}");
        assert!(answer.headers().get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn signing_out_needs_the_page_token_and_drops_the_cookie() {
    let server = Server::start();
    let session = sign_in(&server).await;
    let (_, _, html) = page(&server, "/", &session).await;
    let csrf = page_config(&html)["csrf"].as_str().unwrap().to_owned();
    let refused = client()
        .post(server.url("/session/end"))
        .header("Cookie", &session)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("set-cookie").is_none());
    let done = client()
        .post(server.url("/session/end"))
        .header("Cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert!(
        done.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn pages_allow_no_inline_code_and_assets_are_cached_by_content() {
    let server = Server::start();
    let session = sign_in(&server).await;
    let share = share_bytes(&server, "report.pdf", b"hello", 1).await;
    // The landing page of an encrypted share with a password names the decryption modules.
    let (_, sealed) = crate::encryption::seal_for_share("report.pdf", b"hello", Some("pw"));
    let encrypted = crate::encryption::share_sealed(&server, &sealed).await;
    let request = create_request(&server, serde_json::json!({"max_size": 1024})).await;
    let pages = [
        ("/".to_owned(), String::new()),
        ("/".to_owned(), session.clone()),
        ("/shares".to_owned(), session.clone()),
        (
            share.url.trim_start_matches(&server.base).to_owned(),
            String::new(),
        ),
        (
            encrypted.url.trim_start_matches(&server.base).to_owned(),
            String::new(),
        ),
        (
            request["url"]
                .as_str()
                .unwrap()
                .trim_start_matches(&server.base)
                .to_owned(),
            String::new(),
        ),
        ("/no/such/page".to_owned(), String::new()),
    ];
    let mut named_modules = Vec::new();
    for (path, cookie) in &pages {
        let (_, headers, html) = page(&server, path, cookie).await;
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!html.contains("<script>"), "{path}: an inline script");
        assert!(!html.contains("style=\""), "{path}: an inline style");
        // The page and what it loads stay small.
        let mut total = html.len();
        for asset in asset_paths(&html) {
            let response = client().get(server.url(&asset)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{asset}");
            assert_eq!(
                response.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
            total += response.bytes().await.unwrap().len();
        }
        assert!(total < 100 * 1024, "{path}: {total} bytes");
        named_modules.push((path.clone(), asset_paths(&html)));
    }
    let modules_of = |path: &str| {
        named_modules
            .iter()
            .filter(|(page, _)| page == path)
            .flat_map(|(_, assets)| assets.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let encrypted_path = encrypted.url.trim_start_matches(&server.base);
    assert!(
        modules_of(encrypted_path).contains("/assets/argon2."),
        "{}",
        modules_of(encrypted_path)
    );
    assert!(!modules_of(encrypted_path).contains("/assets/zip."));
    assert!(
        modules_of("/").contains("/assets/seal."),
        "{}",
        modules_of("/")
    );
    // A name that is not the current content's is not served.
    let missing = client()
        .get(server.url("/assets/app.000000000000.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_send_page_reaches_argon2id_only_through_a_redirect_to_the_current_asset() {
    let server = Server::start();
    let session = sign_in(&server).await;
    let (_, _, html) = page(&server, "/", &session).await;
    // Named as the asset it would count against the page's budget on every send.
    assert!(!html.contains("/assets/argon2."), "{html}");
    let on_demand = page_config(&html)["assets"]["argon2"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(on_demand, "/modules/argon2.js");
    let redirect = client().get(server.url(&on_demand)).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["cache-control"], "no-cache");
    let target = redirect.headers()["location"].to_str().unwrap().to_owned();
    // The same module the landing page of a password share names.
    let (_, sealed) = crate::encryption::seal_for_share("a.txt", b"a", Some("pw"));
    let encrypted = crate::encryption::share_sealed(&server, &sealed).await;
    let (_, _, landing) = page(&server, encrypted.url.trim_start_matches(&server.base), "").await;
    assert_eq!(
        page_config(&landing)["assets"]["argon2"].as_str(),
        Some(target.as_str())
    );
    let module = client().get(server.url(&target)).send().await.unwrap();
    assert_eq!(module.status(), 200);
    assert!(
        module.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

/// The `/assets/…` a page loads itself (its stylesheet and script).
fn asset_paths(html: &str) -> Vec<String> {
    html.match_indices("\"/assets/")
        .map(|(at, _)| {
            let rest = &html[at + 1..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn people_get_pages_and_programs_get_json_for_unknown_paths() {
    let server = Server::start();
    let response = browser_get(&server.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("Page not found"));
    let response = client()
        .get(server.url("/no/such/page"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (404, "not_found".into()));
}

#[tokio::test]
async fn each_dead_link_has_its_own_page_in_the_readers_language() {
    let server = Server::start();
    let used = share_bytes(&server, "a.txt", b"a", 1).await;
    download(&used.url).await;
    let revoked = share_bytes(&server, "b.txt", b"b", 1).await;
    let answer = client()
        .delete(server.url(&format!("/api/v1/shares/{}", revoked.id)))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let unknown = server.url("/s/AAAAAAAAAAAAAAAAAAAAAA");
    for (link, status, title) in [
        (used.url.as_str(), 410, "This link has been used"),
        (revoked.url.as_str(), 410, "This link was withdrawn"),
        (unknown.as_str(), 404, "This link does not exist"),
    ] {
        let response = browser_get(link).send().await.unwrap();
        assert_eq!(response.status(), status, "{link}");
        let html = response.text().await.unwrap();
        assert!(html.contains(&format!("<h1>{title}</h1>")), "{html}");
        // The code is there for the operator, not in the text people read first.
        assert!(!html.contains("<h1>share_"));
    }
    let german = browser_get(&revoked.url)
        .header("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(german.contains("<html lang=\"de\">"));
    assert!(
        german.contains("<h1>Dieser Link wurde zurückgezogen</h1>"),
        "{german}"
    );
}

#[tokio::test]
async fn the_landing_page_claims_as_data_and_a_second_claim_is_refused() {
    let server = Server::start();
    let share = share_bytes(&server, "notes.txt", b"some notes", 1).await;
    // The landing page itself consumes nothing.
    let landing = browser_get(&share.url).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    assert!(
        landing
            .text()
            .await
            .unwrap()
            .contains("<h1 class=\"filename\">notes.txt</h1>")
    );
    assert_eq!(owner_view(&server, &share.id).await["downloads_left"], 1);

    let claim = client()
        .post(&share.url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 200);
    let ticket: serde_json::Value = claim.json().await.unwrap();
    assert_eq!(ticket["downloads_left"], 0);
    assert!(ticket["lease_until"].as_str().is_some());
    let bytes = client()
        .get(ticket["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"some notes");
    let again = client()
        .post(&share.url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (410, "share_consumed".into()));
}

#[tokio::test]
async fn my_shares_lists_the_signed_in_keys_shares_and_sends_others_to_sign_in() {
    let server = Server::start();
    let share = share_bytes(&server, "quarterly <report>.pdf", b"q", 1).await;
    let anonymous = browser_get(&server.url("/shares")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/");
    let session = sign_in(&server).await;
    let (status, _, html) = page(&server, "/shares", &session).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("data-share=\"{}\"", share.id)));
    // Names are escaped by the template.
    assert!(
        html.contains("quarterly &#60;report&#62;.pdf")
            || html.contains("quarterly &lt;report&gt;.pdf"),
        "{html}"
    );
    assert!(!html.contains("<report>"));
}
