//! `/api/v1/…`: JSON endpoints for key holders (see `docs/api.md`).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_domain::{
    DomainError, Instant, RequestId, RequestSpec, Share, ShareId, ShareSpec, UploadRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::{AppState, header_text, incoming, rfc3339};
use once_blob::{PartReceipt, PresignedPart};

use crate::service::{Caller, UploadTicket};

/// Parses a JSON body into our error format instead of axum's plain-text rejection.
fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, DomainError> {
    serde_json::from_slice(body)
        .map_err(|error| DomainError::InvalidRequest(format!("invalid JSON body: {error}")))
}

pub(super) fn share_json(share: &Share, base: &str, now: Instant) -> Value {
    json!({
        "id": share.id,
        "url": format!("{base}/s/{}", share.id),
        "filename": share.filename,
        "size": share.size,
        "content_type": share.content_type,
        "sha256": share.sha256.map(|digest| digest.to_hex()),
        "state": share.state.as_str(),
        "availability": share.availability(now),
        "max_downloads": share.max_downloads,
        "downloads_left": share.downloads_left,
        "created_at": rfc3339(share.created_at),
        "expires_at": rfc3339(share.expires_at),
        "upload_expires_at": rfc3339(share.upload_expires_at),
        "published_at": share.published_at.map(rfc3339),
        "lease_until": share.lease_until.map(rfc3339),
        "upload_attempts": share.upload_attempts,
        "preview_hits": share.preview_hits,
        "request_id": share.request_id,
    })
}

fn ticket_json(ticket: &UploadTicket) -> Value {
    let headers: serde_json::Map<String, Value> = ticket
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
        .collect();
    json!({
        "method": ticket.method,
        "url": ticket.url,
        "headers": headers,
        "expires_at": rfc3339(ticket.expires_at),
        "complete_url": ticket.complete_url,
        "multipart": ticket.multipart.as_ref().map(|multipart| json!({
            "upload_id": multipart.upload_id,
            "part_size": multipart.part_size,
            "parts": parts_json(&multipart.parts),
        })),
    })
}

fn parts_json(parts: &[PresignedPart]) -> Value {
    parts
        .iter()
        .map(|part| json!({ "number": part.number, "url": part.url, "size": part.size }))
        .collect()
}

fn parse_share_id(id: &str) -> Result<ShareId, DomainError> {
    ShareId::parse(id).map_err(|_| DomainError::ShareNotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShareBody {
    filename: String,
    size: u64,
    content_type: Option<String>,
    max_downloads: Option<u32>,
    expires_in: Option<u64>,
    upload_expires_in: Option<u64>,
    sha256: Option<String>,
}

pub async fn create_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: CreateShareBody = parse_json(&body)?;
    let spec = ShareSpec {
        filename: body.filename,
        size: Some(body.size),
        content_type: body.content_type,
        max_downloads: body.max_downloads,
        expires_in: body.expires_in.map(Duration::from_secs),
        upload_expires_in: body.upload_expires_in.map(Duration::from_secs),
        sha256: body.sha256,
    };
    let now = once_domain::now();
    let base = app.base_url(&headers);
    let (share, ticket) = app
        .service
        .create_share_with_ticket(&caller, &spec, now, &base)
        .await?;
    let mut view = share_json(&share, &base, now);
    view["upload"] = ticket_json(&ticket);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn get_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let share = app
        .service
        .share_for_owner(&caller, &parse_share_id(&id)?)
        .await?;
    Ok(Json(share_json(
        &share,
        &app.base_url(&headers),
        once_domain::now(),
    )))
}

pub async fn revoke_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.service
        .revoke_share(&caller, &parse_share_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    #[serde(default)]
    parts: Vec<CompletedPart>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    part_number: u16,
    etag: String,
}

pub async fn complete_share(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: CompleteBody = if body.is_empty() {
        CompleteBody::default()
    } else {
        parse_json(&body)?
    };
    let parts: Vec<PartReceipt> = body
        .parts
        .into_iter()
        .map(|part| PartReceipt {
            number: part.part_number,
            etag: part.etag,
        })
        .collect();
    let now = once_domain::now();
    let share = app
        .service
        .complete_share(&caller, &parse_share_id(&id)?, &parts, now)
        .await?;
    Ok(Json(share_json(&share, &app.base_url(&headers), now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartsBody {
    part_numbers: Vec<u16>,
}

/// Fresh URLs for parts of a multipart upload that outlived its first ones.
pub async fn refresh_parts(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: PartsBody = parse_json(&body)?;
    let parts = app
        .service
        .refresh_parts(
            &caller,
            &parse_share_id(&id)?,
            &body.part_numbers,
            once_domain::now(),
        )
        .await?;
    Ok(Json(json!({ "parts": parts_json(&parts) })))
}

fn numeric_header<T: std::str::FromStr>(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<T>, DomainError> {
    header_text(headers, name)
        .map(|text| {
            text.trim().parse::<T>().map_err(|_| {
                DomainError::InvalidRequest(format!("the {name} header must be a whole number"))
            })
        })
        .transpose()
}

/// `curl -T file https://host/api/v1/files/name`: create the share and stream the bytes in one
/// request; answers the link as text. `Max-Downloads` and `Max-Days` work as on transfer.sh.
pub async fn put_file(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(filename): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    let max_days: Option<u64> = numeric_header(&headers, "max-days")?;
    let incoming = incoming(&headers, body)?;
    let spec = ShareSpec {
        filename,
        size: incoming.content_length,
        content_type: header_text(&headers, header::CONTENT_TYPE).map(str::to_owned),
        max_downloads: numeric_header(&headers, "max-downloads")?,
        expires_in: max_days.map(|days| Duration::from_secs(days.saturating_mul(86400))),
        upload_expires_in: None,
        sha256: incoming.sha256.map(|digest| digest.to_hex()),
    };
    let share = app.service.create_share(&caller, &spec, started_at).await?;
    let share = match app
        .service
        .receive_share_upload(&share.id, incoming, started_at)
        .await
    {
        Ok(share) => share,
        Err(error) => {
            // The one-step share cannot be retried by id; retire it now rather than at expiry.
            let _ = app
                .service
                .meta
                .revoke_share(&share.id, &caller.key_id)
                .await;
            return Err(error.into());
        }
    };
    let url = format!("{}/s/{}", app.base_url(&headers), share.id);
    let mut response = (StatusCode::CREATED, format!("{url}\n")).into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(
        "x-once-share-id",
        HeaderValue::from_str(share.id.as_str()).expect("ids are ASCII"),
    );
    Ok(response)
}

pub(super) fn request_json(
    request: &UploadRequest,
    share: Option<&Share>,
    base: &str,
    now: Instant,
) -> Value {
    let state = if request.share_id.is_some() {
        "fulfilled"
    } else if now >= request.expires_at {
        "expired"
    } else {
        "open"
    };
    let url = format!("{base}/r/{}", request.id);
    json!({
        "id": request.id,
        "url": url,
        "state": state,
        "filename": request.filename,
        "max_size": request.max_size,
        "max_downloads": request.max_downloads,
        "share_expires_in": request.share_expires_in.as_secs(),
        "created_at": rfc3339(request.created_at),
        "expires_at": rfc3339(request.expires_at),
        "fulfilled_at": request.fulfilled_at.map(rfc3339),
        "upload": { "method": "PUT", "url": url, "expires_at": rfc3339(request.expires_at) },
        "share": share.map(|share| share_json(share, base, now)),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequestBody {
    filename: Option<String>,
    max_size: Option<u64>,
    /// How long the upload URL accepts an upload; `upload_expires_in` is the same window
    /// under the name share tickets use.
    expires_in: Option<u64>,
    upload_expires_in: Option<u64>,
    max_downloads: Option<u32>,
    share_expires_in: Option<u64>,
}

pub async fn create_request(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: CreateRequestBody = if body.is_empty() {
        parse_json(&Bytes::from_static(b"{}"))?
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
    };
    let now = once_domain::now();
    let request = app.service.create_request(&caller, &spec, now).await?;
    let view = request_json(&request, None, &app.base_url(&headers), now);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn get_request(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let id = RequestId::parse(&id).map_err(|_| DomainError::RequestNotFound)?;
    let (request, share) = app.service.request_for_owner(&caller, &id).await?;
    Ok(Json(request_json(
        &request,
        share.as_ref(),
        &app.base_url(&headers),
        once_domain::now(),
    )))
}

pub async fn list_requests(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let base = app.base_url(&headers);
    let now = once_domain::now();
    let listed: Vec<Value> = app
        .service
        .list_requests(&caller)
        .await?
        .iter()
        .map(|(request, share)| request_json(request, share.as_ref(), &base, now))
        .collect();
    Ok(Json(json!({ "requests": listed })))
}
