//! API authentication middleware: `Authorization: Bearer KEYID.SECRET`, or an HMAC-signed
//! request (`X-Once-Key`, `X-Once-Timestamp`, `X-Once-Signature`). A streamed upload
//! (`PUT /api/v1/files/…`) signs the hash it announces in `X-Once-Content-Sha256`, which the
//! upload then enforces byte for byte; on every other route the header is not trusted: the body
//! is read (at most `api_body_limit`, and only once the key id is known to be real) and hashed
//! here, so a signature always covers the real body. Pages of this server call the same API
//! with the browser's session cookie instead, plus a CSRF token on anything that changes state.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use once_domain::DomainError;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiResult;
use crate::service::SignedRequest;

pub use once_api::headers::CONTENT_SHA256;

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

pub async fn require_key(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> ApiResult<Response> {
    let now = once_domain::now();
    let (caller, mut request) = if let Some(value) = request.headers().get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(DomainError::InvalidCredentials)?;
        (app.service.authenticate_bearer(token).await?, request)
    } else if let Some(key_id) = header(&request, once_api::headers::KEY) {
        let timestamp = header(&request, once_api::headers::TIMESTAMP)
            .and_then(|value| value.parse::<i64>().ok())
            .ok_or(DomainError::BadRequestSignature)?;
        let signature = header(&request, once_api::headers::SIGNATURE)
            .ok_or(DomainError::BadRequestSignature)?
            .to_owned();
        // Before any body byte is read: an unknown key costs nothing but this lookup.
        let key = app.service.signing_key(key_id).await?;
        let method = request.method().as_str().to_owned();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default();
        // Only the file upload enforces the announced hash itself (while streaming).
        let enforced_by_handler = request.method() == axum::http::Method::PUT
            && request
                .uri()
                .path()
                .starts_with(once_api::routes::FILES_PREFIX);
        let announced = header(&request, CONTENT_SHA256).filter(|_| enforced_by_handler);
        let (body_hash, request) = match announced {
            Some(announced) => {
                once_domain::Sha256Digest::parse_hex(announced)?;
                (announced.to_ascii_lowercase(), request)
            }
            None => {
                let limit = app.api_body_limit;
                let (parts, body) = request.into_parts();
                let bytes =
                    axum::body::to_bytes(body, limit)
                        .await
                        .map_err(|_| DomainError::TooLarge {
                            limit: limit as u64,
                        })?;
                let hash = hex::encode(Sha256::digest(&bytes));
                (hash, Request::from_parts(parts, Body::from(bytes)))
            }
        };
        let signed = SignedRequest {
            timestamp,
            signature: &signature,
            method: &method,
            path_and_query: &path_and_query,
            body_sha256_hex: &body_hash,
        };
        let caller = app.service.authenticate_signed(key, &signed, now).await?;
        (caller, request)
    } else if let Some(session) = super::web::session::cookie(request.headers()) {
        let session = session.to_owned();
        let caller = app.service.authenticate_session(&session, now).await?;
        // A page of ours proves it is one by the token only our pages hold; SameSite=Strict
        // already keeps other sites' requests from carrying the cookie at all.
        if !matches!(
            request.method(),
            &axum::http::Method::GET | &axum::http::Method::HEAD
        ) {
            let csrf = header(&request, super::web::session::CSRF_HEADER)
                .ok_or(DomainError::CsrfRejected)?;
            app.service.check_csrf(&session, csrf)?;
        }
        (caller, request)
    } else {
        return Err(DomainError::MissingCredentials.into());
    };
    app.rate_limits.check_key(&caller.key_id)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
