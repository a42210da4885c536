//! The share service: the rules of `once` applied to the two stores. HTTP handlers call into it
//! and only translate; every decision that must be atomic is delegated to one conditional write
//! in the [`MetaStore`].

use std::sync::Arc;
use std::time::Duration;

use once_blob::{BlobError, BlobStore, ByteStream, PresignedPart};
use once_domain::{
    DomainError, Instant, KeyId, RequestPolicy, SecretSealer, Sha256Digest, Share, SharePolicy,
    UrlSigner,
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

mod auth;
mod requests;
mod shares;
