//! Request metrics: a count by route, method and status, and a latency histogram by route and
//! method. The route is the router's template (`/s/{id}`), never the path itself, since share
//! ids and signed URLs are secrets and would also make a new series per share.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The latency histogram's name, for its buckets in the exporter.
pub const REQUEST_DURATION: &str = "once_http_request_duration_seconds";

/// Upper bounds in seconds: from a cached page to a slow upload part.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only what the router matched: an unknown path is one series, whatever was asked.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |matched| matched.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    // Headers sent: for a download that is the time to the first byte, not to the last.
    metrics::histogram!(REQUEST_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "once_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    response
}
