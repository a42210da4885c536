//! The metadata seam. Every decision that must hold across instances (a claim, the first
//! complete upload, a replayed signature, reaper work) is one conditional write behind
//! [`MetaStore`], never a read-then-write in Rust. Backends: [`sqlite::SqliteMetaStore`] (the
//! embedded default) and [`postgres::PostgresMetaStore`] (several instances on one database).

pub mod conformance;
pub mod evidence;
pub mod outbox;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;
pub mod testing;

use async_trait::async_trait;
use once_domain::{
    AuditEvent, BlobKey, Instant, KeyId, KeyRecord, RequestId, Sha256Digest, Share, ShareId,
    UploadRequest, UploadToken,
};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("a key with this id already exists")]
    KeyExists,
    #[error("corrupt row in the metadata store: {0}")]
    Corrupt(String),
    /// The readiness probe found the store unable to commit a write now.
    #[error("metadata store not ready: {0}")]
    NotReady(String),
    /// A store that had to exist already (see `SqliteMetaStore::open_existing`) does not.
    #[error("the database file {} does not exist", .0.display())]
    Missing(std::path::PathBuf),
}

pub type MetaResult<T> = Result<T, MetaError>;

pub use evidence::{RefusedTarget, RefusedUpload, RefusedUploads};
pub use outbox::{Outbox, OutboxCounts, OutboxEvent};

/// How long the readiness probe may take before it reports the store not ready: a load
/// balancer's check must get an answer, not hang for the store's own (much longer) lock and
/// connection timeouts.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `probe` within [`READY_TIMEOUT`].
pub(crate) async fn within_ready_timeout(
    probe: impl std::future::Future<Output = MetaResult<()>>,
) -> MetaResult<()> {
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err(MetaError::NotReady(format!(
            "no commit within {READY_TIMEOUT:?}"
        ))),
    }
}

/// A key as stored: the record plus what authentication needs.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub record: KeyRecord,
    /// SHA-256 of the secret text.
    pub secret_hash: Vec<u8>,
    /// The secret sealed under the master secret (needed to verify HMAC-signed requests).
    pub sealed_secret: Vec<u8>,
}

/// A complete, verified upload waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub blob_key: BlobKey,
    /// The storage's version of the blob to serve, where it keeps versions.
    pub blob_version: Option<String>,
    pub size: u64,
    /// What was received, where it is known (a multipart upload to S3 has no whole-object
    /// SHA-256).
    pub sha256: Option<Sha256Digest>,
    /// When the upload began; the window must have been open then.
    pub started_at: Instant,
}

/// Outcome of the attempt to publish a pending share with an uploaded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// This upload won: the share is now ready.
    Published(Box<Share>),
    /// Another upload won first, or the share left `pending` some other way.
    SlotUsed,
    /// The upload window closed before the upload finished.
    UploadExpired,
    NotFound,
}

/// Outcome of the attempt to turn an upload request into a share (a new one, or one of the
/// request's sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FulfilOutcome {
    /// This upload won: the request names the share, which is now ready.
    Fulfilled(Box<Share>),
    /// Another upload fulfilled the request first, or the session share left `pending`.
    SlotUsed,
    /// The request (or the session's upload window) had closed before the upload started.
    Expired,
    NotFound,
}

/// A share whose bytes the reaper should delete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapCandidate {
    pub share_id: ShareId,
    pub blob_key: Option<BlobKey>,
    /// An unfinished multipart upload to abort.
    pub upload_session: Option<String>,
}

/// An event of the audit log as stored, with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The order events were written in (increasing, with gaps); the page cursor.
    pub seq: u64,
    pub event: AuditEvent,
}

/// Which events [`MetaStore::audit_events`] returns: those matching every filter given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Events in this key's log (of its shares, its requests, or about the key itself).
    pub owner: Option<KeyId>,
    pub share: Option<ShareId>,
    pub request: Option<RequestId>,
    /// Events at or after this time.
    pub since: Option<Instant>,
    /// Events written after the one with this `seq` (the previous page's last).
    pub after: Option<u64>,
    pub limit: u32,
}

/// Every metadata store keeps the notification outbox ([`Outbox`]) and the evidence of refused
/// uploads ([`RefusedUploads`]) too, in the same database as the state they tell about.
#[async_trait]
pub trait MetaStore: Outbox + RefusedUploads + Send + Sync + 'static {
    /// The readiness probe of `/readyz`: Ok only if the store durably commits a small write
    /// now (so a full disk, a write lock held elsewhere, a database file deleted or replaced
    /// under the running process, or an unreachable server all fail it). Answers within about
    /// [`READY_TIMEOUT`], with [`MetaError::NotReady`] when it had to give up waiting.
    async fn ping(&self) -> MetaResult<()>;

    // ---- keys -------------------------------------------------------------------------------

    /// Stores a new key; `MetaError::KeyExists` if the id is taken.
    async fn insert_key(&self, key: &StoredKey) -> MetaResult<()>;
    async fn find_key(&self, id: &KeyId) -> MetaResult<Option<StoredKey>>;
    async fn list_keys(&self) -> MetaResult<Vec<KeyRecord>>;
    /// Marks the key revoked; false if there is no such active key.
    async fn revoke_key(&self, id: &KeyId, now: Instant) -> MetaResult<bool>;
    /// Records a used request signature until `keep_until`. Returns false when that signature
    /// was already recorded (a replay). Atomic: of two racing callers exactly one gets true.
    async fn record_signature(
        &self,
        key: &KeyId,
        signature: &str,
        keep_until: Instant,
    ) -> MetaResult<bool>;

    // ---- shares -----------------------------------------------------------------------------

    /// Inserts a new (pending) share.
    async fn insert_share(&self, share: &Share) -> MetaResult<()>;
    async fn get_share(&self, id: &ShareId) -> MetaResult<Option<Share>>;
    /// The share whose multipart upload this token names, in whatever state it is now (the
    /// caller decides whether parts are still accepted). A token is cleared when its share is
    /// published or becomes a tombstone, so from then on it finds nothing.
    async fn get_share_by_upload_token(&self, token: &UploadToken) -> MetaResult<Option<Share>>;
    /// Counts an upload attempt (shown to the owner).
    async fn count_upload_attempt(&self, id: &ShareId) -> MetaResult<()>;
    /// Counts a link preview or landing-page view (shown to the owner).
    async fn count_preview(&self, id: &ShareId) -> MetaResult<()>;
    /// Publishes a pending share with the blob of a complete upload, in one conditional write:
    /// only a share still `pending` whose upload window was open when the upload started
    /// (`upload_expires_at > started_at`) is published; `published_at` becomes `now`. `size`
    /// and `sha256` are what was actually received.
    async fn publish_share(
        &self,
        id: &ShareId,
        upload: &CompletedUpload,
        now: Instant,
    ) -> MetaResult<PublishOutcome>;
    /// The claim: one conditional write that decrements `downloads_left` of a `ready`,
    /// unexpired share with downloads left, and extends its lease to at least `lease_until`.
    /// Returns the share after the claim, or None if nothing was claimed.
    async fn claim_share(
        &self,
        id: &ShareId,
        now: Instant,
        lease_until: Instant,
    ) -> MetaResult<Option<Share>>;
    /// [`Self::claim_share`] of a share that is not encrypted end to end; an encrypted one
    /// is left as it was (None). Lets a download tool's claim be one write instead of a read
    /// (is it encrypted?) and then a write.
    async fn claim_plain_share(
        &self,
        id: &ShareId,
        now: Instant,
        lease_until: Instant,
    ) -> MetaResult<Option<Share>>;
    /// Revokes a pending or ready share owned by `owner`. False if there was nothing to revoke.
    async fn revoke_share(&self, id: &ShareId, owner: &KeyId) -> MetaResult<bool>;

    /// The owner's shares, newest first (by `created_at`, then id), at most `limit`, starting
    /// after the share `(created_at, id)` of the previous page. Uploads to a request that never
    /// completed are not listed: they are attempts, not shares.
    async fn list_shares(
        &self,
        owner: &KeyId,
        after: Option<(Instant, &ShareId)>,
        limit: u32,
    ) -> MetaResult<Vec<Share>>;

    // ---- upload requests --------------------------------------------------------------------

    async fn insert_request(&self, request: &UploadRequest) -> MetaResult<()>;
    async fn get_request(&self, id: &RequestId) -> MetaResult<Option<UploadRequest>>;
    /// Requests of one owner, newest first.
    async fn list_requests(&self, owner: &KeyId) -> MetaResult<Vec<UploadRequest>>;
    /// In one transaction: marks the request fulfilled by `share` (only if it still has no
    /// share and was open when the upload started, `expires_at > started_at`) and inserts the
    /// (ready) share. `fulfilled_at` is the share's `published_at`.
    async fn fulfil_request(
        &self,
        id: &RequestId,
        share: &Share,
        started_at: Instant,
    ) -> MetaResult<FulfilOutcome>;

    /// Completes one session of an upload request: in one transaction, marks the request
    /// fulfilled by `share` (`fulfilled_at = now`) and publishes that pending session share
    /// with the blob of `upload`, as [`publish_share`](Self::publish_share) does (session and
    /// token cleared, `published_at = now`), giving it its final `expires_at`. Both happen or
    /// neither: the request must still have no share and have been open when the upload
    /// started (its `expires_at > upload.started_at`), and the share must be a session of
    /// this request, still `pending`, whose own upload window was open then too. Each is a
    /// conditional write, the request's first, so of racing sessions of one request (on any
    /// number of instances) exactly one is `Fulfilled`. The others get `SlotUsed`, as does a
    /// share that left `pending` (revoked, reaped); `Expired` when a window had closed before
    /// the upload started; `NotFound` for an unknown request or a share that is not one of
    /// its sessions.
    async fn fulfil_request_with(
        &self,
        request: &RequestId,
        share: &ShareId,
        upload: &CompletedUpload,
        expires_at: Instant,
        now: Instant,
    ) -> MetaResult<FulfilOutcome>;
    /// Sessions of the request that may still complete: its `pending` shares whose upload
    /// window is open at `now` (`upload_expires_at > now`).
    async fn count_open_sessions(&self, request: &RequestId, now: Instant) -> MetaResult<u32>;
    /// What `owner` holds, for its quotas ([`once_domain::Quotas`]): shares created at or
    /// after `since`, and the declared bytes of its shares still waiting for their upload or
    /// still downloadable at `now`.
    async fn key_usage(
        &self,
        owner: &KeyId,
        since: Instant,
        now: Instant,
    ) -> MetaResult<once_domain::KeyUsage>;
    /// Counts an upload refused because the request was already fulfilled (shown to the
    /// owner) and returns the new count; 0 if there is no such request (nothing was counted).
    async fn count_refused_upload(&self, request: &RequestId) -> MetaResult<u32>;
    /// How many uploads to the request were refused so far; 0 if there is no such request.
    async fn refused_uploads(&self, request: &RequestId) -> MetaResult<u32>;

    // ---- audit log ------------------------------------------------------------------------

    /// Appends one event to the audit log.
    async fn record_audit(&self, event: &AuditEvent) -> MetaResult<()>;
    /// Appends `events` in the order given, in as few statements as it can (one commit for
    /// many events is what lets the server's audit writer keep up under load).
    async fn record_audits(&self, events: &[AuditEvent]) -> MetaResult<()>;
    /// Events matching `filter`, in the order they were written, at most `filter.limit`.
    async fn audit_events(&self, filter: &AuditFilter) -> MetaResult<Vec<AuditRecord>>;
    /// Deletes audit events from before `before`; returns how many.
    async fn purge_audit(&self, before: Instant) -> MetaResult<u64>;

    // ---- reaper -----------------------------------------------------------------------------

    /// Takes up to `limit` shares whose bytes may be deleted now, so that no other reaper takes
    /// them until `hold_until`: revoked; ready but used up with the lease over; expired with no
    /// active lease; pending with `upload_expires_at <= abandoned_before` (the caller leaves a
    /// grace period for uploads that started in time). Tombstones (`gone`) are never returned.
    /// One conditional write: two reapers racing never take the same share.
    async fn take_reap_batch(
        &self,
        now: Instant,
        abandoned_before: Instant,
        hold_until: Instant,
        limit: u32,
    ) -> MetaResult<Vec<ReapCandidate>>;
    /// After the blob is deleted: turns the share into a tombstone (state `gone`, no blob key),
    /// only if it still has `blob_key`. True if this call did it (so exactly one of several
    /// racing reapers reports the share).
    async fn mark_gone(&self, id: &ShareId, blob_key: Option<&BlobKey>) -> MetaResult<bool>;
    /// True if any share references this blob key, pending ones included (the orphan sweep
    /// asks before deleting).
    async fn blob_referenced(&self, blob_key: &BlobKey) -> MetaResult<bool>;
    /// Deletes tombstones and fulfilled/expired requests older than `before`, and signature
    /// records past their `keep_until`. Returns the number of rows removed.
    async fn purge(&self, now: Instant, before: Instant) -> MetaResult<u64>;
}
