//! An HTTP reverse proxy with a request-body limit, as Cloudflare's free plan (100 MB) or an
//! nginx `client_max_body_size` puts in front of a server: a body announced or found larger
//! than the limit is answered `413` and never reaches the upstream. It forwards the `Host`
//! header as sent, so presigned URLs signed for the proxy's address stay valid behind it, and
//! counts the request-body bytes it forwarded, so a test can measure what an upload sent.
//! It runs on its own runtime thread: the tests run client commands synchronously.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

/// Cloudflare's free-plan limit on a request body.
pub const CLOUDFLARE_FREE_LIMIT: u64 = 100_000_000;

pub struct BodyLimitProxy {
    pub endpoint: String,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

struct ProxyState {
    upstream: String,
    limit: u64,
    http: reqwest::Client,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

/// Headers of one connection, which a proxy must not pass on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [("content-type", "text/html")],
        "<html><body><h1>413 Request Entity Too Large</h1></body></html>",
    )
        .into_response()
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let announced = parts
        .headers
        .get("content-length")
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > state.limit) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return too_large();
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let mut upstream = state
        .http
        .request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name, value);
        }
    }
    let (limit, forwarded, refused) = (state.limit, state.forwarded.clone(), state.refused.clone());
    let mut seen = 0u64;
    let body = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            let result = if seen > limit {
                refused.fetch_add(1, Ordering::SeqCst);
                Err(std::io::Error::other("request body over the proxy's limit"))
            } else {
                forwarded.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Ok(chunk)
            };
            async move { result }
        });
    let upstream = upstream.body(reqwest::Body::wrap_stream(body));
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(_) if announced.is_none() => return too_large(),
        Err(error) => {
            return (StatusCode::BAD_GATEWAY, format!("upstream failed: {error}")).into_response();
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

impl BodyLimitProxy {
    /// A proxy on a random loopback port in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str, limit: u64) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let forwarded = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            limit,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            forwarded: forwarded.clone(),
            refused: refused.clone(),
        });
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self {
            endpoint,
            forwarded,
            refused,
        }
    }

    /// Request-body bytes passed to the upstream so far.
    pub fn forwarded_bytes(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// Requests refused for their body's size so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}
