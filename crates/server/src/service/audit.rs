//! The audit log: events recorded where things happen (the HTTP handlers, the claim, the
//! reaper, key administration), and a key's view of its own. Every event is written right
//! after the change it records has committed, best effort and within [`AUDIT_WRITE_TIMEOUT`]:
//! a failed audit write is logged and counted, never turned into an error for a change that
//! already happened (docs/security.md#the-audit-log says why a claim and its events are not
//! one transaction).

use once_domain::{AuditEvent, KeyId, RequestId, ShareId};
use once_meta::{AuditFilter, AuditRecord};

use super::*;

/// How long recording one event may hold up the answer it belongs to.
const AUDIT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a key asks of its audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub share: Option<ShareId>,
    pub request: Option<RequestId>,
    pub since: Option<Instant>,
    pub after: Option<u64>,
    pub limit: u32,
}

impl Service {
    /// Writes `event` to the audit log, best effort. An event without an owner gets the owner
    /// of its share or request; one that names nothing known (a made-up id) is dropped, so
    /// strangers cannot fill anyone's log. `None` records nothing.
    pub async fn record(&self, event: impl Into<Option<AuditEvent>>) {
        let Some(event) = event.into() else {
            return;
        };
        let kind = event.kind;
        let written = tokio::time::timeout(AUDIT_WRITE_TIMEOUT, self.write(event)).await;
        let failure = match written {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {AUDIT_WRITE_TIMEOUT:?}"),
        };
        metrics::counter!("once_audit_write_failures_total").increment(1);
        tracing::warn!(error = %failure, %kind, "could not write an audit event");
    }

    async fn write(&self, mut event: AuditEvent) -> ServiceResult<()> {
        if event.owner.is_none() {
            event.owner = self.owner_of(&event).await;
        }
        if event.owner.is_some() {
            self.meta.record_audit(&event).await?;
        }
        Ok(())
    }

    async fn owner_of(&self, event: &AuditEvent) -> Option<KeyId> {
        if let Some(id) = &event.share
            && let Ok(Some(share)) = self.meta.get_share(id).await
        {
            return share.owner;
        }
        if let Some(id) = &event.request
            && let Ok(Some(request)) = self.meta.get_request(id).await
        {
            return Some(request.owner);
        }
        None
    }

    /// The caller's own audit log: events of its shares, its requests and itself, nobody
    /// else's (another key's share id finds nothing, as it does everywhere).
    pub async fn audit_events(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> ServiceResult<Vec<AuditRecord>> {
        Ok(self
            .meta
            .audit_events(&AuditFilter {
                owner: Some(caller.key_id.clone()),
                share: query.share,
                request: query.request,
                since: query.since,
                after: query.after,
                limit: query.limit,
            })
            .await?)
    }
}
