//! The audit log over HTTP: who asked (address, user agent, key) as the handlers record it,
//! and `GET /api/v1/audit`, a key's own events.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use once_api::{AuditEventView, AuditList};
use once_domain::{AuditSource, DomainError, KeyId, RequestId, ShareId};

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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    share: Option<String>,
    request: Option<String>,
    since: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/v1/audit`: the caller's events, oldest first, a page at a time.
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
    // An id that cannot be one finds nothing, like another key's.
    let share = params
        .share
        .map(|id| {
            ShareId::parse(&id)
                .map_err(|_| DomainError::InvalidQuery("share must be a share id".into()))
        })
        .transpose()?;
    let request = params
        .request
        .map(|id| {
            RequestId::parse(&id)
                .map_err(|_| DomainError::InvalidQuery("request must be a request id".into()))
        })
        .transpose()?;
    let since = params
        .since
        .map(|text| {
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| DomainError::InvalidQuery("since must be an RFC 3339 time".into()))
        })
        .transpose()?;
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
