//! The share service: the rules of `once` applied to the two stores. HTTP handlers call into it
//! and only translate; every decision that must be atomic is delegated to one conditional write
//! in the [`MetaStore`].

use std::sync::Arc;
use std::time::Duration;

use once_blob::{BlobError, BlobStore, ByteStream};
use once_domain::{
    ChallengeSigner, DomainError, Instant, KeyId, MasterSecret, RequestId, RequestPolicy,
    SecretSealer, SessionSigner, Sha256Digest, Share, SharePolicy, UrlSigner,
};
use once_meta::{MetaError, MetaStore};
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
            BlobError::Interrupted(error) => {
                DomainError::UploadInterrupted(error.to_string()).into()
            }
            BlobError::NotFound => DomainError::NotFound.into(),
            BlobError::InvalidParts(reason) => DomainError::InvalidParts(reason).into(),
            BlobError::PartConflict(number) => DomainError::PartConflict(number).into(),
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

/// A successful claim: where the claimant fetches the bytes, and until when.
#[derive(Debug, Clone)]
pub struct Claim {
    pub share: Share,
    pub download_url: String,
    pub lease_until: Instant,
}

/// What a recipient of an encrypted share gets from `GET /s/{id}/seal`: the share (its
/// public encryption parameters) and a fresh claim challenge.
#[derive(Debug, Clone)]
pub struct SealedClaim {
    pub share: Share,
    pub encryption: once_domain::Encryption,
    pub challenge: String,
    pub challenge_expires_at: Instant,
}

/// A body arriving through the server, with what its headers declared.
pub struct IncomingBody {
    pub body: ByteStream,
    pub content_length: Option<u64>,
    pub sha256: Option<Sha256Digest>,
}

/// The rules that are the service's own, from the configuration.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub shares: SharePolicy,
    pub requests: RequestPolicy,
    pub claim_lease: Duration,
    /// How long after its ticket expired an upload that started in time may still finish.
    pub upload_grace: Duration,
    /// Uploads one upload-request URL may have running at once: streamed ones per instance,
    /// multipart ones (which may go straight to the bucket) counted in the metadata store.
    pub request_uploads_in_flight: u32,
    /// Parts of multipart uploads have this many bytes (every part but the last); larger
    /// uploads, and uploads of unknown size, go in parts.
    pub upload_part_size: u64,
    /// How long a browser session lasts.
    pub session_lifetime: Duration,
    /// What each key may hold.
    pub quotas: once_domain::Quotas,
    /// What is kept of refused uploads.
    pub evidence: Option<evidence::EvidencePolicy>,
}

/// The only door to the stores: handlers, the reaper and the commands call these methods and
/// never reach the stores, the signer or the sealer themselves.
pub struct Service {
    meta: Arc<dyn MetaStore>,
    blob: Arc<dyn BlobStore>,
    signer: UrlSigner,
    sealer: SecretSealer,
    sessions: SessionSigner,
    /// Signs and checks the claim challenges of encrypted shares (stateless, so any instance
    /// with the same master secret checks any instance's).
    challenges: ChallengeSigner,
    session_lifetime: Duration,
    shares: SharePolicy,
    requests: RequestPolicy,
    claim_lease: Duration,
    upload_grace: Duration,
    request_uploads: InFlight<RequestId>,
    upload_part_size: u64,
    quotas: once_domain::Quotas,
    /// Where events go (a webhook), when one is configured.
    notifier: Option<Arc<crate::webhooks::Notifier>>,
    /// What is kept of refused uploads; None keeps nothing and records nothing.
    evidence: Option<evidence::EvidencePolicy>,
    /// Writes audit events off the request path; None writes each one as it comes.
    audit: Option<audit::AuditWriter>,
}

impl Service {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blob: Arc<dyn BlobStore>,
        master: &MasterSecret,
        settings: ServiceSettings,
    ) -> Self {
        Self {
            meta,
            blob,
            signer: master.url_signer(),
            sealer: master.sealer(),
            sessions: master.session_signer(),
            challenges: master.challenge_signer(),
            session_lifetime: settings.session_lifetime,
            shares: settings.shares,
            requests: settings.requests,
            claim_lease: settings.claim_lease,
            upload_grace: settings.upload_grace,
            request_uploads: InFlight::new(settings.request_uploads_in_flight),
            upload_part_size: settings.upload_part_size,
            quotas: settings.quotas,
            notifier: None,
            evidence: settings.evidence,
            audit: None,
        }
    }

    /// Audit events of this service are written in batches by a task of their own (on the
    /// current runtime), for a server; see [`Self::flush_audit`] before it exits.
    pub fn with_audit_writer(mut self) -> Self {
        self.audit = Some(audit::AuditWriter::start(self.meta.clone()));
        self
    }

    /// Events of this service go to `notifier` (which delivers them from the outbox).
    pub fn with_notifier(mut self, notifier: Arc<crate::webhooks::Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn notifier(&self) -> Option<&Arc<crate::webhooks::Notifier>> {
        self.notifier.as_ref()
    }

    /// Tells the webhook (if any) about `kind`; never fails: see [`crate::webhooks::Notifier::emit`].
    pub(crate) async fn emit(&self, kind: once_domain::event::EventKind, data: serde_json::Value) {
        if let Some(notifier) = &self.notifier {
            notifier.emit(kind, data).await;
        }
    }

    /// Refuses a new share of `owner` (its own, or an upload to its request) of `size` bytes
    /// (None: not known yet) that its quotas leave no room for, before anything is stored.
    pub(crate) async fn admit_share(
        &self,
        owner: &once_domain::KeyId,
        size: Option<u64>,
        now: Instant,
    ) -> ServiceResult<()> {
        if self.quotas.is_unlimited() {
            return Ok(());
        }
        let usage = self
            .meta
            .key_usage(owner, now - once_domain::quota::SHARES_WINDOW, now)
            .await?;
        let admitted = self.quotas.admit(&usage, size);
        if admitted.is_err() {
            metrics::counter!("once_quota_refusals_total").increment(1);
        }
        Ok(admitted?)
    }

    /// Checks one of this server's signed upload URLs (a ticket or a part): ours, and not
    /// expired when the upload starts (an expired one is an upload that came too late).
    fn verify_upload_url(&self, path: &str, query: &str, at: Instant) -> ServiceResult<()> {
        self.signer
            .verify("PUT", path, query, at)
            .map_err(|error| match error {
                DomainError::UrlExpired => DomainError::UploadExpired,
                other => other,
            })?;
        Ok(())
    }

    /// The stores, for the reaper (which lives beside the service in this crate) only.
    pub(crate) fn stores(&self) -> (&dyn MetaStore, &dyn BlobStore) {
        (&*self.meta, &*self.blob)
    }

    /// Ready when both stores can do their work now: the metadata store commits a write, the
    /// blob store can write a file (or reach its bucket).
    pub async fn readiness(&self) -> Result<(), String> {
        let (meta, blob) = tokio::join!(self.meta.ping(), self.blob.ping());
        match (meta, blob) {
            (Ok(()), Ok(())) => Ok(()),
            (meta, blob) => Err(format!("metadata store: {meta:?}; blob store: {blob:?}")),
        }
    }

    /// Whether any API key exists (start-up prints how to make one).
    pub async fn has_keys(&self) -> ServiceResult<bool> {
        Ok(!self.meta.list_keys().await?.is_empty())
    }

    /// The limits shares are held to (the send page shows them).
    pub fn share_policy(&self) -> &SharePolicy {
        &self.shares
    }

    /// The bucket's origin where browsers upload straight to it (for page security policies).
    pub fn upload_origin(&self) -> Option<String> {
        self.blob.direct_origin()
    }

    /// Bytes that unfinished uploads through this instance hold now.
    pub fn pending_upload_bytes(&self) -> u64 {
        self.blob.pending_bytes()
    }
}

/// What a publishing write decided: the share it published, or why this upload lost.
fn published(outcome: once_meta::PublishOutcome) -> Result<Share, DomainError> {
    use once_meta::PublishOutcome::*;
    match outcome {
        Published(share) => {
            metrics::counter!("once_uploads_total", "outcome" => "published").increment(1);
            Ok(*share)
        }
        SlotUsed => Err(DomainError::SlotUsed),
        UploadExpired => Err(DomainError::UploadExpired),
        NotFound => Err(DomainError::ShareNotFound),
    }
}

/// What the write that fulfils an upload request decided: the share it published, or why
/// this upload lost.
fn fulfilled(outcome: once_meta::FulfilOutcome) -> Result<Share, DomainError> {
    use once_meta::FulfilOutcome::*;
    match outcome {
        Fulfilled(share) => {
            metrics::counter!("once_uploads_total", "outcome" => "published").increment(1);
            Ok(*share)
        }
        SlotUsed => Err(DomainError::SlotUsed),
        Expired => Err(DomainError::UploadExpired),
        NotFound => Err(DomainError::RequestNotFound),
    }
}

/// Counts what runs at once per key, refusing more than `limit`; a [`Slot`] gives its place
/// back when dropped, however the upload ends.
struct InFlight<K: Eq + std::hash::Hash + Clone> {
    limit: u32,
    running: Arc<std::sync::Mutex<std::collections::HashMap<K, u32>>>,
}

impl<K: Eq + std::hash::Hash + Clone> InFlight<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            running: Arc::default(),
        }
    }

    fn enter(&self, key: &K) -> Option<Slot<K>> {
        let mut running = self.running.lock().expect("in-flight lock");
        let count = running.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            key: key.clone(),
            running: self.running.clone(),
        })
    }
}

struct Slot<K: Eq + std::hash::Hash + Clone> {
    key: K,
    running: Arc<std::sync::Mutex<std::collections::HashMap<K, u32>>>,
}

impl<K: Eq + std::hash::Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut running = self.running.lock().expect("in-flight lock");
        if let Some(count) = running.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.key);
            }
        }
    }
}

mod audit;
mod auth;
mod events;
pub mod evidence;
mod requests;
mod shares;
mod uploads;

pub use audit::AuditQuery;
pub use requests::SessionStart;
pub use uploads::{parse_sha256, reported_parts};
