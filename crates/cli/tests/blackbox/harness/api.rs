//! The HTTP API as tests call it: a client that shows every redirect, and one helper per
//! endpoint (create, upload to a ticket, complete, claim, download, owner view, metrics).

use super::{Server, sha256_hex};

/// A client that never follows redirects, so tests see every step.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("curl/8.5.0")
        .build()
        .expect("client")
}

/// The server's `/metrics` text.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub struct CreatedShare {
    pub id: String,
    pub url: String,
    pub upload_url: String,
    pub json: serde_json::Value,
}

/// `POST /api/v1/requests`: a one-time upload URL; returns the requester's view.
pub async fn create_request(server: &Server, body: serde_json::Value) -> serde_json::Value {
    let response = client()
        .post(server.url("/api/v1/requests"))
        .header("Authorization", server.auth())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// `POST /api/v1/shares` with `body`, whatever the answer.
pub async fn post_share(server: &Server, body: &serde_json::Value) -> reqwest::Response {
    client()
        .post(server.url("/api/v1/shares"))
        .header("Authorization", server.auth())
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A `GET` as a program that wants JSON (`Accept: application/json`).
pub async fn get_json(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// A `GET` as a browser opening a link: the landing page of a share.
pub async fn browser_get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
}

/// `POST /api/v1/shares`, which must create the share.
pub async fn create_share(server: &Server, body: serde_json::Value) -> CreatedShare {
    let response = post_share(server, &body).await;
    assert_eq!(
        response.status(),
        201,
        "create share: {}",
        response.text().await.unwrap()
    );
    let json: serde_json::Value = response.json().await.unwrap();
    CreatedShare {
        id: json["id"].as_str().unwrap().to_owned(),
        url: json["url"].as_str().unwrap().to_owned(),
        // Multipart tickets have no single URL, only part URLs.
        upload_url: json["upload"]["url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        json,
    }
}

/// Sends `bytes` as the ticket says (its URL and signed headers), then, when the ticket asks
/// for it (S3), reports the upload complete. Ok, or the refusal's status and code (for a
/// refusal by the bucket: `s3:<Code>` from its XML error).
pub async fn send_to_ticket(
    server: &Server,
    share: &CreatedShare,
    bytes: Vec<u8>,
) -> Result<(), (u16, String)> {
    send_to_url(server, share, &share.upload_url, bytes).await
}

/// Like [`send_to_ticket`] but to another (e.g. tampered) URL with the ticket's headers.
pub async fn send_to_url(
    server: &Server,
    share: &CreatedShare,
    url: &str,
    bytes: Vec<u8>,
) -> Result<(), (u16, String)> {
    let length = bytes.len();
    let mut request = client()
        .put(url)
        .header("content-length", length)
        .body(bytes);
    for (name, value) in share.json["upload"]["headers"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !name.eq_ignore_ascii_case("content-length") {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
    }
    let response = request.send().await.unwrap();
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    complete(server, share).await
}

/// `POST complete_url` when the ticket has one.
pub async fn complete(server: &Server, share: &CreatedShare) -> Result<(), (u16, String)> {
    let Some(complete_url) = share.json["upload"]["complete_url"].as_str() else {
        return Ok(());
    };
    let response = client()
        .post(complete_url)
        .header("Authorization", server.auth())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        Ok(())
    } else {
        Err(refusal(response).await)
    }
}

async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        return (
            status,
            json["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_default();
    (status, format!("s3:{code}"))
}

/// The URL with its last character (part of the signature on both stores) changed.
pub fn tamper_signature(url: &str) -> String {
    let mut tampered = url.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    tampered
}

/// Creates a share for `bytes` and uploads them; returns the share.
pub async fn share_bytes(
    server: &Server,
    filename: &str,
    bytes: &[u8],
    max_downloads: u32,
) -> CreatedShare {
    let share = create_share(
        server,
        serde_json::json!({
            "filename": filename, "size": bytes.len(), "max_downloads": max_downloads,
            "sha256": sha256_hex(bytes),
        }),
    )
    .await;
    send_to_ticket(server, &share, bytes.to_vec())
        .await
        .expect("upload");
    share
}

/// A plain GET of the link as curl would do it: the claim. Returns the response.
pub async fn claim(link: &str) -> reqwest::Response {
    client()
        .get(link)
        .header("Accept", "*/*")
        .send()
        .await
        .unwrap()
}

/// Claims and downloads; returns (download response headers, body).
pub async fn download(link: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = claim(link).await;
    assert_eq!(
        response.status(),
        303,
        "claim: {}",
        response.text().await.unwrap()
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let response = client().get(&location).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        json["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// An authenticated `GET` of an API path: the status and the JSON answer (null if none).
pub async fn api_get(server: &Server, path: &str) -> (u16, serde_json::Value) {
    let response = client()
        .get(server.url(path))
        .header("Authorization", server.auth())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

pub async fn owner_view(server: &Server, id: &str) -> serde_json::Value {
    let (status, view) = api_get(server, &format!("/api/v1/shares/{id}")).await;
    assert_eq!(status, 200, "{view}");
    view
}

/// The requester's view of an upload request.
pub async fn request_view(server: &Server, id: &str) -> serde_json::Value {
    let (status, view) = api_get(server, &format!("/api/v1/requests/{id}")).await;
    assert_eq!(status, 200, "{view}");
    view
}

/// `curl -T` twice to a plain upload request's `url`: the first upload fulfils it (201), the
/// second (one byte, `x`) is refused with 409.
pub async fn fulfil_then_refuse(url: &str) {
    for (name, status) in [("first.txt", 201), ("second.txt", 409)] {
        let answer = client()
            .put(format!("{url}/{name}"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{name}");
    }
}
