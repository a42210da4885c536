//! The audit log: events recorded where things happen (the HTTP handlers, the claim, the
//! reaper, key administration), and a key's view of its own. A claim's events commit with the
//! claim (`MetaStore::claim_share_recorded`); every other event is written after the change it
//! records, best effort: a failed audit write is logged and counted, never turned into an
//! error for a change that already happened (docs/security.md#the-audit-log).

use once_domain::{AuditEvent, KeyId, RequestId, ShareId};
use once_meta::{AuditFilter, AuditRecord};

use super::*;

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
    /// strangers cannot fill anyone's log.
    pub async fn record(&self, mut event: AuditEvent) {
        if event.owner.is_none() {
            event.owner = self.owner_of(&event).await;
        }
        if event.owner.is_none() {
            return;
        }
        if let Err(error) = self.meta.record_audit(&event).await {
            metrics::counter!("once_audit_write_failures_total").increment(1);
            tracing::warn!(%error, kind = %event.kind, "could not write an audit event");
        }
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
