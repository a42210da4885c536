//! The web app: sign-in, send, landing, request and my-shares pages, their one stylesheet and
//! script, and the strings they show. Pages are askama templates (`crates/server/templates/`),
//! compiled and checked with the binary and escaping every value by default. Scripts talk to
//! the same HTTP API as the CLI, with the session cookie instead of a key.
//!
//! Every page carries a strict Content-Security-Policy: scripts and styles only from our own
//! `/assets/`, no inline code at all, connections only to this server (and the bucket, where
//! browsers upload straight to it), no framing, no referrer.

pub mod assets;
pub mod pages;
pub mod session;
pub mod strings;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use strings::Strings;

/// The pages people read and the files their scripts load: HTML, CSS and JavaScript for
/// browsers, no API, so they stay out of the OpenAPI document. The only plain `.route(`s of the
/// main listener are here (a test in `http::openapi` holds every other one to `routes!`).
pub fn pages_and_assets() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::default()
        .route("/", get(pages::home))
        .route("/shares", get(pages::shares))
        .route("/assets/{name}", get(assets::serve))
        .route(assets::DOWNLOAD_WORKER, get(assets::download_worker))
        .route(assets::ARGON2_ON_DEMAND, get(assets::argon2_on_demand))
}

/// What every page shares: its language, its assets, who is signed in, and the settings its
/// script reads from a JSON data block (never executed, so the policy needs no `unsafe-inline`).
pub struct Chrome {
    pub t: &'static Strings,
    pub css: &'static str,
    pub js: &'static str,
    pub signed_in: bool,
    pub csrf: String,
    config: PageConfig,
}

#[derive(Serialize)]
struct PageConfig {
    strings: serde_json::Map<String, serde_json::Value>,
    csrf: String,
    assets: assets::ScriptUrls,
}

impl Chrome {
    /// `session` is a session token already checked by the caller.
    pub fn for_request(app: &AppState, headers: &HeaderMap, session: Option<&str>) -> Self {
        let accept_language = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let t = strings::pick(accept_language);
        let csrf = session
            .map(|session| app.service.csrf_token(session))
            .unwrap_or_default();
        Chrome {
            t,
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            signed_in: session.is_some(),
            csrf: csrf.clone(),
            config: PageConfig {
                strings: strings::for_script(t),
                csrf,
                assets: assets::script_urls(),
            },
        }
    }

    /// For the landing page of an encrypted share: the script may load the decryption modules
    /// (and not the send page's).
    pub fn for_decryption(mut self) -> Self {
        self.config.assets = assets::decryption_script_urls();
        self
    }

    /// The JSON data block for the page script; `<` is escaped so no value can end the block.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config)
            .unwrap_or_else(|_| "{}".into())
            .replace('<', "\\u003c")
    }
}

/// The page policy: only our own assets, connections to us and (where browsers upload to it)
/// the bucket, forms posted only to us (or, after a claim, redirected to the bucket).
pub fn policy(bucket_origin: Option<&str>) -> String {
    let bucket = bucket_origin
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'{bucket}; form-action 'self'{bucket}; base-uri 'none'; \
         frame-ancestors 'none'"
    )
}

/// A rendered page with its status and the headers every page carries; its policy admits
/// the bucket for the pages that talk to it.
pub fn respond(
    app: &AppState,
    status: StatusCode,
    html: Result<String, askama::Error>,
) -> Response {
    page_response(status, html, app.service.upload_origin().as_deref())
}

/// [`respond`] for pages that never reach the bucket (sign-in, problems).
pub fn page_response(
    status: StatusCode,
    html: Result<String, askama::Error>,
    bucket_origin: Option<&str>,
) -> Response {
    let document = match html {
        Ok(document) => document,
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    let mut response = (status, Html(document)).into_response();
    let headers = response.headers_mut();
    // Referrer-Policy, nosniff and Cache-Control come from the router's security_headers.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(value) = HeaderValue::from_str(&policy(bucket_origin)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    response
}

/// Sizes for people: 1.5 MiB rather than 1572864.
pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// A time as the page shows it before its script turns it into the reader's local time.
pub fn utc_text(instant: once_domain::Instant) -> String {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute()
    )
}
