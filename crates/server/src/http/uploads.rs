//! Uploads that arrive through the server: the embedded store's signed upload tickets
//! (`/b/up/{id}`, what a presigned S3 PUT is for the S3 store) and upload-request URLs
//! (`/r/{id}`), which work from a browser page or `curl -T`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use once_api::{OpenRequest, Uploaded, headers as wire};
use once_domain::preview::{Opener, wants_html};
use once_domain::{DomainError, RequestId, ShareId};

use super::error::{ApiError, ApiResult};
use super::{AppState, header_text, incoming, links, pages, views};

pub async fn put_ticket(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started_at = once_domain::now();
    let id = ShareId::parse(&id).map_err(|_| DomainError::ShareNotFound)?;
    let share = app
        .service
        .receive_ticket_upload(
            uri.path(),
            uri.query().unwrap_or_default(),
            &id,
            incoming(&headers, body)?,
            started_at,
        )
        .await?;
    tracing::info!(share = %share.id.log_label(), size = share.size.unwrap_or_default(), "share published");
    Ok((
        StatusCode::CREATED,
        Json(views::share(
            &share,
            &app.base_url(&headers),
            once_domain::now(),
        )),
    )
        .into_response())
}

fn parse_request_id(id: &str) -> Result<RequestId, DomainError> {
    RequestId::parse(id).map_err(|_| DomainError::RequestNotFound)
}

/// The upload page for people; a small JSON status for programs.
pub async fn request_page(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: axum::http::Method,
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
        Err(error) if html => return pages::problem(&error),
        Err(error) => return error.into_response(),
    };
    if let Some(refusal) = request.upload_refusal(now) {
        let error = ApiError::from(refusal);
        return if html {
            pages::problem(&error)
        } else {
            error.into_response()
        };
    }
    if html {
        return pages::upload_page(&request);
    }
    Json(OpenRequest {
        state: "open".to_owned(),
        filename: request
            .filename
            .as_ref()
            .map(|name| name.as_str().to_owned()),
        max_size: request.max_size,
        expires_at: request.expires_at,
    })
    .into_response()
}

pub async fn put_request(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    receive(&app, &id, None, &headers, body).await
}

/// `curl -T file https://host/r/ID/` puts the file name in the path.
pub async fn put_request_named(
    State(app): State<Arc<AppState>>,
    Path((id, filename)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    receive(&app, &id, Some(filename), &headers, body).await
}

async fn receive(
    app: &AppState,
    id: &str,
    filename: Option<String>,
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
    let share = app
        .service
        .receive_request_upload(
            &id,
            filename,
            content_type,
            incoming(headers, body)?,
            started_at,
        )
        .await?;
    tracing::info!(request = %id.log_label(), share = %share.id.log_label(), "upload request fulfilled");
    // The uploader learns that it worked, not the link: the share belongs to the requester.
    let view = Uploaded {
        status: "uploaded".to_owned(),
        filename: share.filename.as_str().to_owned(),
        size: share.size,
        sha256: share.sha256.map(|digest| digest.to_hex()),
    };
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
