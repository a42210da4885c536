//! `/s/{id}`: what a share link does depends on who opens it, so that link previews never burn
//! a share. `HEAD`, preview bots and browsers (which get a landing page with a Download button
//! that POSTs) consume nothing; download tools (curl, wget, the CLI) claim on a plain GET,
//! except an end-to-end encrypted share, which they could not decrypt (the key is in the
//! fragment they never send): they get `406 encrypted_link` and a line on how to fetch it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use once_domain::preview::{OpenRequest, Opener, wants_html};
use once_domain::{DomainError, ShareId};

use once_api::{ClaimTicket, ErrorBody};

use super::error::ApiError;
use super::forwarded::Origin;
use super::web::pages;
use super::{AppState, header_text};

/// Who is asking, judged by the domain's one rule from the method and headers.
pub(super) fn classify(method: &Method, headers: &HeaderMap) -> Opener {
    OpenRequest {
        method: method.as_str(),
        user_agent: header_text(headers, header::USER_AGENT).unwrap_or_default(),
        accept: header_text(headers, header::ACCEPT).unwrap_or_default(),
        has_sec_fetch_headers: headers
            .keys()
            .any(|name| name.as_str().starts_with("sec-fetch-")),
    }
    .opener()
}

/// An error as the opener expects it: a page for people, JSON for programs.
fn refusal(app: &AppState, headers: &HeaderMap, error: ApiError, html: bool) -> Response {
    if html {
        pages::problem(app, headers, &error)
    } else {
        error.into_response()
    }
}

/// A share link opened: a landing page for people, a card for link previews, a claim for
/// download tools; only a claim uses a download up.
#[utoipa::path(
    method(get, head),
    path = once_api::routes::SHARE_LINK,
    tag = "links",
    params(
        ("id" = String, Path, description = "The share's id"),
        ("x-once-proof" = Option<String>, Header, description = "For an end-to-end encrypted \
            share: `CHALLENGE.PROOF` from `GET /s/{id}/seal`"),
    ),
    responses(
        (status = 200, description = "A browser's landing page (a preview bot's card, an empty \
            answer to HEAD): nothing is used up; or, for a download tool that accepts JSON, the \
            claim as data", content(("text/html"), (ClaimTicket = "application/json"))),
        (status = 303, description = "A download tool's claim: the signed download URL, in \
            Location and in the body", body = String, content_type = "text/plain",
            headers(
                ("location" = String, description = "The download URL, valid for the lease"),
                ("x-once-sha256" = Option<String>, description = "The SHA-256 the sender declared"),
            )),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 401, description = "An encrypted share's claim without a valid proof \
            (`key_required`, `challenge_expired`, `wrong_key`)",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 404, description = "No such share, or not uploaded yet",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 406, description = "A download tool at an encrypted share's link, which it could \
            not decrypt (`encrypted_link`); nothing is used up",
            content((ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 410, description = "Every download was claimed, or the share expired or was \
            revoked", content((ErrorBody = "application/json"), ("text/html"))),
    ),
)]
pub async fn open(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    origin: Origin,
    headers: HeaderMap,
) -> Response {
    open_share(&app, &id, &method, &origin, &headers).await
}

/// A share link with a file name after it: the same as without it.
#[utoipa::path(
    method(get, head),
    path = once_api::routes::SHARE_LINK_NAMED,
    tag = "links",
    params(
        ("id" = String, Path, description = "The share's id"),
        ("filename" = String, Path, description = "Any name: the link is the same without it"),
        ("x-once-proof" = Option<String>, Header, description = "For an end-to-end encrypted \
            share: `CHALLENGE.PROOF` from `GET /s/{id}/seal`"),
    ),
)]
pub async fn open_named(
    State(app): State<Arc<AppState>>,
    Path((id, _filename)): Path<(String, String)>,
    method: Method,
    origin: Origin,
    headers: HeaderMap,
) -> Response {
    open_share(&app, &id, &method, &origin, &headers).await
}

/// The landing page's Download button: the claim.
#[utoipa::path(
    post,
    path = once_api::routes::SHARE_LINK,
    tag = "links",
    params(
        ("id" = String, Path, description = "The share's id"),
        ("x-once-proof" = Option<String>, Header, description = "For an end-to-end encrypted \
            share: `CHALLENGE.PROOF` from `GET /s/{id}/seal`"),
    ),
    responses(
        (status = 200, description = "The claim as data, for a client that accepts JSON (the \
            landing page's script)", body = ClaimTicket),
        (status = 303, description = "The claim: the signed download URL, in Location and in the \
            body", body = String, content_type = "text/plain",
            headers(
                ("location" = String, description = "The download URL, valid for the lease"),
                ("x-once-sha256" = Option<String>, description = "The SHA-256 the sender declared"),
            )),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 401, description = "An encrypted share's claim without a valid proof \
            (`key_required`, `challenge_expired`, `wrong_key`)",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 404, description = "No such share, or not uploaded yet",
            content((ErrorBody = "application/json"), ("text/html"))),
        (status = 410, description = "Every download was claimed, or the share expired or was \
            revoked", content((ErrorBody = "application/json"), ("text/html"))),
    ),
)]
pub async fn claim(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
) -> Response {
    claim_share(&app, &id, ClaimBy::Page, &origin, &headers).await
}

/// The claim at a share link with a file name after it: the same as without it.
#[utoipa::path(
    post,
    path = once_api::routes::SHARE_LINK_NAMED,
    tag = "links",
    params(
        ("id" = String, Path, description = "The share's id"),
        ("filename" = String, Path, description = "Any name: the link is the same without it"),
        ("x-once-proof" = Option<String>, Header, description = "For an end-to-end encrypted \
            share: `CHALLENGE.PROOF` from `GET /s/{id}/seal`"),
    ),
)]
pub async fn claim_named(
    State(app): State<Arc<AppState>>,
    Path((id, _filename)): Path<(String, String)>,
    origin: Origin,
    headers: HeaderMap,
) -> Response {
    claim_share(&app, &id, ClaimBy::Page, &origin, &headers).await
}

async fn open_share(
    app: &AppState,
    id: &str,
    method: &Method,
    origin: &Origin,
    headers: &HeaderMap,
) -> Response {
    let opener = classify(method, headers);
    if opener == Opener::Downloader {
        return download(app, id, origin, headers).await;
    }
    let html = opener != Opener::Head;
    let now = once_domain::now();
    let share = match ShareId::parse(id) {
        Ok(id) => app.service.peek(&id).await.map_err(ApiError::from),
        Err(_) => Err(ApiError::from(DomainError::ShareNotFound)),
    };
    let share = match share {
        Ok(share) => share,
        Err(error) => return refusal(app, headers, error, html),
    };
    if let Some(reason) = share.claim_refusal(now) {
        return refusal(app, headers, ApiError::from(reason), html);
    }
    if let Err(error) = app.service.count_preview(&share.id).await {
        tracing::warn!(%error, "could not count a preview");
    }
    match opener {
        Opener::Head => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Opener::Preview => pages::preview(app, headers),
        _ => pages::landing(app, headers, &share).await,
    }
}

/// A plain `GET` by a download tool: the claim, unless the share is encrypted end to end.
async fn download(app: &AppState, id: &str, origin: &Origin, headers: &HeaderMap) -> Response {
    claim_share(app, id, ClaimBy::DownloadTool, origin, headers).await
}

/// Who claims: page script or the CLI (which can prove an encrypted share's key), or a
/// download tool (which cannot: an encrypted share is answered `406 encrypted_link` and left
/// claimable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimBy {
    Page,
    DownloadTool,
}

/// `406 encrypted_link`: JSON for clients that ask for it, otherwise the short text a person
/// running curl or wget reads in the terminal (or in the file it saved).
fn encrypted_link(app: &AppState, id: &str, origin: &Origin, headers: &HeaderMap) -> Response {
    let accept = header_text(headers, header::ACCEPT).unwrap_or_default();
    if accept.contains("application/json") {
        return ApiError::from(DomainError::EncryptedLink).into_response();
    }
    let link = format!(
        "{}{}",
        app.base_url(origin),
        once_api::routes::share_link(id)
    );
    let text = format!(
        "This link is end-to-end encrypted. Its key is the part after '#', which download \
         tools never send, so nothing was downloaded and the link still works.\n\
         Fetch it with `once get '{link}#…'` (the whole link, in quotes), or open it in a \
         browser.\n"
    );
    let mut response = (StatusCode::NOT_ACCEPTABLE, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn claim_share(
    app: &AppState,
    id: &str,
    by: ClaimBy,
    origin: &Origin,
    headers: &HeaderMap,
) -> Response {
    let accept = header_text(headers, header::ACCEPT).unwrap_or_default();
    let html = wants_html(accept);
    let as_data = !html && accept.contains("application/json");
    let Ok(id) = ShareId::parse(id) else {
        return refusal(app, headers, DomainError::ShareNotFound.into(), html);
    };
    let proof = header_text(headers, once_api::headers::PROOF);
    let source = super::audit::source(origin, headers, None);
    let (base, now) = (app.base_url(origin), once_domain::now());
    let claimed = match by {
        ClaimBy::Page => app.service.claim(&id, proof, &base, now, &source).await,
        ClaimBy::DownloadTool => app.service.claim_plain(&id, &base, now, &source).await,
    };
    match claimed {
        Ok(claim) => {
            tracing::info!(share = %claim.share.id.log_label(), downloads_left = claim.share.downloads_left, "share claimed");
            if as_data {
                let mut response = axum::Json(once_api::ClaimTicket {
                    download_url: claim.download_url.clone(),
                    lease_until: claim.lease_until,
                    downloads_left: claim.share.downloads_left,
                })
                .into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return response;
            }
            // The body repeats the URL so that `curl` without `-L` still shows where the bytes are.
            let mut response =
                (StatusCode::SEE_OTHER, format!("{}\n", claim.download_url)).into_response();
            let headers = response.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&claim.download_url) {
                headers.insert(header::LOCATION, location);
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // Lets the recipient check the file end to end (`once get` does). For a large
            // multipart upload this is the sender's declared digest, which nobody else checked.
            if let Some(digest) = claim.share.sha256
                && let Ok(value) = HeaderValue::from_str(&digest.to_hex())
            {
                headers.insert(once_api::headers::SHA256, value);
            }
            response
        }
        Err(crate::service::ServiceError::Rejected(DomainError::EncryptedLink)) => {
            encrypted_link(app, id.as_str(), origin, headers)
        }
        Err(error) => refusal(app, headers, error.into(), html),
    }
}
