//! Upload requests: a one-time upload URL whose first complete upload becomes a share for the
//! requester.

use once_blob::PutLimits;
use once_domain::request::ReceivedUpload;
use once_domain::{
    BlobKey, DomainError, Instant, RequestId, RequestSpec, Share, ShareId, UploadRequest,
};
use once_meta::FulfilOutcome;

use super::*;

impl Service {
    pub async fn create_request(
        &self,
        caller: &Caller,
        spec: &RequestSpec,
        now: Instant,
    ) -> ServiceResult<UploadRequest> {
        let request = self
            .requests
            .new_request(spec, &self.shares, caller.key_id.clone(), now)?;
        self.meta.insert_request(&request).await?;
        Ok(request)
    }

    pub async fn request_for_owner(
        &self,
        caller: &Caller,
        id: &RequestId,
    ) -> ServiceResult<(UploadRequest, Option<Share>)> {
        match self.meta.get_request(id).await? {
            Some(request) if request.owner == caller.key_id => {
                let share = match &request.share_id {
                    Some(share_id) => self.meta.get_share(share_id).await?,
                    None => None,
                };
                Ok((request, share))
            }
            _ => Err(DomainError::RequestNotFound.into()),
        }
    }

    pub async fn list_requests(
        &self,
        caller: &Caller,
    ) -> ServiceResult<Vec<(UploadRequest, Option<Share>)>> {
        let mut listed = Vec::new();
        for request in self.meta.list_requests(&caller.key_id).await? {
            let share = match &request.share_id {
                Some(share_id) => self.meta.get_share(share_id).await?,
                None => None,
            };
            listed.push((request, share));
        }
        Ok(listed)
    }

    /// The public view of an upload request (for its upload page).
    pub async fn open_request(&self, id: &RequestId) -> ServiceResult<UploadRequest> {
        Ok(self
            .meta
            .get_request(id)
            .await?
            .ok_or(DomainError::RequestNotFound)?)
    }

    /// Streams an upload to a request URL; the first complete one becomes the requester's share.
    pub async fn receive_request_upload(
        &self,
        id: &RequestId,
        filename_hint: Option<String>,
        content_type: Option<String>,
        incoming: IncomingBody,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let request = self.open_request(id).await?;
        if let Some(refusal) = request.upload_refusal(started_at) {
            return Err(refusal.into());
        }
        // Each running upload may hold up to max_size of disk until it fails or wins, so one
        // outsider with the URL can hold at most this many of them.
        let _slot = self
            .request_uploads
            .enter(id)
            .ok_or(DomainError::UploadsInFlight(self.request_uploads.limit))?;
        if incoming
            .content_length
            .is_some_and(|length| length > request.max_size)
        {
            return Err(DomainError::TooLarge {
                limit: request.max_size,
            }
            .into());
        }
        let share_id = ShareId::generate();
        let blob_key = BlobKey::generate();
        let limits = PutLimits {
            expected_size: incoming.content_length,
            max_size: request.max_size,
            sha256: incoming.sha256,
        };
        let info = self.blob.put(&blob_key, incoming.body, limits).await?;
        let upload = ReceivedUpload {
            filename_hint,
            content_type,
            size: info.size,
            sha256: info.sha256,
            blob_key: blob_key.clone(),
        };
        let result = match request.share_for(share_id, upload, once_domain::now()) {
            Ok(share) => self
                .meta
                .fulfil_request(id, &share, started_at)
                .await
                .map_err(ServiceError::from),
            Err(error) => Err(error.into()),
        };
        let refusal = match result {
            Ok(FulfilOutcome::Fulfilled(share)) => {
                metrics::counter!("once_uploads_total", "outcome" => "published").increment(1);
                return Ok(*share);
            }
            Ok(FulfilOutcome::SlotUsed) => DomainError::SlotUsed.into(),
            Ok(FulfilOutcome::Expired) => DomainError::UploadExpired.into(),
            Ok(FulfilOutcome::NotFound) => DomainError::RequestNotFound.into(),
            Err(error) => error,
        };
        if let Err(error) = self.blob.delete(&blob_key).await {
            tracing::warn!(%blob_key, %error, "could not delete the blob of a refused upload; the reaper will");
        }
        Err(refusal)
    }
}
