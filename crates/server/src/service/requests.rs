//! Upload requests: a one-time upload URL whose first complete upload becomes a share for the
//! requester.

use once_api::{PartTicket, StoredParts, UploadTicket, routes};
use once_blob::{PutLimits, ReportedPart};
use once_domain::request::ReceivedUpload;
use once_domain::share::add;
use once_domain::{
    BlobKey, DomainError, Instant, RequestId, RequestSpec, SessionSpec, Sha256Digest, Share,
    ShareId, UploadRequest, UploadToken,
};

use super::events::UploadTarget;
use super::evidence::{self, Uploader};
use super::uploads::UploadEndpoints;
use super::*;
use once_meta::RefusedTarget;

impl Service {
    #[tracing::instrument(name = "create", skip_all)]
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
    #[tracing::instrument(name = "upload", skip_all)]
    pub async fn receive_request_upload(
        &self,
        id: &RequestId,
        filename_hint: Option<String>,
        content_type: Option<String>,
        incoming: IncomingBody,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let size = incoming.content_length;
        let mut body = Some(incoming);
        let result = self
            .receive_request_upload_unwatched(
                id,
                filename_hint,
                content_type,
                &mut body,
                who,
                started_at,
            )
            .await;
        if matches!(result, Err(ServiceError::Rejected(DomainError::SlotUsed))) {
            metrics::counter!("once_uploads_total", "outcome" => "refused").increment(1);
            if let Err(error) = self.meta.count_refused_upload(id).await {
                tracing::warn!(%error, "could not count a refused upload");
            }
            if let Some(unread) = body {
                self.keep_refused_upload(
                    RefusedTarget::Request(id.clone()),
                    unread,
                    who,
                    started_at,
                )
                .await;
            }
        }
        self.watch_duplicate(&result, UploadTarget::Request(id), size)
            .await;
        if let Ok(share) = &result {
            self.fulfilled(id, share).await;
        }
        result
    }

    /// [`Self::receive_request_upload`] before its refusals are watched for duplicates.
    async fn receive_request_upload_unwatched(
        &self,
        id: &RequestId,
        filename_hint: Option<String>,
        content_type: Option<String>,
        body: &mut Option<IncomingBody>,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let announced = body
            .as_ref()
            .map(|incoming| (incoming.content_length, incoming.sha256));
        let (content_length, header_sha256) = announced.unwrap_or_default();
        let request = self.open_request(id).await?;
        // A streamed upload is plain: an encrypted request refuses it before reading a byte.
        if let Some(refusal) = request.plain_upload_refusal(started_at) {
            return Err(refusal.into());
        }
        // Each running upload may hold up to max_size of disk until it fails or wins, so one
        // outsider with the URL can hold at most this many of them.
        let _slot = self
            .request_uploads
            .enter(id)
            .ok_or(DomainError::UploadsInFlight(self.request_uploads.limit))?;
        if content_length.is_some_and(|length| length > request.max_size) {
            return Err(DomainError::TooLarge {
                limit: request.max_size,
            }
            .into());
        }
        self.admit_share(&request.owner, content_length, started_at)
            .await?;
        let share_id = ShareId::generate();
        let blob_key = BlobKey::generate();
        let limits = PutLimits {
            expected_size: content_length,
            max_size: request.max_size,
            sha256: header_sha256,
        };
        let incoming = body.take().ok_or(DomainError::SlotUsed)?;
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
        let refusal = match result.map(fulfilled) {
            Ok(Ok(share)) => return Ok(share),
            Ok(Err(refusal)) => ServiceError::from(refusal),
            Err(error) => error,
        };
        if matches!(refusal, ServiceError::Rejected(DomainError::SlotUsed)) {
            // Another upload fulfilled the request first: evidence, with its hash; its bytes
            // are deleted below like any loser's.
            self.record_refused_upload(evidence::lost_race(
                RefusedTarget::Request(id.clone()),
                who,
                started_at,
                content_length,
                &info,
            ))
            .await;
        }
        if let Err(error) = self.blob.delete(&blob_key).await {
            tracing::warn!(%blob_key, %error, "could not delete the blob of a refused upload; the reaper will");
        }
        Err(refusal)
    }
}

/// What an uploader sends to start its own upload to a request (`POST /r/{id}/uploads`).
pub struct SessionStart {
    pub spec: SessionSpec,
    pub contents: Option<String>,
}

impl Service {
    /// Starts one uploader's multipart upload to a request: a pending share of the requester
    /// that only this upload's token can fill. How many may be open at once is counted in the
    /// metadata store, so it holds across instances even when the bytes go to the bucket.
    #[tracing::instrument(name = "upload.start", skip_all)]
    pub async fn start_request_upload(
        &self,
        id: &RequestId,
        start: SessionStart,
        base: &str,
        now: Instant,
    ) -> ServiceResult<(Share, UploadTicket)> {
        let size = start.spec.size;
        let result = self
            .start_request_upload_unwatched(id, start, base, now)
            .await;
        self.watch_duplicate(&result, UploadTarget::Request(id), size)
            .await;
        result
    }

    /// [`Self::start_request_upload`] before its refusals are watched for duplicates.
    async fn start_request_upload_unwatched(
        &self,
        id: &RequestId,
        start: SessionStart,
        base: &str,
        now: Instant,
    ) -> ServiceResult<(Share, UploadTicket)> {
        let request = self.open_request(id).await?;
        if let Some(refusal) = request.upload_refusal(now) {
            return Err(refusal.into());
        }
        // A session counts for as long as it may still take parts (its window plus the
        // grace), so the limit bounds what one request can have staged at once.
        let still_open_after = now
            - time::Duration::seconds(
                i64::try_from(self.upload_grace.as_secs()).unwrap_or(i64::MAX / 4),
            );
        if self.meta.count_open_sessions(id, still_open_after).await? >= self.request_uploads.limit
        {
            return Err(DomainError::UploadsInFlight(self.request_uploads.limit).into());
        }
        let mut share = request.session_share(&start.spec, self.shares.upload_window, now)?;
        // The file becomes the requester's share, so it counts against the requester's key.
        self.admit_share(&request.owner, share.size, now).await?;
        share.contents = start.contents;
        let token = share
            .upload_token
            .clone()
            .ok_or(DomainError::NotMultipart)?;
        let endpoints = UploadEndpoints {
            parts_url: format!(
                "{base}{}",
                routes::request_upload_parts(id.as_str(), token.as_str())
            ),
            complete_url: format!(
                "{base}{}",
                routes::request_upload_complete(id.as_str(), token.as_str())
            ),
        };
        // Always in parts, so that the bytes go straight to the bucket where there is one.
        let ticket = self
            .begin_multipart(&mut share, endpoints, base, now)
            .await?;
        self.meta.insert_share(&share).await?;
        Ok((share, ticket))
    }

    /// An uploader's session, found by the request it belongs to and its token.
    async fn session(&self, id: &RequestId, token: &UploadToken) -> ServiceResult<Share> {
        match self.meta.get_share_by_upload_token(token).await? {
            Some(share) if share.request_id.as_ref() == Some(id) => Ok(share),
            // A finished session's token is gone with it.
            _ => Err(DomainError::UploadExpired.into()),
        }
    }

    pub async fn request_upload_part_urls(
        &self,
        id: &RequestId,
        token: &UploadToken,
        wanted: &once_api::RefreshParts,
        base: &str,
        now: Instant,
    ) -> ServiceResult<Vec<PartTicket>> {
        let share = self.session(id, token).await?;
        self.sign_parts(&share, wanted, base, now).await
    }

    pub async fn request_upload_stored_parts(
        &self,
        id: &RequestId,
        token: &UploadToken,
    ) -> ServiceResult<StoredParts> {
        let share = self.session(id, token).await?;
        self.stored_parts(&share).await
    }

    /// Completes an uploader's session: the parts are checked and assembled, then one
    /// transaction fulfils the request with this share, if no other upload did first. A
    /// loser's bytes are deleted at once (never served), its session retired and the refusal
    /// counted for the requester.
    #[tracing::instrument(name = "complete", skip_all)]
    pub async fn complete_request_upload(
        &self,
        id: &RequestId,
        token: &UploadToken,
        parts: &[ReportedPart],
        reported_sha256: Option<Sha256Digest>,
        now: Instant,
    ) -> ServiceResult<Share> {
        let size = None;
        let result = self
            .complete_request_upload_unwatched(id, token, parts, reported_sha256, now)
            .await;
        self.watch_duplicate(&result, UploadTarget::Request(id), size)
            .await;
        if let Ok(share) = &result {
            self.fulfilled(id, share).await;
        }
        result
    }

    /// [`Self::complete_request_upload`] before its refusals are watched for duplicates.
    async fn complete_request_upload_unwatched(
        &self,
        id: &RequestId,
        token: &UploadToken,
        parts: &[ReportedPart],
        reported_sha256: Option<Sha256Digest>,
        now: Instant,
    ) -> ServiceResult<Share> {
        let request = self.open_request(id).await?;
        let share = self.session(id, token).await?;
        if request.share_id.is_some() {
            self.refuse_session(id, &share).await;
            return Err(DomainError::SlotUsed.into());
        }
        let mut upload = self
            .finish_multipart(&share, parts, reported_sha256, now)
            .await?;
        // The upload began when its session did: a request that expired since still takes
        // an upload that started in time (as a streamed one does).
        upload.started_at = share.created_at;
        let expires_at = add(now, request.share_expires_in);
        let outcome = self
            .meta
            .fulfil_request_with(id, &share.id, &upload, expires_at, now)
            .await?;
        let refusal = match fulfilled(outcome) {
            Ok(share) => return Ok(share),
            Err(refusal) => ServiceError::from(refusal),
        };
        if let Err(error) = self.blob.delete(&upload.blob_key).await {
            tracing::warn!(blob_key = %upload.blob_key, %error, "could not delete the blob of a refused upload; the reaper will");
        }
        self.refuse_session(id, &share).await;
        Err(refusal)
    }

    /// Retires a session that lost: counts the refusal and revokes its pending share, whose
    /// staged parts the reaper then removes.
    async fn refuse_session(&self, id: &RequestId, share: &Share) {
        metrics::counter!("once_uploads_total", "outcome" => "refused").increment(1);
        if let Err(error) = self.meta.count_refused_upload(id).await {
            tracing::warn!(%error, "could not count a refused upload");
        }
        if let Some(owner) = &share.owner
            && let Err(error) = self.meta.revoke_share(&share.id, owner).await
        {
            tracing::warn!(%error, "could not retire a refused upload session; it expires on its own");
        }
        if let (Some(blob_key), Some(upload_id)) = (&share.blob_key, &share.upload_session)
            && let Err(error) = self.blob.abort_upload(blob_key, upload_id).await
        {
            tracing::warn!(%blob_key, %error, "could not remove the parts of a refused upload; the reaper will");
        }
    }

    /// Uploads to this request refused because another one came first.
    pub async fn refused_uploads(&self, id: &RequestId) -> ServiceResult<u32> {
        Ok(self.meta.refused_uploads(id).await?)
    }
}
