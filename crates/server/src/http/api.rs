//! `/api/v1/…`: JSON endpoints for key holders (see `docs/api.md`).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_api::{
    CompleteShare, ErrorBody, NewRequest, NewShare, PartTickets, RefreshParts, RequestList,
    RequestView, ShareList, ShareView, StoredParts, headers as wire, routes,
};
use once_domain::audit::share_detail;
use once_domain::{AuditEvent, AuditKind, DomainError, RequestId, RequestSpec, ShareId, ShareSpec};

use super::audit::{UploadTo, recorded_upload, source, upload_event};
use super::error::ApiResult;
use super::forwarded::Origin;
use super::{AppState, header_text, incoming, sealed, views};

use crate::service::{Caller, parse_sha256, reported_parts};

/// Parses a JSON body into our error format instead of axum's plain-text rejection.
fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, DomainError> {
    serde_json::from_slice(body).map_err(|error| DomainError::InvalidJson(error.to_string()))
}

fn parse_share_id(id: &str) -> Result<ShareId, DomainError> {
    ShareId::parse(id).map_err(|_| DomainError::ShareNotFound)
}

/// `POST /api/v1/shares`: a new share and the ticket its bytes go up with.
#[utoipa::path(
    post,
    path = routes::SHARES,
    tag = "shares",
    request_body(
        content = NewShare,
        description = "The file to come: its name, size and settings, or for an end-to-end \
            encrypted share its `encryption`",
    ),
    responses(
        (status = 201, description = "The share, waiting for its bytes: `upload` says where to \
            send them", body = ShareView),
        (status = 400, description = "A malformed body or a field out of bounds (`invalid_json`, \
            `invalid_filename`, `invalid_size`, `invalid_expiry`, `invalid_max_downloads`, \
            `invalid_note`, `invalid_encryption`, …)", body = ErrorBody),
        (status = 403, description = "Over the key's quota (`quota_exceeded`)", body = ErrorBody),
        (status = 413, description = "Larger than the server takes (`too_large`)",
            body = ErrorBody),
        (status = 503, description = "The database or the upload space is unavailable",
            body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn create_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewShare = parse_json(&body)?;
    let encryption = sealed::parse_optional(body.encryption.as_ref(), body.contents.is_some())?;
    let contents = body.contents.as_ref().map(views::contents_text);
    let spec = ShareSpec {
        filename: body.filename,
        size: body.size,
        content_type: body.content_type,
        max_downloads: body.max_downloads,
        expires_in: body.expires_in.map(Duration::from_secs),
        upload_expires_in: body.upload_expires_in.map(Duration::from_secs),
        sha256: body.sha256,
        note: body.note,
        encryption,
    };
    let now = once_domain::now();
    let base = app.base_url(&origin);
    let (share, ticket) = app
        .service
        .create_share_with_ticket(&caller, &spec, contents, now, &base)
        .await?;
    let by = source(&origin, &headers, Some(&caller.key_id));
    app.service
        .record(
            AuditEvent::new(AuditKind::ShareCreated, now, &by)
                .of_share(&share)
                .with_detail(share_detail(&share)),
        )
        .await;
    let mut view = views::share(&share, &base, now);
    view.upload = Some(ticket);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Shares listed per page unless the client asks for fewer (or more, up to the maximum).
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Shares per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// A page cursor: `<created_at unix seconds>.<share id>` of the last share of a page.
pub(super) fn parse_cursor(text: &str) -> Result<(once_domain::Instant, ShareId), DomainError> {
    let invalid =
        || DomainError::InvalidQuery("after must be a cursor from a previous page".into());
    let (seconds, id) = text.split_once('.').ok_or_else(invalid)?;
    let seconds: i64 = seconds.parse().map_err(|_| invalid())?;
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid())?;
    Ok((at, ShareId::parse(id).map_err(|_| invalid())?))
}

/// `GET /api/v1/shares`: the caller's shares, newest first, a page at a time.
#[utoipa::path(
    get,
    path = routes::SHARES,
    tag = "shares",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the caller's shares, newest first",
            body = ShareList),
        (status = 400, description = "A bad `limit` or `after` (`invalid_query`)",
            body = ErrorBody),
    ),
)]
pub async fn list_shares(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    origin: Origin,
) -> ApiResult<Json<ShareList>> {
    let axum::extract::Query(query) =
        query.map_err(|rejection| DomainError::InvalidQuery(rejection.body_text()))?;
    let limit = match query.limit {
        None => DEFAULT_PAGE,
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => {
            return Err(DomainError::InvalidQuery(format!("limit must be 1 to {MAX_PAGE}")).into());
        }
    };
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let shares = app.service.list_shares(&caller, after, limit).await?;
    let next = (shares.len() == limit as usize)
        .then(|| shares.last())
        .flatten()
        .map(views::next_cursor);
    let base = app.base_url(&origin);
    let now = once_domain::now();
    Ok(Json(ShareList {
        shares: shares
            .iter()
            .map(|share| views::share(share, &base, now))
            .collect(),
        next,
    }))
}

/// The owner's view of one share.
#[utoipa::path(
    get,
    path = routes::SHARE,
    tag = "shares",
    params(("id" = String, Path, description = "The share's id")),
    responses(
        (status = 200, description = "The owner's view of the share", body = ShareView),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 404, description = "No such share of this key (`share_not_found`)",
            body = ErrorBody),
    ),
)]
pub async fn get_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    origin: Origin,
) -> ApiResult<Json<ShareView>> {
    let share = app
        .service
        .share_for_owner(&caller, &parse_share_id(&id)?)
        .await?;
    let refused = app
        .service
        .refused_uploads_to(&once_meta::RefusedTarget::Share(share.id.clone()))
        .await?;
    let mut view = views::share(&share, &app.base_url(&origin), once_domain::now());
    view.refused = refused.iter().map(views::refused).collect();
    Ok(Json(view))
}

/// Revokes a share now: its link answers `410 share_revoked` from then on.
#[utoipa::path(
    delete,
    path = routes::SHARE,
    tag = "shares",
    params(("id" = String, Path, description = "The share's id")),
    responses(
        (status = 204, description = "Revoked: the link is dead"),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 404, description = "No such share of this key (`share_not_found`)",
            body = ErrorBody),
        (status = 410, description = "The share is already gone", body = ErrorBody),
    ),
)]
pub async fn revoke_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let id = parse_share_id(&id)?;
    app.service.revoke_share(&caller, &id).await?;
    let by = source(&origin, &headers, Some(&caller.key_id));
    app.service
        .record(AuditEvent::new(AuditKind::ShareRevoked, once_domain::now(), &by).of_share_id(&id))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Completes an upload: assembles the parts, or checks a direct upload to the bucket.
#[utoipa::path(
    post,
    path = routes::SHARE_COMPLETE,
    tag = "shares",
    params(("id" = String, Path, description = "The share's id")),
    request_body(
        content = Option<CompleteShare>,
        description = "The parts' ETags in order (an empty body: no parts)",
    ),
    responses(
        (status = 200, description = "The share, now downloadable", body = ShareView),
        (status = 400, description = "A malformed body, a part list that does not add up, a \
            checksum that does not match", body = ErrorBody),
        (status = 403, description = "The upload window closed (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such share of this key", body = ErrorBody),
        (status = 409, description = "Already completed, or a part's ETag is not the stored one \
            (`slot_used`, `part_conflict`)", body = ErrorBody),
        (status = 410, description = "The share expired or was revoked", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn complete_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ShareView>> {
    let body: CompleteShare = if body.is_empty() {
        CompleteShare::default()
    } else {
        parse_json(&body)?
    };
    let now = once_domain::now();
    let id = parse_share_id(&id)?;
    let completed = app
        .service
        .complete_share(
            &caller,
            &id,
            &reported_parts(&body.parts),
            parse_sha256(body.sha256.as_deref())?,
            now,
        )
        .await;
    let by = source(&origin, &headers, Some(&caller.key_id));
    let share = recorded_upload(&app, UploadTo::Share(&id), completed, now, &by).await?;
    Ok(Json(views::share(&share, &app.base_url(&origin), now)))
}

/// URLs for parts of the owner's multipart upload: more parts, parts of an upload of unknown
/// size, or fresh URLs where the first ones expired.
#[utoipa::path(
    post,
    path = routes::SHARE_PARTS,
    tag = "shares",
    params(("id" = String, Path, description = "The share's id")),
    request_body(content = RefreshParts, description = "The parts to sign URLs for"),
    responses(
        (status = 200, description = "A signed URL for each part asked for", body = PartTickets),
        (status = 400, description = "A malformed body or part (`invalid_json`, `invalid_part`)",
            body = ErrorBody),
        (status = 403, description = "The upload window closed (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such share of this key", body = ErrorBody),
        (status = 409, description = "The upload is no longer pending (`slot_used`)",
            body = ErrorBody),
        (status = 410, description = "The share expired or was revoked", body = ErrorBody),
        (status = 413, description = "A part beyond the upload's size (`part_beyond_size`)",
            body = ErrorBody),
    ),
)]
pub async fn part_urls(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    origin: Origin,
    body: Bytes,
) -> ApiResult<Json<PartTickets>> {
    let body: RefreshParts = parse_json(&body)?;
    let parts = app
        .service
        .owner_part_urls(
            &caller,
            &parse_share_id(&id)?,
            &body,
            &app.base_url(&origin),
            once_domain::now(),
        )
        .await?;
    Ok(Json(PartTickets { parts }))
}

/// The parts of the owner's multipart upload stored so far (a client resumes from them).
#[utoipa::path(
    get,
    path = routes::SHARE_PARTS,
    tag = "shares",
    params(("id" = String, Path, description = "The share's id")),
    responses(
        (status = 200, description = "The parts stored so far", body = StoredParts),
        (status = 400, description = "A path that is not UTF-8, or a share not uploaded in parts",
            body = ErrorBody),
        (status = 403, description = "The upload window closed (`upload_expired`)",
            body = ErrorBody),
        (status = 404, description = "No such share of this key", body = ErrorBody),
        (status = 409, description = "The upload is no longer pending (`slot_used`)",
            body = ErrorBody),
        (status = 410, description = "The share expired or was revoked", body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
    ),
)]
pub async fn stored_parts(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<StoredParts>> {
    Ok(Json(
        app.service
            .owner_stored_parts(&caller, &parse_share_id(&id)?, once_domain::now())
            .await?,
    ))
}

fn numeric_header<T: std::str::FromStr>(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<T>, DomainError> {
    header_text(headers, name)
        .map(|text| {
            text.trim().parse::<T>().map_err(|_| {
                DomainError::InvalidHeader(format!("the {name} header must be a whole number"))
            })
        })
        .transpose()
}

/// `curl -T file https://host/api/v1/files/name`: create the share and stream the bytes in one
/// request; answers the link as text. `Max-Downloads` and `Max-Days` work as on transfer.sh.
#[utoipa::path(
    put,
    path = routes::FILE,
    tag = "shares",
    params(
        ("filename" = String, Path, description = "The file's name (percent-encoded)"),
        ("max-downloads" = Option<u32>, Header, description = "How many downloads (default 1)"),
        ("max-days" = Option<u64>, Header, description = "Days until the share expires"),
        ("x-once-content-sha256" = Option<String>, Header, description = "The body's SHA-256 \
            (hex): signed instead of the body, and enforced"),
    ),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The file, as it is",
    ),
    responses(
        (status = 201, description = "The share's link", body = String, content_type = "text/plain",
            headers(
                ("location" = String, description = "The share's link"),
                ("x-once-share-id" = String, description = "The share's id"),
            )),
        (status = 400, description = "A bad name, header or checksum (`invalid_filename`, \
            `invalid_header`, `invalid_sha256`, `checksum_mismatch`, …)", body = ErrorBody),
        (status = 403, description = "Over the key's quota (`quota_exceeded`)", body = ErrorBody),
        (status = 413, description = "Larger than the server takes (`too_large`)",
            body = ErrorBody),
        (status = 500, description = "The blob storage failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The database or the upload space is unavailable",
            body = ErrorBody),
        (status = 507, description = "The data volume is nearly full (`storage_full`)",
            body = ErrorBody),
    ),
)]
pub async fn put_file(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(filename): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    let max_days: Option<u64> = numeric_header(&headers, wire::MAX_DAYS)?;
    let incoming = incoming(&headers, body)?;
    let spec = ShareSpec {
        filename,
        size: incoming.content_length,
        content_type: header_text(&headers, header::CONTENT_TYPE).map(str::to_owned),
        max_downloads: numeric_header(&headers, wire::MAX_DOWNLOADS)?,
        expires_in: max_days.map(|days| Duration::from_secs(days.saturating_mul(86400))),
        upload_expires_in: None,
        sha256: incoming.sha256.map(|digest| digest.to_hex()),
        // Headers cannot carry a note's line breaks; a note needs `POST /api/v1/shares`.
        note: None,
        encryption: None,
    };
    let share = app
        .service
        .share_in_one_step(
            &caller,
            &spec,
            incoming,
            &super::uploads::uploader(&origin, &headers),
            started_at,
        )
        .await?;
    let by = source(&origin, &headers, Some(&caller.key_id));
    app.service
        .record(
            AuditEvent::new(AuditKind::ShareCreated, started_at, &by)
                .of_share(&share)
                .with_detail(share_detail(&share)),
        )
        .await;
    app.service
        .record(upload_event(
            UploadTo::Share(&share.id),
            &Ok(share.clone()),
            once_domain::now(),
            &by,
        ))
        .await;
    let url = views::share_link(&app.base_url(&origin), &share);
    let mut response = (StatusCode::CREATED, format!("{url}\n")).into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(
        wire::SHARE_ID,
        HeaderValue::from_str(share.id.as_str()).expect("ids are ASCII"),
    );
    Ok(response)
}

/// `POST /api/v1/requests`: a one-time upload URL for someone else to send a file to.
#[utoipa::path(
    post,
    path = routes::REQUESTS,
    tag = "requests",
    request_body(
        content = Option<NewRequest>,
        description = "The request's limits and message (an empty body: the defaults)",
    ),
    responses(
        (status = 201, description = "The request, with its upload URL", body = RequestView),
        (status = 400, description = "A malformed body or a field out of bounds", body = ErrorBody),
    ),
)]
pub async fn create_request(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NewRequest = if body.is_empty() {
        NewRequest::default()
    } else {
        parse_json(&body)?
    };
    let expires_in = match (body.expires_in, body.upload_expires_in) {
        (Some(a), Some(b)) if a != b => {
            return Err(DomainError::InvalidExpiry(
                "expires_in and upload_expires_in name the same window; give one".into(),
            )
            .into());
        }
        (a, b) => a.or(b),
    };
    let spec = RequestSpec {
        filename: body.filename,
        max_size: body.max_size,
        expires_in: expires_in.map(Duration::from_secs),
        max_downloads: body.max_downloads,
        share_expires_in: body.share_expires_in.map(Duration::from_secs),
        note: body.note,
        requester: body.from,
        encrypted: body.encrypted,
    };
    let now = once_domain::now();
    let request = app.service.create_request(&caller, &spec, now).await?;
    let by = source(&origin, &headers, Some(&caller.key_id));
    app.service
        .record(
            AuditEvent::new(AuditKind::RequestCreated, now, &by)
                .of_request(&request)
                .with_detail(format!(
                    "max_size={} encrypted={}",
                    request.max_size, request.encrypted
                )),
        )
        .await;
    let view = views::request(&request, None, 0, &app.base_url(&origin), now);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// One upload request, with its share once the upload arrived.
#[utoipa::path(
    get,
    path = routes::REQUEST,
    tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request, with its share once it arrived",
            body = RequestView),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 404, description = "No such request of this key (`request_not_found`)",
            body = ErrorBody),
    ),
)]
pub async fn get_request(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    origin: Origin,
) -> ApiResult<Json<RequestView>> {
    let id = RequestId::parse(&id).map_err(|_| DomainError::RequestNotFound)?;
    let (request, share) = app.service.request_for_owner(&caller, &id).await?;
    let refused = app.service.refused_uploads(&id).await?;
    let records = app
        .service
        .refused_uploads_to(&once_meta::RefusedTarget::Request(id.clone()))
        .await?;
    let mut view = views::request(
        &request,
        share.as_ref(),
        refused,
        &app.base_url(&origin),
        once_domain::now(),
    );
    view.refused = records.iter().map(views::refused).collect();
    Ok(Json(view))
}

/// The caller's upload requests.
#[utoipa::path(
    get,
    path = routes::REQUESTS,
    tag = "requests",
    responses((status = 200, description = "The caller's upload requests", body = RequestList)),
)]
pub async fn list_requests(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    origin: Origin,
) -> ApiResult<Json<RequestList>> {
    let base = app.base_url(&origin);
    let now = once_domain::now();
    let mut requests = Vec::new();
    for (request, share) in app.service.list_requests(&caller).await? {
        let refused = app.service.refused_uploads(&request.id).await?;
        requests.push(views::request(
            &request,
            share.as_ref(),
            refused,
            &base,
            now,
        ));
    }
    Ok(Json(RequestList { requests }))
}
