//! The HTTP layer: thin handlers that parse, call the [`Service`], and render. Routes follow
//! `docs/api.md`.

mod api;
mod audit;
mod auth;
mod blobs;
pub mod error;
pub mod forwarded;
pub mod limits;
mod links;
pub mod openapi;
pub mod pace;
pub mod plain;
pub mod request_metrics;
mod sealed;
mod uploads;
mod views;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use once_blob::ByteStream;
use once_domain::DomainError;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::service::{IncomingBody, Service};
use forwarded::Origin;

pub struct AppState {
    pub service: Arc<Service>,
    /// This server speaks HTTPS itself.
    pub tls: bool,
    /// Configured public base URL without a trailing slash.
    pub public_url: Option<String>,
    /// Renders `/metrics`; None when another recorder owns this process.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// How fast request bodies must keep arriving.
    pub body_pace: pace::BodyPace,
    /// Largest JSON body an API request may carry (read only once the key is known).
    pub api_body_limit: usize,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: forwarded::TrustedProxies,
    /// Request rates per key and per client address.
    pub rate_limits: limits::RateLimits,
}

impl AppState {
    /// How a request reached us, believing forwarding headers only from trusted proxies.
    pub fn origin(&self, headers: &HeaderMap, extensions: &axum::http::Extensions) -> Origin {
        Origin::of(
            headers,
            forwarded::peer(extensions),
            &self.trusted_proxies,
            self.tls,
        )
    }

    /// The base for links in responses: the configured public URL, else the scheme and host
    /// the request came with (as a trusted proxy forwarded them).
    pub fn base_url(&self, origin: &Origin) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = origin.host.as_deref().unwrap_or("localhost");
        let scheme = if origin.https { "https" } else { "http" };
        format!("{scheme}://{host}")
    }

    /// Session cookies are `Secure` when people reach this server over HTTPS.
    pub fn secure_cookies(&self, origin: &Origin) -> bool {
        origin.https
            || self
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let tls = state.tls;
    let router = routes(state);
    if tls {
        // Browsers that once reached us over HTTPS never fall back to plain HTTP.
        router.layer(axum::middleware::map_response(strict_transport_security))
    } else {
        router
    }
}

async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

fn routes(state: Arc<AppState>) -> Router {
    // Every route but the web pages goes through `routes!`, so it is in the OpenAPI document
    // (a test below refuses a plain `.route(` here); the document itself is served from what
    // the routers collected.
    let api = OpenApiRouter::default()
        .routes(routes!(api::create_share, api::list_shares))
        .routes(routes!(api::get_share, api::revoke_share))
        .routes(routes!(api::complete_share))
        .routes(routes!(api::part_urls, api::stored_parts))
        .routes(routes!(api::put_file))
        .routes(routes!(api::create_request, api::list_requests))
        .routes(routes!(api::get_request))
        .routes(routes!(audit::list))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.api_body_limit));
    let api = openapi::requires_key(api);

    // Where no key is needed, so where strangers knock: a budget per client address.
    let knocked_at = OpenApiRouter::default()
        .routes(routes!(links::open, links::claim))
        // A fixed segment wins over `/s/{id}/{filename}` in axum's router; share links never
        // carry a file name, so no link of a file called "seal" is lost to it.
        .routes(routes!(sealed::seal))
        .routes(routes!(links::open_named, links::claim_named))
        .routes(routes!(uploads::request_page, uploads::put_request))
        .routes(routes!(uploads::put_request_named))
        .routes(
            routes!(uploads::start_request_upload)
                .layer(axum::extract::DefaultBodyLimit::max(state.api_body_limit)),
        )
        .routes(
            routes!(
                uploads::request_upload_stored_parts,
                uploads::request_upload_part_urls
            )
            .layer(axum::extract::DefaultBodyLimit::max(state.api_body_limit)),
        )
        .routes(
            routes!(uploads::complete_request_upload)
                .layer(axum::extract::DefaultBodyLimit::max(state.api_body_limit)),
        )
        // A key typed into the sign-in form is a guess like any other.
        .routes(routes!(web::session::sign_in).layer(axum::extract::DefaultBodyLimit::max(4096)))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::per_address,
        ));
    let knocked_at = openapi::answers_like(
        knocked_at,
        once_api::routes::SHARE_LINK_NAMED,
        once_api::routes::SHARE_LINK,
    );
    let knocked_at = openapi::answers_like(
        knocked_at,
        once_api::routes::REQUEST_LINK_NAMED,
        once_api::routes::REQUEST_LINK,
    );
    let knocked_at = openapi::rate_limited_per_address(knocked_at);

    let served = openapi::Served::default();
    let (router, document) = OpenApiRouter::with_openapi(openapi::base())
        .merge(web::pages_and_assets())
        // A CSRF token is all this form carries.
        .routes(routes!(web::session::sign_out).layer(axum::extract::DefaultBodyLimit::max(4096)))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(render_metrics))
        .routes(routes!(openapi::serve).layer(axum::Extension(served.clone())))
        .merge(api)
        .merge(knocked_at)
        .routes(routes!(uploads::put_ticket))
        .routes(routes!(uploads::put_part))
        .routes(routes!(blobs::download))
        .split_for_parts();
    served.publish(openapi::finish(document));

    router
        .fallback(web::pages::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            json_rejections,
        ))
        .layer(axum::middleware::from_fn(request_metrics::track))
        .layer(axum::middleware::map_response(error::log_failures))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.body_pace,
            pace::pace_bodies,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with({
                let app = state.clone();
                // The client's address goes into every log line of the request; the path does
                // not, since share IDs and signed URLs are secrets.
                move |request: &axum::http::Request<Body>| {
                    let origin = app.origin(request.headers(), request.extensions());
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        client = %origin.client,
                    )
                }
            }),
        )
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    error::render(&DomainError::MethodNotAllowed)
}

/// Rejections by axum's extractors (a body over the limit of a JSON route, a path segment that
/// is not valid percent-encoded UTF-8) come as plain text; clients get the same JSON error shape
/// as for every other refusal. Our own handlers never answer these statuses in plain text.
async fn json_rejections(State(app): State<Arc<AppState>>, response: Response) -> Response {
    let is_plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/plain"));
    if !is_plain_text {
        return response;
    }
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => error::render(&DomainError::TooLarge {
            limit: app.api_body_limit as u64,
        }),
        StatusCode::BAD_REQUEST => error::render(&DomainError::InvalidPath),
        _ => response,
    }
}

/// Headers every answer carries unless its handler chose otherwise: answers hold capability
/// URLs (share links, upload tickets), so nothing may cache them, sniff them into another type
/// or leak them in a Referer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    response
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = once_api::routes::HEALTH,
    tag = "service",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when both stores answer.
#[utoipa::path(
    get,
    path = once_api::routes::READY,
    tag = "service",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`not ready`: a store does not answer (the log says which)",
            body = String, content_type = "text/plain"),
    ),
)]
async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    match app.service.readiness().await {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
        }
    }
}

/// Prometheus text format.
#[utoipa::path(
    get,
    path = once_api::routes::METRICS,
    tag = "service",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Every metric, in Prometheus's text format", body = String,
            content_type = "text/plain"),
        (status = 404, description = "Metrics are not enabled in this process", body = String,
            content_type = "text/plain"),
    ),
)]
async fn render_metrics(State(app): State<Arc<AppState>>) -> Response {
    metrics::gauge!("once_pending_upload_bytes").set(app.service.pending_upload_bytes() as f64);
    match &app.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// Turns a request body into the store's stream type, with what the headers announced.
pub(crate) fn incoming(
    headers: &HeaderMap,
    body: Body,
) -> Result<IncomingBody, once_domain::DomainError> {
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let sha256 = headers
        .get(auth::CONTENT_SHA256)
        .map(|value| once_domain::Sha256Digest::parse_hex(value.to_str().unwrap_or_default()))
        .transpose()?;
    let body: ByteStream = Box::pin(
        body.into_data_stream()
            .map_err(std::io::Error::other)
            .inspect_ok(|chunk| {
                metrics::counter!("once_bytes_received_total").increment(chunk.len() as u64)
            }),
    );
    Ok(IncomingBody {
        body,
        content_length,
        sha256,
    })
}

/// A header as text, if present and valid.
pub(crate) fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

pub(crate) fn rfc3339(instant: once_domain::Instant) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
