//! `/b/dl/…`: the embedded store's signed, expiring download URLs (what a presigned S3 GET is
//! for the S3 store). The signature covers the blob key, the file name and the content type, so
//! the response headers cannot be chosen by whoever holds the URL. Supports `Range` so an
//! interrupted download can resume while the claim's lease lasts.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use once_blob::BlobError;
use once_domain::range::{RequestedRange, requested_range};
use once_domain::share::validate_content_type;
use once_domain::{BlobKey, DomainError, Filename};

use once_api::ErrorBody;

use super::AppState;
use super::error::ApiResult;
use super::openapi::SignedQuery;

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn header_value(text: &str) -> HeaderValue {
    // Every value here was validated (file names have no control characters, content types
    // are visible ASCII); the fallback only guards against a future mistake.
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `GET /b/dl/…?…`: the embedded store's signed download URL, as a claim hands it out.
#[utoipa::path(
    get,
    path = once_api::routes::BLOB_DOWNLOAD,
    tag = "storage",
    params(
        ("blob_key" = String, Path, description = "The stored object"),
        ("filename" = String, Path, description = "The file's name, as it is saved"),
        ("ct" = Option<String>, Query, description = "The content type it is served with"),
        SignedQuery,
        ("range" = Option<String>, Header, description = "`bytes=…`, to resume"),
    ),
    responses(
        (status = 200, description = "The file", content(("*/*"))),
        (status = 206, description = "The part of the file the Range asked for", content(("*/*")),
            headers(("content-range" = String))),
        (status = 400, description = "A file name or content type that is not valid",
            body = ErrorBody),
        (status = 403, description = "A URL altered or expired (`bad_url_signature`, \
            `url_expired`)", body = ErrorBody),
        (status = 410, description = "The bytes are gone (`share_consumed`)", body = ErrorBody),
        (status = 416, description = "A Range outside the file (`range_not_satisfiable`)",
            body = ErrorBody, headers(("content-range" = String))),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`store_unavailable`)",
            body = ErrorBody),
    ),
)]
pub async fn download(
    State(app): State<Arc<AppState>>,
    Path((blob_key, filename)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = uri.query().unwrap_or_default();
    app.service
        .verify_download(uri.path(), query, once_domain::now())?;
    let blob_key = BlobKey::parse(&blob_key).map_err(|_| DomainError::BadUrlSignature)?;
    let filename = Filename::parse(&filename)?;
    let content_type = validate_content_type(query_param(query, "ct").as_deref())?;

    let Some(size) = app.service.blob_size(&blob_key).await? else {
        return Err(DomainError::ShareConsumed.into());
    };
    // A Range we cannot parse is ignored, as HTTP allows; several ranges: the first.
    let range = match headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|text| requested_range(text, size))
    {
        None | Some(RequestedRange::Whole) => None,
        Some(RequestedRange::Part(range)) => Some(range),
        Some(RequestedRange::Unsatisfiable) => return Ok(unsatisfiable(size)),
    };
    // Blobs served here come from the embedded store, which keeps one version.
    let read = match app.service.open_blob(&blob_key, range).await {
        Ok(read) => read,
        Err(BlobError::RangeNotSatisfiable { size }) => return Ok(unsatisfiable(size)),
        Err(error) => return Err(error.into()),
    };

    let (status, length) = match &read.range {
        Some(range) => (StatusCode::PARTIAL_CONTENT, range.end() - range.start() + 1),
        None => (StatusCode::OK, read.total_size),
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, header_value(&content_type))
        .header(
            header::CONTENT_DISPOSITION,
            header_value(&filename.content_disposition()),
        )
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-store")
        // A file opened in the browser (an HTML or SVG upload) runs no script and reaches
        // nothing of this origin: it is somebody else's content.
        .header(header::CONTENT_SECURITY_POLICY, "sandbox");
    if let Some(range) = &read.range {
        response = response.header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                range.start(),
                range.end(),
                read.total_size
            ),
        );
    }
    Ok(response
        .body(Body::from_stream(read.body.inspect_ok(|chunk| {
            metrics::counter!("once_bytes_sent_total").increment(chunk.len() as u64)
        })))
        .expect("valid response parts"))
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = super::error::render(&DomainError::RangeNotSatisfiable);
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response.into_response()
}
