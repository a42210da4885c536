//! Trace export (OTLP over HTTP, JSON): with `ONCE_OTLP_ENDPOINT` set, the server sends a span
//! for each step to a collector — here a receiver in the test — and the spans carry no file
//! name and no share id. Off by default, so no other test sees any of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::harness::*;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn collect(State(seen): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Ok(json) = serde_json::from_slice(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    seen.lock().unwrap().push((content_type, json));
    StatusCode::OK
}

fn span_names(export: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                names.extend(span["name"].as_str().map(str::to_owned));
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_is_a_span_at_the_collector_without_names_or_ids() {
    let seen: Received = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(collect))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The built-in reaper (every second here) is the one whose passes are spans.
    let server = Server::start_with(&[
        ("ONCE_OTLP_ENDPOINT", &endpoint),
        ("ONCE_REAP_INTERVAL", "1s"),
    ]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("TRACE-MARKER.txt"), b"traced").unwrap();
    let link = link_of(
        &server,
        work.path(),
        &["send", "--no-encrypt", "-q", "TRACE-MARKER.txt"],
    );
    let (_, bytes) = download(&link).await;
    assert_eq!(bytes, b"traced");

    // The SDK exports in batches every few seconds.
    // On S3 the bytes go straight to the bucket: the server's step is the completion.
    let arrival = if server.is_s3() { "complete" } else { "upload" };
    let wanted = ["create", arrival, "claim", "reap"];
    let mut names = Vec::new();
    for _ in 0..300 {
        names = seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, export)| span_names(export))
            .collect();
        if wanted
            .iter()
            .all(|name| names.iter().any(|seen| seen == name))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in wanted {
        assert!(
            names.iter().any(|seen| seen == name),
            "no {name} span in {names:?}"
        );
    }
    let exports = seen.lock().unwrap().clone();
    for (content_type, export) in &exports {
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let text = export.to_string();
        assert!(text.contains("\"once\""), "the service name: {text}");
        assert!(
            !text.contains("TRACE-MARKER"),
            "a file name in a span: {text}"
        );
        let share_id = link.rsplit('/').next().unwrap();
        assert!(!text.contains(share_id), "a share id in a span: {text}");
    }
}
