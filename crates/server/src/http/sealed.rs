//! End-to-end encrypted shares on the wire (`docs/encryption.md`): a sender's `encryption`
//! checked into the domain's [`Encryption`], and `GET /s/{id}/seal`, which hands a recipient
//! what it needs to derive the keys with a fresh claim challenge and consumes nothing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use once_api::{ErrorBody, NewEncryption, PasswordParams as WirePasswordParams, SealedShare};
use once_domain::encryption::PasswordParams;
use once_domain::{DomainError, Encryption, ShareId};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::forwarded::Origin;

/// A sender's (or an uploader's) `encryption`, checked by the domain's one rule.
pub fn parse(new: &NewEncryption) -> Result<Encryption, DomainError> {
    Encryption::parse(
        &new.scheme,
        &new.claim_key,
        &new.sealed_meta,
        new.password.as_ref().map(|params| PasswordParams {
            salt: params.salt.clone(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
        }),
        new.ephemeral_key.as_deref(),
        new.recipient_key.as_deref(),
    )
}

/// The optional `encryption` of a new share or upload; `contents` (the archive listing) names
/// files, so it must travel sealed too.
pub fn parse_optional(
    new: Option<&NewEncryption>,
    has_contents: bool,
) -> Result<Option<Encryption>, DomainError> {
    let Some(new) = new else {
        return Ok(None);
    };
    if has_contents {
        return Err(DomainError::InvalidEncryption(
            "an encrypted share has no plaintext contents: the listing travels in sealed_meta",
        ));
    }
    parse(new).map(Some)
}

/// `GET /s/{id}/seal`: JSON for the recipient's client (the CLI or the landing page's script).
///
/// A refusal here is where a recipient's client learns that the share is used up, expired or
/// revoked, before it would claim: it is recorded as a refused claim (`step=seal`).
#[utoipa::path(
    get,
    path = once_api::routes::SHARE_SEAL,
    tag = "links",
    params(("id" = String, Path, description = "The share's id")),
    responses(
        (status = 200, description = "What a recipient needs to derive the keys and prove it holds \
            them, with a fresh challenge; nothing is used up", body = SealedShare),
        (status = 400, description = "A path that is not UTF-8 (`invalid_path`)", body = ErrorBody),
        (status = 404, description = "No such share, not uploaded yet, or not end-to-end encrypted \
            (`not_encrypted`)", body = ErrorBody),
        (status = 410, description = "Every download was claimed, or the share expired or was \
            revoked", body = ErrorBody),
    ),
)]
pub async fn seal(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    origin: Origin,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<SealedShare>> {
    let id = ShareId::parse(&id).map_err(|_| DomainError::ShareNotFound)?;
    let now = once_domain::now();
    let sealed = match app.service.seal(&id, now).await {
        Ok(sealed) => sealed,
        Err(error) => {
            let error = ApiError::from(error);
            // A plain share's link asked for its seal is no attempt to claim.
            if matches!(error.refusal(), DomainError::NotEncrypted)
                || super::audit::store_failed(&error)
            {
                return Err(error);
            }
            let event = once_domain::AuditEvent::new(
                once_domain::AuditKind::ClaimRefused,
                now,
                &super::audit::source(&origin, &headers, None),
            )
            .of_share_id(&id)
            .with_detail(format!(
                "{} step=seal",
                super::audit::refusal_detail(&error)
            ));
            app.service.record(event).await;
            return Err(error);
        }
    };
    let encryption = sealed.encryption;
    Ok(Json(SealedShare {
        scheme: encryption.scheme,
        size: sealed.share.size,
        record_size: once_domain::encryption::RECORD_SIZE,
        sealed_meta: encryption.sealed_meta,
        password: encryption.password.map(|params| WirePasswordParams {
            salt: params.salt,
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
        }),
        ephemeral_key: encryption.ephemeral_key,
        recipient_key: encryption.recipient_key,
        challenge: sealed.challenge,
        challenge_expires_at: sealed.challenge_expires_at,
        downloads_left: sealed.share.downloads_left,
        expires_at: sealed.share.expires_at,
    }))
}
