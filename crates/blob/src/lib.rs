//! The byte-storage seam. A [`BlobStore`] writes a blob atomically (nothing is visible until
//! every byte arrived and matched what was declared), reads it back by range and deletes it
//! idempotently. Stores that can hand out their own signed URLs (S3) say so through
//! [`BlobStore::presign_upload`] / [`BlobStore::presign_download`]; the embedded file-system
//! store does not, and the server then issues its own signed `/b/…` URLs.

mod budget;
pub mod conformance;
pub mod fs;
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;

use std::ops::RangeInclusive;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use once_domain::{BlobKey, Instant, Sha256Digest};

/// A body on its way in or out, in chunks; never a whole file in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body was longer than allowed; the write was abandoned.
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The body ended before the declared size.
    #[error("the body has {actual} bytes, {expected} were declared")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the body does not match the declared sha256")]
    ChecksumMismatch,
    /// The client's stream failed (disconnect, reset): nothing was stored.
    #[error("the upload was interrupted: {0}")]
    Interrupted(std::io::Error),
    #[error("no such blob")]
    NotFound,
    /// The parts reported for a multipart upload do not match what the storage holds.
    #[error("the reported parts do not match the upload: {0}")]
    InvalidParts(String),
    /// A part that is already stored with other bytes; a stored part is never replaced.
    #[error("part {0} already holds other bytes")]
    PartConflict(u16),
    /// The store cannot do this (say, take parts through the server).
    #[error("the blob store does not support {0}")]
    Unsupported(&'static str),
    #[error("the requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The storage has no room left (ENOSPC, EDQUOT, or the free space the store keeps for
    /// the metadata database would be used up); nothing was stored.
    #[error("the storage is full")]
    StorageFull,
    /// Unfinished uploads together already hold all the space (disk or memory) they may; this
    /// one was refused and nothing was stored. Retrying later can succeed.
    #[error("unfinished uploads already hold the {limit} bytes allowed them")]
    PendingSpaceExhausted { limit: u64 },
    /// The store itself failed.
    #[error("blob store error: {0}")]
    Storage(std::io::Error),
}

impl From<std::io::Error> for BlobError {
    /// A full disk or quota is its own error wherever it happens, never a generic I/O error.
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                BlobError::StorageFull
            }
            _ => BlobError::Storage(error),
        }
    }
}

pub type BlobResult<T> = Result<T, BlobError>;

/// What a write must satisfy; checked while streaming, before anything becomes visible.
#[derive(Debug, Clone, Copy)]
pub struct PutLimits {
    /// The exact size promised, if one was.
    pub expected_size: Option<u64>,
    /// Never store more than this.
    pub max_size: u64,
    pub sha256: Option<Sha256Digest>,
}

/// What was actually stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A (possibly partial) read.
pub struct BlobRead {
    /// Size of the whole blob.
    pub total_size: u64,
    /// The bytes served, `None` for the whole blob.
    pub range: Option<RangeInclusive<u64>>,
    pub body: ByteStream,
}

/// An upload the client sends straight to the storage in one request, bypassing the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    pub method: String,
    pub url: String,
    /// Exactly these headers must be sent (they are signed).
    pub headers: Vec<(String, String)>,
    pub expires_at: Instant,
}

pub use once_domain::parts::{ReportedPart, StoredPart};

/// What a direct upload left in the storage, as verified by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedBlob {
    pub size: u64,
    /// The storage's own SHA-256 of the object, where it keeps one.
    pub sha256: Option<Sha256Digest>,
    /// The object version to serve, on a store that keeps versions instead of refusing
    /// overwrites; reads and downloads of this blob must name it.
    pub version: Option<String>,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> BlobResult<()>;

    /// Bytes that unfinished uploads through this store hold now (disk space reserved by
    /// temporary files, or memory of buffered parts), for a metric.
    fn pending_bytes(&self) -> u64 {
        0
    }

    /// Streams `body` into the blob `key`. Atomic: on any error (limits, checksum, interrupted
    /// body, crash) no blob named `key` exists afterwards.
    async fn put(&self, key: &BlobKey, body: ByteStream, limits: PutLimits)
    -> BlobResult<BlobInfo>;

    /// Reads the blob (the given `version` of it, where the store keeps versions), or the
    /// inclusive byte `range` of it.
    async fn open(
        &self,
        key: &BlobKey,
        version: Option<&str>,
        range: Option<RangeInclusive<u64>>,
    ) -> BlobResult<BlobRead>;

    /// Size of the blob, or None when it does not exist.
    async fn size(&self, key: &BlobKey) -> BlobResult<Option<u64>>;

    /// Deletes the blob; deleting a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()>;

    /// Complete blobs last written before `before` (the reaper's orphan sweep asks the
    /// metadata store which of them are still referenced).
    async fn list_older_than(&self, before: Instant) -> BlobResult<Vec<BlobKey>>;

    /// Removes traces of uploads that stopped before `before` and never completed (temporary
    /// files, pending multipart uploads). Returns how many were removed.
    async fn remove_stale_uploads(&self, before: Instant) -> BlobResult<u64>;

    /// Unfinished multipart uploads started before `before`, as (key, upload id). The reaper
    /// aborts those no share records: uploads whose share was reaped, or that a server started
    /// and crashed before it wrote their ids down.
    async fn pending_uploads(&self, _before: Instant) -> BlobResult<Vec<(BlobKey, String)>> {
        Ok(Vec::new())
    }

    /// True when clients upload straight to the storage (then [`Self::presign_upload`] and
    /// [`Self::presign_part`] give the URLs and [`Self::complete_upload`] verifies the result);
    /// false when the bytes come through the server ([`Self::put`], [`Self::put_part`]).
    fn direct_uploads(&self) -> bool {
        false
    }

    /// Where browsers send bytes directly (`scheme://host[:port]`), when that is not this
    /// server: pages must allow it in their Content-Security-Policy, and the bucket's CORS
    /// rules must allow the server's pages.
    fn direct_origin(&self) -> Option<String> {
        None
    }

    /// A URL the client can upload the whole blob to in one request, if this store has its
    /// own. The URL binds the key, the exact size, the content type, the checksum (where given)
    /// and the expiry, and cannot overwrite an existing object.
    async fn presign_upload(
        &self,
        _key: &BlobKey,
        _size: u64,
        _content_type: &str,
        _sha256: Option<Sha256Digest>,
        _expires_at: Instant,
    ) -> BlobResult<Option<DirectUpload>> {
        Ok(None)
    }

    /// Starts a multipart upload of `key` and returns its id. Nothing is visible under `key`
    /// until [`Self::complete_upload`] assembles the parts.
    async fn start_multipart(&self, key: &BlobKey, content_type: &str) -> BlobResult<String>;

    /// A URL for part `number` of a multipart upload, signed for exactly `length` bytes, where
    /// the store signs its own URLs (S3); None where the server takes the part itself.
    fn presign_part(
        &self,
        _key: &BlobKey,
        _upload_id: &str,
        _number: u16,
        _length: u64,
        _expires_at: Instant,
    ) -> Option<String> {
        None
    }

    /// Stores part `number` of a multipart upload from a body of exactly `length` bytes that
    /// came through the server, durably before it returns. Sending a stored part again with
    /// the same bytes is a harmless retry; with other bytes it is refused
    /// ([`BlobError::PartConflict`]), so the first bytes of a part are the only ones.
    async fn put_part(
        &self,
        _key: &BlobKey,
        _upload_id: &str,
        _number: u16,
        _length: u64,
        _body: ByteStream,
    ) -> BlobResult<StoredPart> {
        Err(BlobError::Unsupported("parts through the server"))
    }

    /// The parts a multipart upload holds now, by number. [`BlobError::NotFound`] when the
    /// upload does not exist (completed, aborted or never started).
    async fn list_parts(&self, key: &BlobKey, upload_id: &str) -> BlobResult<Vec<StoredPart>>;

    /// Checks what a direct single upload stored, or assembles a multipart upload from the
    /// reported parts (in that order; the caller has checked them against
    /// [`Self::list_parts`]). Retrying after a success that was not recorded finds the blob
    /// assembled and reports it again.
    async fn complete_upload(
        &self,
        key: &BlobKey,
        upload_id: Option<&str>,
        parts: &[ReportedPart],
    ) -> BlobResult<CompletedBlob>;

    /// Drops an unfinished multipart upload and its parts; a missing one is not an error.
    async fn abort_upload(&self, key: &BlobKey, upload_id: &str) -> BlobResult<()>;

    /// A URL the recipient can download from directly, if this store supports that.
    fn presign_download(
        &self,
        _key: &BlobKey,
        _version: Option<&str>,
        _content_disposition: &str,
        _content_type: &str,
        _expires_at: Instant,
    ) -> Option<String> {
        None
    }
}
