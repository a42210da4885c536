//! The few static files the pages load, embedded in the binary and served under names that
//! carry a hash of their content, so they can be cached for a year and never go stale.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

struct Asset {
    /// The file's own name, as the code refers to it.
    file: &'static str,
    /// The name it is served under: `app.1a2b3c4d5e6f.js`.
    served: String,
    body: &'static [u8],
    content_type: &'static str,
}

const FILES: &[(&str, &[u8], &str)] = &[
    (
        "app.css",
        include_bytes!("assets/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("assets/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "zip.js",
        include_bytes!("assets/zip.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "qr.js",
        include_bytes!("assets/vendor/lean-qr.mjs"),
        "text/javascript; charset=utf-8",
    ),
    (
        "seal.js",
        include_bytes!("assets/seal.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "argon2.js",
        include_bytes!("assets/vendor/argon2.mjs"),
        "text/javascript; charset=utf-8",
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(file, body, content_type)| {
            let hash = hex::encode(&Sha256::digest(body)[..6]);
            let (stem, extension) = file.rsplit_once('.').unwrap_or((file, ""));
            Asset {
                file,
                served: format!("{stem}.{hash}.{extension}"),
                body,
                content_type,
            }
        })
        .collect()
});

/// The URL path of an asset by its file name.
pub fn url(file: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|asset| asset.file == file)
        .map(|asset| asset.served.as_str())
        .unwrap_or_default()
}

/// Where the page script finds the modules it loads on demand. A page names only the ones it
/// may load, so what it names stays within the page budget; the send page reaches Argon2id
/// through a redirect instead ([`ARGON2_ON_DEMAND`]).
#[derive(Serialize, Default)]
pub struct ScriptUrls {
    #[serde(skip_serializing_if = "Option::is_none")]
    zip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argon2: Option<String>,
    /// The service worker that saves a decrypted download to disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<&'static str>,
}

fn asset_path(file: &str) -> Option<String> {
    Some(format!("/assets/{}", url(file)))
}

/// The send page's archive writer, QR code drawer and the format it encrypts with; Argon2id
/// only through [`ARGON2_ON_DEMAND`], since it is loaded just for a password.
pub fn script_urls() -> ScriptUrls {
    ScriptUrls {
        zip: asset_path("zip.js"),
        qr: asset_path("qr.js"),
        seal: asset_path("seal.js"),
        argon2: Some(ARGON2_ON_DEMAND.to_owned()),
        worker: None,
    }
}

/// Where the send page imports Argon2id from when a password is typed: a redirect to the
/// current `argon2.js`. The send page does not name the asset itself, since with the archive
/// writer, the QR module and `seal.js` it would take the page over its budget for every send,
/// while only a send with a password needs it.
pub const ARGON2_ON_DEMAND: &str = "/modules/argon2.js";

/// Answers [`ARGON2_ON_DEMAND`]: the asset's current name, looked up at each import (not
/// cached), so a release's page never reaches the last one's module.
pub async fn argon2_on_demand() -> Response {
    let mut response = (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/assets/{}", url("argon2.js")))],
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The landing page of an end-to-end encrypted share: the format, and Argon2id for a password.
pub fn decryption_script_urls() -> ScriptUrls {
    ScriptUrls {
        seal: asset_path("seal.js"),
        argon2: asset_path("argon2.js"),
        worker: Some(DOWNLOAD_WORKER),
        ..ScriptUrls::default()
    }
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.served == name) else {
        return super::super::error::render(&once_domain::DomainError::RouteNotFound);
    };
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// The download worker's script and the route it is served at; its scope is `/dl/`.
pub const DOWNLOAD_WORKER: &str = "/dl/worker.js";

/// The service worker that streams a decrypted download to disk (`assets/dl-worker.js`), with
/// the import of the current `seal.js` in front: a service worker may not `import()` at run
/// time, and the module's name changes with its content. Not cached, so a release's worker
/// replaces the last one at the next visit.
static WORKER_SOURCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "import {{ openingStream }} from '/assets/{}';\n{}",
        url("seal.js"),
        include_str!("assets/dl-worker.js")
    )
});

pub async fn download_worker(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::http::AppState>>,
) -> Response {
    let bucket = app
        .service
        .upload_origin()
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    let policy = format!("default-src 'none'; script-src 'self'; connect-src 'self'{bucket}");
    let mut response = (StatusCode::OK, WORKER_SOURCE.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}
