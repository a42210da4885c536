//! The OpenAPI document (`GET /api/v1/openapi.json`): served without a key, with an ETag that a
//! client can revalidate, and equal to the committed `docs/openapi.json`, so a change to a route
//! or a wire type shows in review. After such a change, rewrite the file with
//! `ONCE_BLESS=1 cargo nextest run -p once -E 'test(/^openapi::/)'` and read the diff.

use std::path::PathBuf;

use crate::harness::*;
use once_api::routes;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

async fn fetch(server: &Server) -> reqwest::Response {
    client()
        .get(server.url(routes::OPENAPI))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let server = Server::start();
    let response = fetch(&server).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    if std::env::var_os("ONCE_BLESS").is_some() {
        std::fs::write(committed_path(), &served).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        served == committed,
        "docs/openapi.json is not the document the server serves; if the change is meant, run \
         `ONCE_BLESS=1 cargo nextest run -p once -E 'test(/^openapi::/)'` and review the diff"
    );
}

#[tokio::test]
async fn an_unchanged_document_is_answered_304_to_its_etag() {
    let server = Server::start();
    let first = fetch(&server).await;
    let etag = first.headers()["etag"].clone();
    assert!(etag.to_str().unwrap().starts_with('"'));
    assert_eq!(first.headers()["cache-control"], "no-cache");

    let again = client()
        .get(server.url(routes::OPENAPI))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = client()
        .get(server.url(routes::OPENAPI))
        .header("if-none-match", "\"an-older-document\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn the_document_has_every_route_of_the_wire_contract_and_no_web_page() {
    let server = Server::start();
    let document: serde_json::Value = fetch(&server).await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    for route in [
        routes::SHARES,
        routes::SHARE,
        routes::SHARE_COMPLETE,
        routes::SHARE_PARTS,
        routes::FILE,
        routes::REQUESTS,
        routes::REQUEST,
        routes::SHARE_LINK,
        routes::SHARE_LINK_NAMED,
        routes::SHARE_SEAL,
        routes::REQUEST_LINK,
        routes::REQUEST_LINK_NAMED,
        routes::REQUEST_UPLOADS,
        routes::REQUEST_UPLOAD_PARTS,
        routes::REQUEST_UPLOAD_COMPLETE,
        routes::TICKET_UPLOAD,
        routes::PART_UPLOAD,
        routes::BLOB_DOWNLOAD,
        routes::HEALTH,
        routes::READY,
        routes::METRICS,
        routes::OPENAPI,
        routes::SESSION,
        routes::SESSION_END,
    ] {
        assert!(paths.contains_key(route), "{route} is not in the document");
    }
    for page in ["/", "/shares", "/assets/{name}"] {
        assert!(
            !paths.contains_key(page),
            "the page {page} is in the document"
        );
    }
    // Every key holder's operation says how the key is presented.
    for (path, item) in paths
        .iter()
        .filter(|(path, _)| path.starts_with("/api/v1/") && path.as_str() != routes::OPENAPI)
    {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["security"]
                    .as_array()
                    .is_some_and(|s| s.len() == 3),
                "{method} {path} names no key schemes"
            );
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
    }
    // Operation ids are unique, as client generators need them to be.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| operation["operationId"].as_str().unwrap())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "an operation id is used twice");
    // The error body's code is one of the stable codes.
    let codes = &document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    for code in [
        "share_not_found",
        "rate_limited",
        "invalid_json",
        "storage_full",
    ] {
        assert!(
            codes.as_array().unwrap().iter().any(|c| c == code),
            "{code} is not among the error codes"
        );
    }
}
