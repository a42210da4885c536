//! The share service: the rules of `once` applied to the two stores. HTTP handlers call into it
//! and only translate; every decision that must be atomic is delegated to one conditional write
//! in the [`MetaStore`].

use std::sync::Arc;
use std::time::Duration;

use once_blob::{
    BlobError, BlobStore, ByteStream, DirectUpload, PartReceipt, PresignedPart, PutLimits,
};
use once_domain::request::ReceivedUpload;
use once_domain::share::add;
use once_domain::signing::{REQUEST_SIGNATURE_WINDOW_SECS, verify_request_signature};
use once_domain::{
    ApiToken, BlobKey, DomainError, Instant, KeyId, RequestId, RequestPolicy, RequestSpec,
    SecretSealer, Sha256Digest, Share, ShareId, SharePolicy, ShareSpec, UploadRequest, UrlSigner,
};
use once_meta::{CompletedUpload, FulfilOutcome, MetaError, MetaStore, PublishOutcome, StoredKey};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but unreserved characters is escaped in the path segments and query values we
/// sign, so the signed text and the text on the wire are identical.
const URL_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Direct uploads up to this size are read back and hashed when the store reports no checksum.
const VERIFY_BY_READING_UP_TO: u64 = 64 * 1024 * 1024;

pub fn url_escape(text: &str) -> String {
    utf8_percent_encode(text, URL_ESCAPES).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The rules refused the request; the client can fix it.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("blob store: {0}")]
    Blob(BlobError),
}

impl From<BlobError> for ServiceError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge { limit } => DomainError::TooLarge { limit }.into(),
            BlobError::SizeMismatch { expected, actual } => {
                DomainError::SizeMismatch { expected, actual }.into()
            }
            BlobError::ChecksumMismatch => DomainError::ChecksumMismatch.into(),
            BlobError::Interrupted(error) => DomainError::UploadInterrupted(error.to_string()).into(),
            BlobError::NotFound => DomainError::NotFound.into(),
            BlobError::InvalidParts(reason) => DomainError::InvalidParts(reason).into(),
            BlobError::PendingSpaceExhausted { .. } => DomainError::UploadSpaceExhausted.into(),
            other => ServiceError::Blob(other),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// The authenticated key behind an API request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: KeyId,
}

/// An active key whose secret can check a request signature (see [`Service::signing_key`]).
pub struct SigningKey {
    key_id: KeyId,
    secret: once_domain::KeySecret,
}

/// What an HMAC-signed request claims, from its headers.
pub struct SignedRequest<'a> {
    pub timestamp: i64,
    pub signature: &'a str,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body_sha256_hex: &'a str,
}

/// How the client must send the bytes of a new share.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub method: String,
    /// Where a single-request upload goes (None for multipart).
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    pub expires_at: Instant,
    /// Set when the bytes go to the storage directly and the client must then report the
    /// upload complete.
    pub complete_url: Option<String>,
    pub multipart: Option<MultipartTicket>,
}

/// A multipart direct upload: each part to its own URL, then `complete` with the ETags.
#[derive(Debug, Clone)]
pub struct MultipartTicket {
    pub upload_id: String,
    pub part_size: u64,
    pub parts: Vec<PresignedPart>,
}

/// A successful claim: where the claimant fetches the bytes, and until when.
#[derive(Debug, Clone)]
pub struct Claim {
    pub share: Share,
    pub download_url: String,
    pub lease_until: Instant,
}

/// A body arriving through the server, with what its headers declared.
pub struct IncomingBody {
    pub body: ByteStream,
    pub content_length: Option<u64>,
    pub sha256: Option<Sha256Digest>,
}

pub struct Service {
    pub meta: Arc<dyn MetaStore>,
    pub blob: Arc<dyn BlobStore>,
    pub signer: UrlSigner,
    pub sealer: SecretSealer,
    pub shares: SharePolicy,
    pub requests: RequestPolicy,
    pub claim_lease: Duration,
    /// How long after its ticket expired an upload that started in time may still finish.
    pub upload_grace: Duration,
}

impl Service {
    // ---- authentication -----------------------------------------------------------------

    async fn active_key(&self, id: &KeyId) -> ServiceResult<StoredKey> {
        match self.meta.find_key(id).await? {
            Some(key) if key.record.is_active() => Ok(key),
            _ => Err(DomainError::InvalidCredentials.into()),
        }
    }

    pub async fn authenticate_bearer(&self, token: &str) -> ServiceResult<Caller> {
        let token = ApiToken::parse(token)?;
        let key = self.active_key(&token.id).await?;
        if !token.secret.matches_hash(&key.secret_hash) {
            return Err(DomainError::InvalidCredentials.into());
        }
        Ok(Caller { key_id: token.id })
    }

    /// The first half of checking an HMAC-signed request, before a byte of its body is read:
    /// the key must exist and be active, so a made-up key id costs no body buffering.
    pub async fn signing_key(&self, key_id: &str) -> ServiceResult<SigningKey> {
        let key_id = KeyId::parse(key_id)?;
        let key = self.active_key(&key_id).await?;
        let secret = self
            .sealer
            .open(key_id.as_str(), &key.sealed_secret)
            .ok_or(DomainError::InvalidCredentials)?;
        Ok(SigningKey { key_id, secret })
    }

    /// Verifies an HMAC-signed request and burns its signature so it cannot be replayed,
    /// on this or any other instance sharing the metadata store.
    pub async fn authenticate_signed(
        &self,
        key: SigningKey,
        request: &SignedRequest<'_>,
        now: Instant,
    ) -> ServiceResult<Caller> {
        verify_request_signature(
            &key.secret,
            request.method,
            request.path_and_query,
            request.timestamp,
            request.body_sha256_hex,
            request.signature,
            now,
        )?;
        // Keep the record for as long as the timestamp could still be accepted.
        let keep_until = request
            .timestamp
            .checked_add(REQUEST_SIGNATURE_WINDOW_SECS + 1)
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or(DomainError::StaleTimestamp)?;
        if !self
            .meta
            .record_signature(&key.key_id, request.signature, keep_until)
            .await?
        {
            return Err(DomainError::ReplayedSignature.into());
        }
        Ok(Caller { key_id: key.key_id })
    }

    // ---- keys ---------------------------------------------------------------------------

    fn keyring(&self) -> crate::keys::Keyring<'_> {
        crate::keys::Keyring {
            meta: &*self.meta,
            sealer: &self.sealer,
        }
    }

    pub async fn create_key(&self, name: &str, now: Instant) -> ServiceResult<ApiToken> {
        self.keyring().create(name, now).await
    }

    /// Makes sure `token` exists (for `ONCE_BOOTSTRAP_KEY`).
    pub async fn ensure_key(
        &self,
        token: &ApiToken,
        name: &str,
        now: Instant,
    ) -> ServiceResult<()> {
        self.keyring().ensure(token, name, now).await
    }

    // ---- shares -------------------------------------------------------------------------

    pub async fn create_share(
        &self,
        caller: &Caller,
        spec: &ShareSpec,
        now: Instant,
    ) -> ServiceResult<Share> {
        let share = self
            .shares
            .new_share(spec, Some(caller.key_id.clone()), now)?;
        self.meta.insert_share(&share).await?;
        metrics::counter!("once_shares_created_total").increment(1);
        Ok(share)
    }

    /// Creates a share whose bytes the client sends itself, and the ticket that says how: a
    /// presigned storage URL (or multipart set of URLs) when the store has them, otherwise this
    /// server's own signed `/b/up/{id}` URL.
    pub async fn create_share_with_ticket(
        &self,
        caller: &Caller,
        spec: &ShareSpec,
        now: Instant,
        base: &str,
    ) -> ServiceResult<(Share, UploadTicket)> {
        let mut share = self
            .shares
            .new_share(spec, Some(caller.key_id.clone()), now)?;
        let complete_url = format!("{base}/api/v1/shares/{}/complete", share.id);
        let ticket = if self.blob.direct_uploads() {
            // The object key is fixed per share, so the bucket's If-None-Match refuses a
            // second upload to the same ticket.
            let blob_key = BlobKey::generate();
            let direct = self
                .blob
                .presign_upload(
                    &blob_key,
                    share.size.unwrap_or(0),
                    &share.content_type,
                    share.sha256,
                    share.upload_expires_at,
                )
                .await?
                .ok_or_else(|| ServiceError::Blob(BlobError::NotFound))?;
            share.blob_key = Some(blob_key);
            match direct {
                DirectUpload::Single {
                    method,
                    url,
                    headers,
                    expires_at,
                } => UploadTicket {
                    method,
                    url: Some(url),
                    headers,
                    expires_at,
                    complete_url: Some(complete_url),
                    multipart: None,
                },
                DirectUpload::Multipart {
                    upload_id,
                    part_size,
                    parts,
                    expires_at,
                } => {
                    share.upload_session = Some(upload_id.clone());
                    UploadTicket {
                        method: "PUT".into(),
                        url: None,
                        headers: Vec::new(),
                        expires_at,
                        complete_url: Some(complete_url),
                        multipart: Some(MultipartTicket {
                            upload_id,
                            part_size,
                            parts,
                        }),
                    }
                }
            }
        } else {
            let path = format!("/b/up/{}", share.id);
            let query = self
                .signer
                .signed_query("PUT", &path, &[], share.upload_expires_at);
            let headers = share
                .size
                .map(|size| vec![("Content-Length".to_owned(), size.to_string())])
                .unwrap_or_default();
            UploadTicket {
                method: "PUT".into(),
                url: Some(format!("{base}{path}?{query}")),
                headers,
                expires_at: share.upload_expires_at,
                complete_url: None,
                multipart: None,
            }
        };
        self.meta.insert_share(&share).await?;
        metrics::counter!("once_shares_created_total").increment(1);
        Ok((share, ticket))
    }

    /// Streams an upload for a pending share into the blob store and publishes the share if
    /// this upload is the first complete one. A refused or interrupted upload leaves the slot
    /// as it was.
    pub async fn receive_share_upload(
        &self,
        id: &ShareId,
        incoming: IncomingBody,
        started_at: Instant,
    ) -> ServiceResult<Share> {
        let share = self
            .meta
            .get_share(id)
            .await?
            .ok_or(DomainError::ShareNotFound)?;
        if let Some(refusal) = share.upload_refusal(started_at) {
            return Err(refusal.into());
        }
        let limit = share.size.unwrap_or(self.shares.max_size);
        match (incoming.content_length, share.size) {
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
        let sha256 = match (share.sha256, incoming.sha256) {
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
        let refusal = match outcome {
            Ok(PublishOutcome::Published(share)) => {
                metrics::counter!("once_uploads_total", "outcome" => "published").increment(1);
                return Ok(*share);
            }
            Ok(PublishOutcome::SlotUsed) => DomainError::SlotUsed.into(),
            Ok(PublishOutcome::UploadExpired) => DomainError::UploadExpired.into(),
            Ok(PublishOutcome::NotFound) => DomainError::ShareNotFound.into(),
            Err(error) => ServiceError::from(error),
        };
        // This upload lost (or could not be recorded): its bytes must never be served.
        if let Err(error) = self.blob.delete(&blob_key).await {
            tracing::warn!(%blob_key, %error, "could not delete the blob of a refused upload; the reaper will");
        }
        Err(refusal)
    }

    /// After a direct upload, the client reports it complete: the server checks what the
    /// storage holds (size, and checksum where the store keeps one) and publishes the share
    /// with one conditional write. On the embedded store the upload itself publishes, so this
    /// only confirms the state.
    pub async fn complete_share(
        &self,
        caller: &Caller,
        id: &ShareId,
        parts: &[PartReceipt],
        now: Instant,
    ) -> ServiceResult<Share> {
        let share = self.share_for_owner(caller, id).await?;
        if share.state != once_domain::ShareState::Pending {
            return match share.claim_refusal(now) {
                Some(DomainError::ShareRevoked) => Err(DomainError::ShareRevoked.into()),
                // Completing twice is harmless: report the published share.
                _ if share.published_at.is_some() => Ok(share),
                _ => Err(DomainError::SlotUsed.into()),
            };
        }
        let Some(blob_key) = share
            .blob_key
            .clone()
            .filter(|_| self.blob.direct_uploads())
        else {
            return Err(DomainError::NothingUploaded.into());
        };
        let completed = match self
            .blob
            .complete_upload(&blob_key, share.upload_session.as_deref(), parts)
            .await
        {
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
        let upload = CompletedUpload {
            blob_key: blob_key.clone(),
            blob_version: completed.version,
            size: completed.size,
            sha256: stored_sha256.or(share.sha256),
            // The storage refused the upload if it started after the ticket expired.
            started_at: now.min(share.upload_expires_at - time::Duration::seconds(1)),
        };
        match self.meta.publish_share(id, &upload, now).await? {
            PublishOutcome::Published(share) => {
                metrics::counter!("once_uploads_total", "outcome" => "published").increment(1);
                Ok(*share)
            }
            PublishOutcome::SlotUsed => Err(DomainError::SlotUsed.into()),
            PublishOutcome::UploadExpired => Err(DomainError::UploadExpired.into()),
            PublishOutcome::NotFound => Err(DomainError::ShareNotFound.into()),
        }
    }

    async fn hash_blob(
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

    /// Fresh part URLs for a multipart upload still in progress (its first URLs expire with
    /// the ticket; a long upload may need more time, up to the upload grace period).
    pub async fn refresh_parts(
        &self,
        caller: &Caller,
        id: &ShareId,
        numbers: &[u16],
        now: Instant,
    ) -> ServiceResult<Vec<PresignedPart>> {
        let share = self.share_for_owner(caller, id).await?;
        let (Some(blob_key), Some(upload_id), Some(size)) =
            (&share.blob_key, &share.upload_session, share.size)
        else {
            return Err(DomainError::NotMultipart.into());
        };
        if share.state != once_domain::ShareState::Pending {
            return Err(DomainError::SlotUsed.into());
        }
        if now >= add(share.upload_expires_at, self.upload_grace) {
            return Err(DomainError::UploadExpired.into());
        }
        let expires_at = add(now, self.shares.upload_window);
        Ok(self
            .blob
            .presign_parts(blob_key, upload_id, size, numbers, expires_at)
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

    /// The claim: one conditional write decides it; the winner gets a download URL that lives
    /// as long as its lease.
    pub async fn claim(&self, id: &ShareId, base: &str, now: Instant) -> ServiceResult<Claim> {
        let lease_until = add(now, self.claim_lease);
        let Some(share) = self.meta.claim_share(id, now, lease_until).await? else {
            metrics::counter!("once_claims_total", "outcome" => "refused").increment(1);
            let share = self.peek(id).await?;
            let refusal = share
                .claim_refusal(now)
                .unwrap_or(DomainError::ShareConsumed);
            return Err(refusal.into());
        };
        metrics::counter!("once_claims_total", "outcome" => "claimed").increment(1);
        let download_url = self.download_url(&share, base, lease_until)?;
        Ok(Claim {
            share,
            download_url,
            lease_until,
        })
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
        let path = format!("/b/dl/{blob_key}/{}", url_escape(share.filename.as_str()));
        let content_type = url_escape(&share.content_type);
        let query = self
            .signer
            .signed_query("GET", &path, &[("ct", &content_type)], expires_at);
        Ok(format!("{base}{path}?{query}"))
    }

    // ---- upload requests ----------------------------------------------------------------

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
