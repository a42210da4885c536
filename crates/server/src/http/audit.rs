//! The audit log over HTTP: who asked (address, user agent, key) as the handlers record it,
//! and `GET /api/v1/audit`, a key's own events.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use once_api::{AuditEventView, AuditList};
use once_domain::{AuditEvent, AuditKind, AuditSource, DomainError, KeyId, RequestId, ShareId};

use super::error::{ApiError, ApiResult};
use super::forwarded::Origin;
use super::{AppState, header_text};
use crate::service::{AuditQuery, Caller};

/// Events per page unless the client asks for fewer (or more, up to the maximum).
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Who made this request, for the audit log.
pub(super) fn source(origin: &Origin, headers: &HeaderMap, key: Option<&KeyId>) -> AuditSource {
    AuditSource::new(
        Some(origin.client.to_string()),
        header_text(headers, header::USER_AGENT),
        key.cloned(),
    )
}

/// The detail of a refusal: its stable code, as the client was told.
pub(super) fn refusal_detail(error: &ApiError) -> String {
    format!("code={}", error.parts().1)
}

/// A refusal the metadata store itself caused (unreachable, full) is not recorded: the store
/// could not take the event either, and waiting for it would only hold up the answer.
pub(super) fn store_failed(error: &ApiError) -> bool {
    matches!(error.0, crate::service::ServiceError::Meta(_))
}

/// Where an upload went: a share's own ticket or completion, or an upload request.
pub(super) enum UploadTo<'a> {
    Share(&'a ShareId),
    Request(&'a RequestId),
}

/// Records what an upload ended in (see [`upload_event`]) at `at`, and hands the outcome back
/// as the handler answers it.
pub(super) async fn recorded_upload(
    app: &AppState,
    to: UploadTo<'_>,
    outcome: crate::service::ServiceResult<once_domain::Share>,
    at: once_domain::Instant,
    by: &AuditSource,
) -> ApiResult<once_domain::Share> {
    let outcome = outcome.map_err(ApiError::from);
    app.service.record(upload_event(to, &outcome, at, by)).await;
    outcome
}

/// What an upload that ended in `outcome` records: `upload.completed` (to a share) or
/// `request.fulfilled` (to a request) with the size received, or `upload.refused` with the
/// code the uploader was told; nothing when the store itself failed.
pub(super) fn upload_event(
    to: UploadTo<'_>,
    outcome: &Result<once_domain::Share, ApiError>,
    at: once_domain::Instant,
    by: &AuditSource,
) -> Option<AuditEvent> {
    let completed = match to {
        UploadTo::Share(_) => AuditKind::UploadCompleted,
        UploadTo::Request(_) => AuditKind::RequestFulfilled,
    };
    match outcome {
        Ok(share) => Some(
            AuditEvent::new(completed, at, by)
                .of_share(share)
                .with_detail(format!("size={}", share.size.unwrap_or_default())),
        ),
        Err(error) if store_failed(error) => None,
        Err(error) => {
            let refused = AuditEvent::new(AuditKind::UploadRefused, at, by);
            let refused = match to {
                UploadTo::Share(id) => refused.of_share_id(id),
                UploadTo::Request(id) => refused.of_request_id(id),
            };
            Some(refused.with_detail(refusal_detail(error)))
        }
    }
}

/// A query parameter read with `parse`, or `400 invalid_query` saying what it must be.
fn parameter<T, E>(
    text: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, E>,
    must_be: &str,
) -> Result<Option<T>, DomainError> {
    text.map(|text| parse(&text).map_err(|_| DomainError::InvalidQuery(must_be.to_owned())))
        .transpose()
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this share's events.
    share: Option<String>,
    /// Only this upload request's events.
    request: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    /// The `next` of the previous page.
    after: Option<u64>,
    /// Events per page, 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// `GET /api/v1/audit`: the caller's events, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = once_api::routes::AUDIT,
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of the caller's audit events, oldest first",
            body = AuditList),
        (status = 400, description = "A bad filter, `after` or `limit` (`invalid_query`)",
            body = once_api::ErrorBody),
    ),
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    let Query(params) =
        query.map_err(|rejection| DomainError::InvalidQuery(rejection.body_text()))?;
    let limit = match params.limit {
        None => DEFAULT_PAGE,
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => {
            return Err(DomainError::InvalidQuery(format!("limit must be 1 to {MAX_PAGE}")).into());
        }
    };
    let share = parameter(params.share, ShareId::parse, "share must be a share id")?;
    let request = parameter(
        params.request,
        RequestId::parse,
        "request must be a request id",
    )?;
    let since = parameter(
        params.since,
        |text| time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339),
        "since must be an RFC 3339 time",
    )?;
    let records = app
        .service
        .audit_events(
            &caller,
            AuditQuery {
                share,
                request,
                since,
                after: params.after,
                limit,
            },
        )
        .await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last())
        .flatten()
        .map(|record| record.seq.to_string());
    let events = records
        .into_iter()
        .map(|record| {
            let event = record.event;
            AuditEventView {
                seq: record.seq,
                at: event.at,
                kind: event.kind.as_str().to_owned(),
                share_id: event.share.map(|id| id.as_str().to_owned()),
                request_id: event.request.map(|id| id.as_str().to_owned()),
                key_id: event.key.map(|id| id.as_str().to_owned()),
                client: event.client,
                user_agent: event.user_agent,
                detail: event.detail,
            }
        })
        .collect();
    Ok(Json(AuditList { events, next }))
}
