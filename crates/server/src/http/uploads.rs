//! Uploads that arrive through the server: the embedded store's signed upload tickets
//! (`/b/up/{id}`) and part URLs (`/b/part/{token}/{n}`), what presigned S3 URLs are for the S3
//! store; upload-request URLs (`/r/{id}`) for `curl -T`; and the sessions through which an
//! uploader sends a file to a request in parts (`/r/{id}/uploads/…`), straight to the bucket
//! where there is one.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use once_api::{
    CompleteShare, ErrorBody, NewRequestUpload, OpenRequest, PartTickets, RefreshParts,
    RequestUploadTicket, ShareView, StoredPartView, StoredParts, Uploaded, headers as wire,
};
use once_domain::preview::{Opener, wants_html};
use once_domain::{DomainError, RequestId, SessionSpec, ShareId, UploadToken};

use crate::service::{SessionStart, parse_sha256, reported_parts};

use super::audit::{UploadTo, recorded_upload, source};
use super::error::{ApiError, ApiResult};
use super::forwarded::Origin;
use super::openapi::{AnnouncedSha256, SignedQuery};
use super::web::pages;
use super::{AppState, header_text, incoming, links, sealed, views};
use crate::service::evidence::Uploader;

/// `PUT /b/up/{id}?…`: the single-request upload ticket of the embedded store.
#[utoipa::path(
    put,
    path = once_api::routes::TICKET_UPLOAD,
    tag = "storage",
    params(
        ("id" = String, Path, description = "The share's id"),
        SignedQuery,
        AnnouncedSha256,
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file's bytes",
    ),
    responses(
        (status = 201, description = "Stored: the share is downloadable", body = ShareView),
        (status = 400, description = "A body that does not match the declared size or checksum",
            body = ErrorBody),
        (status = 403, description = "A URL altered, expired or never signed (`bad_url_signature`, \
            `upload_expired`)", body = ErrorBody),
        (status = 404, description = "No such share (`share_not_found`)", body = ErrorBody),
        (status = 409, description = "The ticket already received its file (`slot_used`)",
            body = ErrorBody),
        (status = 410, description = "The share expired or was revoked", body = ErrorBody),
        (status = 413, description = "Over the declared size (`too_large`)", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The database or the upload space is unavailable",
            body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn put_ticket(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    let id = ShareId::parse(&id).map_err(|_| DomainError::ShareNotFound)?;
    let received = app
        .service
        .receive_ticket_upload(
            uri.path(),
            uri.query().unwrap_or_default(),
            &id,
            incoming(&headers, body)?,
            &uploader(&origin, &headers),
            started_at,
        )
        .await;
    let share = recorded_upload(
        &app,
        UploadTo::Share(&id),
        received,
        once_domain::now(),
        &source(&origin, &headers, None),
    )
    .await?;
    tracing::info!(share = %share.id.log_label(), size = share.size.unwrap_or_default(), "share published");
    Ok((
        StatusCode::CREATED,
        Json(views::share(
            &share,
            &app.base_url(&origin),
            once_domain::now(),
        )),
    )
        .into_response())
}

fn parse_request_id(id: &str) -> Result<RequestId, DomainError> {
    RequestId::parse(id).map_err(|_| DomainError::RequestNotFound)
}

/// The upload page for people; a small JSON status for programs.
#[utoipa::path(
    get,
    path = once_api::routes::REQUEST_LINK,
    tag = "uploads",
    params(("id" = String, Path, description = "The request's id"),),
    responses(
        (status = 200, description = "The upload page for a browser; what the URL accepts, for a \
            program", content(("text/html"), (OpenRequest = "application/json"))),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 403, description = "The request expired (`upload_expired`)",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 404, description = "No such request (`request_not_found`)",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 409, description = "The request already received its file (`slot_used`)",
            content((ErrorBody = "application/json"), ("text/html"))),
    ),
)]
pub async fn request_page(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: axum::http::Method,
    origin: Origin,
    headers: HeaderMap,
) -> Response {
    // People get the upload page by the same rule that gives them a share's landing page.
    let html = links::classify(&method, &headers) != Opener::Downloader
        || wants_html(header_text(&headers, header::ACCEPT).unwrap_or_default());
    let request = match parse_request_id(&id) {
        Ok(id) => app.service.open_request(&id).await.map_err(ApiError::from),
        Err(error) => Err(error.into()),
    };
    let now = once_domain::now();
    let request = match request {
        Ok(request) => request,
        Err(error) if html => return pages::problem(&app, &headers, &error),
        Err(error) => return error.into_response(),
    };
    if let Some(refusal) = request.upload_refusal(now) {
        let error = ApiError::from(refusal);
        return if html {
            pages::problem(&app, &headers, &error)
        } else {
            error.into_response()
        };
    }
    if html {
        let uploads_url = format!(
            "{}{}",
            app.base_url(&origin),
            once_api::routes::request_uploads(request.id.as_str())
        );
        return pages::upload_page(&app, &headers, &request, &uploads_url);
    }
    Json(OpenRequest {
        state: "open".to_owned(),
        filename: request
            .filename
            .as_ref()
            .map(|name| name.as_str().to_owned()),
        max_size: request.max_size,
        expires_at: request.expires_at,
        encrypted: request.encrypted,
        note: request.note.as_ref().map(|note| note.as_str().to_owned()),
        from: request
            .requester
            .as_ref()
            .map(|name| name.as_str().to_owned()),
    })
    .into_response()
}

/// `curl -T file https://host/r/ID`: the file in one request (a plain request only).
#[utoipa::path(
    put,
    path = once_api::routes::REQUEST_LINK,
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("x-once-filename" = Option<String>, Header, description = "The file's name, \
            percent-encoded (the browser page sends it here)"),
        AnnouncedSha256,
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file's bytes",
    ),
    responses(
        (status = 201, description = "Uploaded: a line for people, or the upload as JSON for a \
            client that accepts it (the link goes to the requester)",
            content((String = "text/plain"), (Uploaded = "application/json"))),
        (status = 400, description = "A bad name, type or checksum, or a plain upload to an \
            encrypted request (`encryption_required`)", body = ErrorBody),
        (status = 403, description = "The request expired (`upload_expired`), or the requester is \
            over quota", body = ErrorBody),
        (status = 404, description = "No such request (`request_not_found`)", body = ErrorBody),
        (status = 409, description = "The request already received its file (`slot_used`)",
            body = ErrorBody),
        (status = 413, description = "Over the request's `max_size` (`too_large`)",
            body = ErrorBody),
        (status = 429, description = "Already `request_uploads_in_flight` uploads on this URL \
            (`uploads_in_flight`), or over the address's rate", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The database or the upload space is unavailable",
            body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn put_request(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    receive(&app, &id, None, &origin, &headers, body).await
}

/// `curl -T file https://host/r/ID/` puts the file name in the path.
#[utoipa::path(
    put,
    path = once_api::routes::REQUEST_LINK_NAMED,
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("filename" = String, Path, description = "The file's name"),
        AnnouncedSha256,
    ),
)]
pub async fn put_request_named(
    State(app): State<Arc<AppState>>,
    Path((id, filename)): Path<(String, String)>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    receive(&app, &id, Some(filename), &origin, &headers, body).await
}

/// Who sent a body: the client's address and user agent (for the evidence of a refusal).
pub(super) fn uploader(origin: &Origin, headers: &HeaderMap) -> Uploader {
    Uploader::new(
        origin.client,
        header_text(headers, header::USER_AGENT).unwrap_or_default(),
    )
}

async fn receive(
    app: &AppState,
    id: &str,
    filename: Option<String>,
    origin: &Origin,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    let id = parse_request_id(id)?;
    // The browser page sends the name percent-encoded in a header.
    let filename = filename.or_else(|| {
        header_text(headers, wire::FILENAME).map(|name| {
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned()
        })
    });
    let content_type = header_text(headers, header::CONTENT_TYPE).map(str::to_owned);
    let received = app
        .service
        .receive_request_upload(
            &id,
            filename,
            content_type,
            incoming(headers, body)?,
            &uploader(origin, headers),
            started_at,
        )
        .await;
    let share = recorded_upload(
        app,
        UploadTo::Request(&id),
        received,
        once_domain::now(),
        &source(origin, headers, None),
    )
    .await?;
    tracing::info!(request = %id.log_label(), share = %share.id.log_label(), "upload request fulfilled");
    // The uploader learns that it worked, not the link: the share belongs to the requester.
    let view = uploaded(&share);
    if header_text(headers, header::ACCEPT)
        .is_some_and(|accept| accept.contains("application/json"))
    {
        return Ok((StatusCode::CREATED, Json(view)).into_response());
    }
    let text = format!(
        "Uploaded {} ({} bytes). The person who asked for it can now download it.\n",
        share.filename,
        share.size.unwrap_or_default()
    );
    Ok((StatusCode::CREATED, text).into_response())
}

fn parse_token(token: &str) -> Result<UploadToken, DomainError> {
    // An unknown or malformed token names no upload that can still take bytes.
    UploadToken::parse(token).map_err(|_| DomainError::UploadExpired)
}

/// `PUT /b/part/{token}/{number}?len=…&expires=…&sig=…`: one part of a multipart upload to the
/// embedded store. Answers like S3's UploadPart: 200 with the part's tag in `ETag` (here its
/// SHA-256, quoted), plus the same as JSON.
#[utoipa::path(
    put,
    path = once_api::routes::PART_UPLOAD,
    tag = "storage",
    params(
        ("token" = String, Path, description = "The upload's token, from its ticket"),
        ("number" = u16, Path, description = "The part's number, from 1"),
        ("len" = u64, Query, description = "The part's exact length"),
        SignedQuery,
        AnnouncedSha256,
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file's bytes",
    ),
    responses(
        (status = 200, description = "Stored; its tag for `complete` is in ETag too",
            body = StoredPartView,
            headers(("etag" = String, description = "The part's tag, quoted"))),
        (status = 400, description = "A bad part number, or a body not of the signed length \
            (`invalid_part`, …)", body = ErrorBody),
        (status = 403, description = "A URL altered or expired (`bad_url_signature`, \
            `upload_expired`)", body = ErrorBody),
        (status = 409, description = "The part is stored with other bytes, or the upload is over \
            (`part_conflict`, `slot_used`)", body = ErrorBody),
        (status = 413, description = "A part past the upload's size (`part_beyond_size`, \
            `too_large`)", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The database or the upload space is unavailable",
            body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn put_part(
    State(app): State<Arc<AppState>>,
    Path((token, number)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    // A malformed token cannot be in a URL this server signed.
    let token = UploadToken::parse(&token).map_err(|_| DomainError::BadUrlSignature)?;
    let number: u16 = number
        .parse()
        .map_err(|_| DomainError::InvalidPart("part numbers go from 1 to 10000".into()))?;
    let part = app
        .service
        .receive_part(
            uri.path(),
            uri.query().unwrap_or_default(),
            &token,
            number,
            incoming(&headers, body)?,
            started_at,
        )
        .await?;
    let etag = format!("\"{}\"", part.etag);
    let mut response = Json(StoredPartView {
        number: part.number,
        size: part.size,
        etag: part.etag,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, DomainError> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|error| DomainError::InvalidJson(error.to_string()));
    }
    serde_json::from_slice(body).map_err(|error| DomainError::InvalidJson(error.to_string()))
}

/// `POST /r/{id}/uploads`: an uploader (no key) starts its own multipart upload to a request.
/// With the S3 store the parts go straight to the bucket.
#[utoipa::path(
    post,
    path = once_api::routes::REQUEST_UPLOADS,
    tag = "uploads",
    params(("id" = String, Path, description = "The request's id"),),
    request_body(
        content = Option<NewRequestUpload>,
        description = "The file to come (an empty body: nothing declared)",
    ),
    responses(
        (status = 201, description = "The upload's ticket, used like a share's",
            body = RequestUploadTicket),
        (status = 400, description = "A malformed body or a field out of bounds, or a plain upload \
            to an encrypted request", body = ErrorBody),
        (status = 403, description = "The request expired (`upload_expired`), or the requester is \
            over quota", body = ErrorBody),
        (status = 404, description = "No such request (`request_not_found`)", body = ErrorBody),
        (status = 409, description = "The request already received its file (`slot_used`)",
            body = ErrorBody),
        (status = 413, description = "Over the request's `max_size`, or a body over \
            `api_body_limit` (`too_large`)", body = ErrorBody),
        (status = 429, description = "Already `request_uploads_in_flight` uploads on this URL \
            (`uploads_in_flight`), or over the address's rate", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
    ),
)]
pub async fn start_request_upload(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    origin: Origin,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_request_id(&id)?;
    let body: NewRequestUpload = parse_json(&body)?;
    let encryption = sealed::parse_optional(body.encryption.as_ref(), body.contents.is_some())?;
    let start = SessionStart {
        contents: body.contents.as_ref().map(views::contents_text),
        spec: SessionSpec {
            filename_hint: body.filename,
            content_type: body.content_type,
            size: body.size,
            sha256: body.sha256,
            encryption,
        },
    };
    let (share, upload) = app
        .service
        .start_request_upload(&id, start, &app.base_url(&origin), once_domain::now())
        .await?;
    let ticket = RequestUploadTicket {
        filename: share.filename.as_str().to_owned(),
        upload,
    };
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

/// `GET /r/{id}/uploads/{token}/parts`: what the storage holds of this upload (to resume).
#[utoipa::path(
    get,
    path = once_api::routes::REQUEST_UPLOAD_PARTS,
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("token" = String, Path, description = "The upload's token, from its ticket"),
    ),
    responses(
        (status = 200, description = "The parts stored so far", body = StoredParts),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 403, description = "No unfinished upload by that token (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such request (`request_not_found`)", body = ErrorBody),
        (status = 409, description = "The request already received its file (`slot_used`)",
            body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
    ),
)]
pub async fn request_upload_stored_parts(
    State(app): State<Arc<AppState>>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult<Json<StoredParts>> {
    let id = parse_request_id(&id)?;
    Ok(Json(
        app.service
            .request_upload_stored_parts(&id, &parse_token(&token)?)
            .await?,
    ))
}

/// `POST /r/{id}/uploads/{token}/parts`: URLs for parts.
#[utoipa::path(
    post,
    path = once_api::routes::REQUEST_UPLOAD_PARTS,
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("token" = String, Path, description = "The upload's token, from its ticket"),
    ),
    request_body(content = Option<RefreshParts>, description = "The parts to sign URLs for"),
    responses(
        (status = 200, description = "A signed URL for each part asked for", body = PartTickets),
        (status = 400, description = "A malformed body or part (`invalid_json`, `invalid_part`)",
            body = ErrorBody),
        (status = 403, description = "No unfinished upload by that token (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such request (`request_not_found`)", body = ErrorBody),
        (status = 409, description = "The request already received its file (`slot_used`)",
            body = ErrorBody),
        (status = 413, description = "A part beyond the upload's size, or a body over \
            `api_body_limit`", body = ErrorBody),
    ),
)]
pub async fn request_upload_part_urls(
    State(app): State<Arc<AppState>>,
    Path((id, token)): Path<(String, String)>,
    origin: Origin,
    body: Bytes,
) -> ApiResult<Json<PartTickets>> {
    let id = parse_request_id(&id)?;
    let wanted: RefreshParts = parse_json(&body)?;
    let parts = app
        .service
        .request_upload_part_urls(
            &id,
            &parse_token(&token)?,
            &wanted,
            &app.base_url(&origin),
            once_domain::now(),
        )
        .await?;
    Ok(Json(PartTickets { parts }))
}

/// `POST /r/{id}/uploads/{token}/complete`: the first upload completed fulfils the request;
/// any other is refused (409 `slot_used`) and its bytes deleted.
#[utoipa::path(
    post,
    path = once_api::routes::REQUEST_UPLOAD_COMPLETE,
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("token" = String, Path, description = "The upload's token, from its ticket"),
    ),
    request_body(content = Option<CompleteShare>, description = "The parts' ETags in order"),
    responses(
        (status = 201, description = "Uploaded: the request is fulfilled", body = Uploaded),
        (status = 400, description = "A malformed body, a part list that does not add up, a \
            checksum that does not match", body = ErrorBody),
        (status = 403, description = "No unfinished upload by that token (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such request (`request_not_found`)", body = ErrorBody),
        (status = 409, description = "Another upload fulfilled the request first, or a part's ETag \
            is not the stored one", body = ErrorBody),
        (status = 413, description = "A body over `api_body_limit` (`too_large`)",
            body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn complete_request_upload(
    State(app): State<Arc<AppState>>,
    Path((id, token)): Path<(String, String)>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_request_id(&id)?;
    let body: CompleteShare = parse_json(&body)?;
    let completed = app
        .service
        .complete_request_upload(
            &id,
            &parse_token(&token)?,
            &reported_parts(&body.parts),
            parse_sha256(body.sha256.as_deref())?,
            once_domain::now(),
        )
        .await;
    let share = recorded_upload(
        &app,
        UploadTo::Request(&id),
        completed,
        once_domain::now(),
        &source(&origin, &headers, None),
    )
    .await?;
    tracing::info!(request = %id.log_label(), share = %share.id.log_label(), "upload request fulfilled");
    Ok((StatusCode::CREATED, Json(uploaded(&share))).into_response())
}

fn uploaded(share: &once_domain::Share) -> Uploaded {
    Uploaded {
        status: "uploaded".to_owned(),
        filename: share.filename.as_str().to_owned(),
        size: share.size,
        sha256: share.sha256.map(|digest| digest.to_hex()),
    }
}
