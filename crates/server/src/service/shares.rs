//! Shares: creation with an upload ticket, receiving or completing the upload, the owner's view
//! and revocation, and the claim that hands a recipient a download URL.

use once_api::{PartTicket, StoredParts, UploadTicket};
use once_blob::{BlobError, PutLimits, ReportedPart};
use once_domain::share::add;
use once_domain::{
    AuditEvent, AuditKind, AuditSource, BlobKey, DomainError, Instant, Sha256Digest, Share,
    ShareId, ShareSpec,
};
use once_meta::CompletedUpload;

use once_api::routes;

use super::events::UploadTarget;
use super::evidence::{self, Uploader};
use super::uploads::UploadEndpoints;
use super::*;
use once_meta::RefusedTarget;

impl Service {
    pub async fn create_share(
        &self,
        caller: &Caller,
        spec: &ShareSpec,
        now: Instant,
    ) -> ServiceResult<Share> {
        let share = self
            .shares
            .new_share(spec, Some(caller.key_id.clone()), now)?;
        self.admit_share(&caller.key_id, share.size, now).await?;
        self.meta.insert_share(&share).await?;
        metrics::counter!("once_shares_created_total").increment(1);
        Ok(share)
    }

    /// Creates a share whose bytes the client sends itself, and the ticket that says how: one
    /// request for a small file of known size (a presigned bucket URL, or this server's own
    /// signed `/b/up/{id}` URL), otherwise parts (see `uploads`).
    #[tracing::instrument(name = "create", skip_all)]
    pub async fn create_share_with_ticket(
        &self,
        caller: &Caller,
        spec: &ShareSpec,
        contents: Option<String>,
        now: Instant,
        base: &str,
    ) -> ServiceResult<(Share, UploadTicket)> {
        let mut share = self
            .shares
            .new_share(spec, Some(caller.key_id.clone()), now)?;
        if share.encryption.is_some() && contents.is_some() {
            return Err(DomainError::InvalidEncryption(
                "an encrypted share has no plaintext contents: the listing travels in sealed_meta",
            )
            .into());
        }
        share.contents = contents;
        // Before a multipart upload is started in the bucket.
        self.admit_share(&caller.key_id, share.size, now).await?;
        let endpoints = UploadEndpoints {
            parts_url: format!("{base}{}", routes::share_parts(share.id.as_str())),
            complete_url: format!("{base}{}", routes::share_complete(share.id.as_str())),
        };
        let ticket = self.begin_upload(&mut share, endpoints, base, now).await?;
        self.meta.insert_share(&share).await?;
        metrics::counter!("once_shares_created_total").increment(1);
        Ok((share, ticket))
    }

    /// Streams an upload for a pending share into the blob store and publishes the share if
    /// this upload is the first complete one. A refused or interrupted upload leaves the slot
    /// as it was.
    /// An upload to a ticket that had its file already is kept as evidence (see
    /// [`Self::keep_refused_upload`]) and raises the duplicate alarm.
    #[tracing::instrument(name = "upload", skip_all)]
    pub async fn receive_share_upload(
        &self,
        id: &ShareId,
        incoming: IncomingBody,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let size = incoming.content_length;
        let mut body = Some(incoming);
        let result = self
            .receive_share_upload_unwatched(id, &mut body, who, started_at)
            .await;
        if matches!(result, Err(ServiceError::Rejected(DomainError::SlotUsed)))
            && let Some(unread) = body
        {
            self.keep_refused_upload(RefusedTarget::Share(id.clone()), unread, who, started_at)
                .await;
        }
        self.watch_duplicate(&result, UploadTarget::Share(id), size)
            .await;
        result
    }

    /// [`Self::receive_share_upload`] before its refusals are watched for duplicates; takes
    /// the body out of `body` only once it reads it.
    async fn receive_share_upload_unwatched(
        &self,
        id: &ShareId,
        body: &mut Option<IncomingBody>,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let announced = body
            .as_ref()
            .map(|incoming| (incoming.content_length, incoming.sha256));
        let (content_length, header_sha256) = announced.unwrap_or_default();
        let share = self
            .meta
            .get_share(id)
            .await?
            .ok_or(DomainError::ShareNotFound)?;
        if let Some(refusal) = share.upload_refusal(started_at) {
            return Err(refusal.into());
        }
        let limit = share.size.unwrap_or(self.shares.max_size);
        match (content_length, share.size) {
            (Some(length), _) if length > limit => {
                return Err(DomainError::TooLarge { limit }.into());
            }
            // A body announced shorter than declared can never complete: refuse before reading.
            (Some(length), Some(expected)) if length < expected => {
                return Err(DomainError::SizeMismatch {
                    expected,
                    actual: length,
                }
                .into());
            }
            _ => {}
        }
        self.meta.count_upload_attempt(id).await?;
        let sha256 = match (share.sha256, header_sha256) {
            (Some(declared), Some(header)) if declared != header => {
                return Err(DomainError::ChecksumMismatch.into());
            }
            (declared, header) => declared.or(header),
        };
        let limits = PutLimits {
            expected_size: share.size,
            max_size: self.shares.max_size,
            sha256,
        };
        let blob_key = BlobKey::generate();
        let incoming = body.take().ok_or(DomainError::SlotUsed)?;
        let info = self.blob.put(&blob_key, incoming.body, limits).await?;
        let upload = CompletedUpload {
            blob_key: blob_key.clone(),
            blob_version: None,
            size: info.size,
            sha256: Some(info.sha256),
            started_at,
        };
        let outcome = self
            .meta
            .publish_share(id, &upload, once_domain::now())
            .await;
        let refusal = match outcome.map(published) {
            Ok(Ok(share)) => return Ok(share),
            Ok(Err(refusal)) => ServiceError::from(refusal),
            Err(error) => ServiceError::from(error),
        };
        if matches!(refusal, ServiceError::Rejected(DomainError::SlotUsed)) {
            // It lost a race with another upload: evidence too, its hash known, its bytes
            // deleted below like any loser's.
            self.record_refused_upload(evidence::lost_race(
                RefusedTarget::Share(id.clone()),
                who,
                started_at,
                content_length,
                &info,
            ))
            .await;
        }
        // This upload lost (or could not be recorded): its bytes must never be served.
        if let Err(error) = self.blob.delete(&blob_key).await {
            tracing::warn!(%blob_key, %error, "could not delete the blob of a refused upload; the reaper will");
        }
        Err(refusal)
    }

    /// The client reports its upload complete: a multipart upload (any store) is checked and
    /// assembled; a single direct upload to the bucket is checked (size, and checksum where
    /// the store keeps one). Either is then published with one conditional write. On the
    /// embedded store a single upload publishes as it arrives, so this only confirms the state.
    #[tracing::instrument(name = "complete", skip_all)]
    pub async fn complete_share(
        &self,
        caller: &Caller,
        id: &ShareId,
        parts: &[ReportedPart],
        reported_sha256: Option<Sha256Digest>,
        now: Instant,
    ) -> ServiceResult<Share> {
        let size = None;
        let result = self
            .complete_share_unwatched(caller, id, parts, reported_sha256, now)
            .await;
        self.watch_duplicate(&result, UploadTarget::Share(id), size)
            .await;
        result
    }

    /// [`Self::complete_share`] before its refusals are watched for duplicates.
    async fn complete_share_unwatched(
        &self,
        caller: &Caller,
        id: &ShareId,
        parts: &[ReportedPart],
        reported_sha256: Option<Sha256Digest>,
        now: Instant,
    ) -> ServiceResult<Share> {
        let share = self.share_for_owner(caller, id).await?;
        // Every completion is an upload attempt the owner sees, refused ones included.
        self.meta.count_upload_attempt(id).await?;
        if share.state != once_domain::ShareState::Pending {
            // Another completion won (or this one's answer was lost; the client then finds
            // the share published): this one did not publish anything.
            return Err(match share.claim_refusal(now) {
                Some(DomainError::ShareRevoked) => DomainError::ShareRevoked,
                _ => DomainError::SlotUsed,
            }
            .into());
        }
        let upload = if share.upload_session.is_some() {
            self.finish_multipart(&share, parts, reported_sha256, now)
                .await?
        } else {
            self.finish_single_direct(&share, now).await?
        };
        Ok(published(self.meta.publish_share(id, &upload, now).await?)?)
    }

    /// Checks what a single presigned `PUT` left in the bucket.
    async fn finish_single_direct(
        &self,
        share: &Share,
        now: Instant,
    ) -> ServiceResult<CompletedUpload> {
        let Some(blob_key) = share
            .blob_key
            .clone()
            .filter(|_| self.blob.direct_uploads())
        else {
            return Err(DomainError::NothingUploaded.into());
        };
        let completed = match self.blob.complete_upload(&blob_key, None, &[]).await {
            Ok(completed) => completed,
            Err(BlobError::NotFound) => {
                return Err(DomainError::NothingUploaded.into());
            }
            Err(other) => return Err(other.into()),
        };
        let stored_sha256 = match (share.sha256, completed.sha256) {
            // The store keeps no checksum we can read: hash small objects ourselves, so a
            // declared checksum is never taken on trust; larger ones rely on the signed lengths.
            (Some(_), None) if completed.size <= VERIFY_BY_READING_UP_TO => Some(
                self.hash_blob(&blob_key, completed.version.as_deref())
                    .await?,
            ),
            (_, stored) => stored,
        };
        let refusal = match (share.size, share.sha256, stored_sha256) {
            (Some(expected), _, _) if completed.size != expected => {
                Some(DomainError::SizeMismatch {
                    expected,
                    actual: completed.size,
                })
            }
            (_, Some(declared), Some(stored)) if declared != stored => {
                Some(DomainError::ChecksumMismatch)
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            // A wrong object must not block the slot: remove it so the ticket can be used again.
            self.blob.delete(&blob_key).await?;
            return Err(refusal.into());
        }
        Ok(CompletedUpload {
            blob_key: blob_key.clone(),
            blob_version: completed.version,
            size: completed.size,
            sha256: stored_sha256.or(share.sha256),
            // The storage refused the upload if it started after the ticket expired.
            started_at: now.min(share.upload_expires_at - time::Duration::seconds(1)),
        })
    }

    pub(super) async fn hash_blob(
        &self,
        blob_key: &BlobKey,
        version: Option<&str>,
    ) -> ServiceResult<Sha256Digest> {
        use futures::StreamExt;
        use sha2::Digest;
        let mut read = self.blob.open(blob_key, version, None).await?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = read.body.next().await {
            hasher.update(chunk.map_err(BlobError::Storage)?);
        }
        Ok(Sha256Digest(hasher.finalize().into()))
    }

    /// URLs for parts of the owner's multipart upload still in progress: more parts, parts of
    /// an upload of unknown size, or fresh URLs where the first ones expired (up to the upload
    /// grace period).
    pub async fn owner_part_urls(
        &self,
        caller: &Caller,
        id: &ShareId,
        wanted: &once_api::RefreshParts,
        base: &str,
        now: Instant,
    ) -> ServiceResult<Vec<PartTicket>> {
        let share = self.share_for_owner(caller, id).await?;
        self.sign_parts(&share, wanted, base, now).await
    }

    /// What the storage holds of the owner's unfinished multipart upload (for resuming).
    pub async fn owner_stored_parts(
        &self,
        caller: &Caller,
        id: &ShareId,
        now: Instant,
    ) -> ServiceResult<StoredParts> {
        let share = self.share_for_owner(caller, id).await?;
        if share.state != once_domain::ShareState::Pending {
            return Err(DomainError::SlotUsed.into());
        }
        if share.upload_refusal(now).is_some()
            && now >= add(share.upload_expires_at, self.upload_grace)
        {
            return Err(DomainError::UploadExpired.into());
        }
        self.stored_parts(&share).await
    }

    /// The caller's shares, newest first, after the share `(created_at, id)` of the previous
    /// page.
    pub async fn list_shares(
        &self,
        caller: &Caller,
        after: Option<(Instant, ShareId)>,
        limit: u32,
    ) -> ServiceResult<Vec<Share>> {
        Ok(self
            .meta
            .list_shares(
                &caller.key_id,
                after.as_ref().map(|(created_at, id)| (*created_at, id)),
                limit,
            )
            .await?)
    }

    pub async fn share_for_owner(&self, caller: &Caller, id: &ShareId) -> ServiceResult<Share> {
        match self.meta.get_share(id).await? {
            // Someone else's share is reported as unknown, not as forbidden: ids are secrets.
            Some(share) if share.owner.as_ref() == Some(&caller.key_id) => Ok(share),
            _ => Err(DomainError::ShareNotFound.into()),
        }
    }

    pub async fn revoke_share(&self, caller: &Caller, id: &ShareId) -> ServiceResult<()> {
        let share = self.share_for_owner(caller, id).await?;
        if self.meta.revoke_share(id, &caller.key_id).await? {
            self.discard_bytes(id).await;
            return Ok(());
        }
        // Already revoked, or gone: report what a recipient would see.
        Err(share
            .claim_refusal(once_domain::now())
            .unwrap_or(DomainError::ShareRevoked)
            .into())
    }

    /// Deletes a revoked share's bytes right away, so download URLs already handed out (which
    /// the storage would otherwise honour until they expire) stop working now. Best effort:
    /// what fails here is retried by the reaper, which owns the final cleanup.
    async fn discard_bytes(&self, id: &ShareId) {
        let share = match self.meta.get_share(id).await {
            Ok(Some(share)) => share,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read a revoked share; the reaper will clean up");
                return;
            }
        };
        let Some(blob_key) = &share.blob_key else {
            return;
        };
        if let Some(upload_id) = &share.upload_session
            && let Err(error) = self.blob.abort_upload(blob_key, upload_id).await
        {
            tracing::warn!(%blob_key, %error, "cannot abort the upload of a revoked share");
        }
        if let Err(error) = self.blob.delete(blob_key).await {
            tracing::warn!(%blob_key, %error, "cannot delete the bytes of a revoked share");
        }
    }

    /// A share as a recipient would find it, without consuming anything.
    pub async fn peek(&self, id: &ShareId) -> ServiceResult<Share> {
        Ok(self
            .meta
            .get_share(id)
            .await?
            .ok_or(DomainError::ShareNotFound)?)
    }

    pub async fn count_preview(&self, id: &ShareId) -> ServiceResult<()> {
        metrics::counter!("once_previews_total").increment(1);
        Ok(self.meta.count_preview(id).await?)
    }

    /// What a recipient needs to open and claim an encrypted share, with a fresh challenge;
    /// consumes nothing. A plain share is `not_encrypted`; one that cannot be claimed now
    /// answers why, as a claim would.
    pub async fn seal(&self, id: &ShareId, now: Instant) -> ServiceResult<SealedClaim> {
        let share = self.peek(id).await?;
        let encryption = share.encryption.clone().ok_or(DomainError::NotEncrypted)?;
        if let Some(refusal) = share.claim_refusal(now) {
            return Err(refusal.into());
        }
        let (challenge, challenge_expires_at) = self.challenges.issue(id.as_str(), now);
        Ok(SealedClaim {
            share,
            encryption,
            challenge,
            challenge_expires_at,
        })
    }

    /// The claim: one conditional write decides it; the winner gets a download URL that lives
    /// as long as its lease. An encrypted share that could be claimed now is claimed only with
    /// a valid `proof` of its key (`X-Once-Proof`), checked before that write, so a refused
    /// proof consumes nothing.
    ///
    /// Its audit events (by `source`) are written once the claim has committed, and a refused
    /// claim of a known share once it is refused; both best effort, before the answer.
    #[tracing::instrument(name = "claim", skip_all)]
    pub async fn claim(
        &self,
        id: &ShareId,
        proof: Option<&str>,
        base: &str,
        now: Instant,
        source: &AuditSource,
    ) -> ServiceResult<Claim> {
        // The encryption of a share never changes once it is made, so this read decides
        // nothing that the claim's conditional write below must decide.
        let current = self.peek(id).await?;
        if let Some(encryption) = &current.encryption
            && current.claim_refusal(now).is_none()
            && let Err(refusal) = encryption.verify_proof(&self.challenges, id.as_str(), proof, now)
        {
            metrics::counter!("once_claims_total", "outcome" => "refused").increment(1);
            self.record_refused_claim(&current, &refusal, source, now)
                .await;
            return Err(refusal.into());
        }
        let lease_until = add(now, self.claim_lease);
        let claimed = self.meta.claim_share(id, now, lease_until).await?;
        self.claim_outcome(id, claimed, None, base, lease_until, now, source)
            .await
    }

    /// The claim of a download tool (curl, wget), which cannot prove an encrypted share's
    /// key: one write that claims only a plain share. An encrypted share that could be
    /// claimed is refused with `encrypted_link` and left as it was, unrecorded (nobody has
    /// tried to claim it with a key yet).
    #[tracing::instrument(name = "claim", skip_all)]
    pub async fn claim_plain(
        &self,
        id: &ShareId,
        base: &str,
        now: Instant,
        source: &AuditSource,
    ) -> ServiceResult<Claim> {
        let lease_until = add(now, self.claim_lease);
        let claimed = self.meta.claim_plain_share(id, now, lease_until).await?;
        let mut refused = None;
        if claimed.is_none() {
            let share = self.peek(id).await?;
            if share.encryption.is_some() && share.claim_refusal(now).is_none() {
                return Err(DomainError::EncryptedLink.into());
            }
            refused = Some(share);
        }
        self.claim_outcome(id, claimed, refused, base, lease_until, now, source)
            .await
    }

    /// What a claim's write decided: the download URL of the `claimed` share, with its
    /// events, or the refusal of a share that could not be claimed (`refused`, if the
    /// caller has just read it).
    #[allow(clippy::too_many_arguments)]
    async fn claim_outcome(
        &self,
        id: &ShareId,
        claimed: Option<Share>,
        refused: Option<Share>,
        base: &str,
        lease_until: Instant,
        now: Instant,
        source: &AuditSource,
    ) -> ServiceResult<Claim> {
        let Some(share) = claimed else {
            metrics::counter!("once_claims_total", "outcome" => "refused").increment(1);
            let share = match refused {
                Some(share) => share,
                None => self.peek(id).await?,
            };
            let refusal = share
                .claim_refusal(now)
                .unwrap_or(DomainError::ShareConsumed);
            self.record_refused_claim(&share, &refusal, source, now)
                .await;
            return Err(refusal.into());
        };
        metrics::counter!("once_claims_total", "outcome" => "claimed").increment(1);
        for event in once_domain::audit::claim_events(&share, source, now) {
            self.record(event).await;
        }
        self.claimed(&share).await;
        let download_url = self.download_url(&share, base, lease_until)?;
        Ok(Claim {
            share,
            download_url,
            lease_until,
        })
    }

    async fn record_refused_claim(
        &self,
        share: &Share,
        refusal: &DomainError,
        source: &AuditSource,
        now: Instant,
    ) {
        let event = AuditEvent::new(AuditKind::ClaimRefused, now, source)
            .of_share(share)
            .with_detail(format!("code={}", refusal.code()));
        self.record(event).await;
    }

    fn download_url(
        &self,
        share: &Share,
        base: &str,
        expires_at: Instant,
    ) -> ServiceResult<String> {
        let blob_key = share.blob_key.as_ref().ok_or(DomainError::ShareNotReady)?;
        let disposition = share.filename.content_disposition();
        if let Some(url) = self.blob.presign_download(
            blob_key,
            share.blob_version.as_deref(),
            &disposition,
            &share.content_type,
            expires_at,
        ) {
            return Ok(url);
        }
        let path = routes::blob_download(blob_key.as_str(), &url_escape(share.filename.as_str()));
        let content_type = url_escape(&share.content_type);
        let query = self
            .signer
            .signed_query("GET", &path, &[("ct", &content_type)], expires_at);
        Ok(format!("{base}{path}?{query}"))
    }

    /// `PUT /api/v1/files/…`: creates the share and streams its bytes in one request. Such a
    /// share cannot be retried by id, so a failed upload retires it at once rather than at
    /// expiry.
    pub async fn share_in_one_step(
        &self,
        caller: &Caller,
        spec: &ShareSpec,
        incoming: IncomingBody,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let share = self.create_share(caller, spec, started_at).await?;
        match self
            .receive_share_upload(&share.id, incoming, who, started_at)
            .await
        {
            Ok(share) => Ok(share),
            Err(error) => {
                if let Err(revoke) = self.meta.revoke_share(&share.id, &caller.key_id).await {
                    tracing::warn!(share = %share.id.log_label(), error = %revoke, "could not retire a failed one-step share; it expires on its own");
                }
                Err(error)
            }
        }
    }

    /// An upload to a signed ticket URL of the embedded store (`/b/up/…`): the URL must be
    /// ours and unexpired when the upload starts.
    pub async fn receive_ticket_upload(
        &self,
        path: &str,
        query: &str,
        id: &ShareId,
        incoming: IncomingBody,
        who: &Uploader,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        self.verify_upload_url(path, query, started_at)?;
        self.receive_share_upload(id, incoming, who, started_at)
            .await
    }

    /// Checks a signed download URL of the embedded store (`/b/dl/…`).
    pub fn verify_download(&self, path: &str, query: &str, now: Instant) -> ServiceResult<()> {
        Ok(self.signer.verify("GET", path, query, now)?)
    }

    /// The size of a stored blob, None once it is gone.
    pub async fn blob_size(&self, blob_key: &BlobKey) -> ServiceResult<Option<u64>> {
        Ok(self.blob.size(blob_key).await?)
    }

    /// Opens a blob of the embedded store (which keeps one version) for reading.
    pub async fn open_blob(
        &self,
        blob_key: &BlobKey,
        range: Option<std::ops::RangeInclusive<u64>>,
    ) -> Result<once_blob::BlobRead, BlobError> {
        self.blob.open(blob_key, None, range).await
    }
}
