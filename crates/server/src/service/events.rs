//! What the service tells the webhook, and where. Event bodies name a share or a request by the
//! first characters of its id only, and a file by its name only when the share is not encrypted
//! end to end: a full id is a capability (whoever holds it may download or upload), and the
//! receiver, its logs and its retries are read by more people than the link.

use once_domain::event::EventKind;
use once_domain::{DomainError, RequestId, Share, ShareId};
use serde_json::{Value, json};

use super::*;

/// The share as events describe it.
pub(crate) fn share_data(share: &Share) -> Value {
    json!({
        "share": share.id.log_label(),
        "owner_key": share.owner.as_ref().map(|key| key.as_str().to_owned()),
        "request": share.request_id.as_ref().map(RequestId::log_label),
        "encrypted": share.encryption.is_some(),
        "filename": share
            .encryption
            .is_none()
            .then(|| share.filename.as_str().to_owned()),
        "size": share.size,
        "downloads_left": share.downloads_left,
        "max_downloads": share.max_downloads,
        "expires_at": share
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
    })
}

impl Service {
    /// After a won claim: claimed, and consumed when it took the last download.
    pub(crate) async fn claimed(&self, share: &Share) {
        self.emit(EventKind::ShareClaimed, share_data(share)).await;
        if share.downloads_left == 0 {
            self.emit(EventKind::ShareConsumed, share_data(share)).await;
        }
    }

    /// A share the reaper retired that expired without a download.
    pub(crate) async fn expired_unread(&self, share: &Share) {
        self.emit(EventKind::ShareExpiredUnread, share_data(share))
            .await;
    }

    /// After an upload to a request became its share.
    pub(crate) async fn fulfilled(&self, request: &RequestId, share: &Share) {
        let mut data = share_data(share);
        data["request"] = json!(request.log_label());
        self.emit(EventKind::RequestFulfilled, data).await;
    }

    /// An upload refused because the ticket or the request had been used: the alarm.
    pub(crate) async fn watch_duplicate<T>(
        &self,
        result: &ServiceResult<T>,
        target: UploadTarget<'_>,
        declared_size: Option<u64>,
    ) {
        if !matches!(result, Err(ServiceError::Rejected(DomainError::SlotUsed))) {
            return;
        }
        let (share, request) = match target {
            UploadTarget::Share(id) => (Some(id.log_label()), None),
            UploadTarget::Request(id) => (None, Some(id.log_label())),
        };
        self.emit(
            EventKind::UploadDuplicate,
            json!({ "share": share, "request": request, "declared_size": declared_size }),
        )
        .await;
    }
}

/// What a refused upload went to.
#[derive(Clone, Copy)]
pub(crate) enum UploadTarget<'a> {
    Share(&'a ShareId),
    Request(&'a RequestId),
}
