//! The S3-compatible store. Clients move the bytes themselves through presigned URLs (signed
//! with rusty-s3, never by hand): a single `PUT` signed for the exact `Content-Length`, content
//! type, checksum and `If-None-Match: *` (so the bucket refuses a second upload), or the parts
//! of a multipart upload, each signed for its exact length. Downloads are presigned `GET`s that
//! carry the `Content-Disposition`. The server only talks to the bucket for small control calls,
//! plus the uploads that arrive through it (`PUT /api/v1/files`, upload requests), which it
//! streams in parts of bounded size.
//!
//! "First upload wins" needs the bucket's help, because a presigned `PUT` can be replayed until
//! it expires. Either the bucket refuses a second `PUT` under `If-None-Match: *` (conditional
//! writes), or it keeps every version of an object and the server records and serves only the
//! first one (versioning). [`WriteGuard`] says which; `connect` checks it before serving.
//!
//! `calls` signs and sends the server's own requests, `write_guard` settles and applies the
//! guard, `multipart` holds multipart uploads and uploads streamed through the server, `xml`
//! the documents S3 answers with, and `store` the [`BlobStore`](crate::BlobStore) itself.

mod calls;
mod multipart;
mod store;
mod write_guard;
#[doc(hidden)]
pub mod xml;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use once_domain::{BlobKey, Instant, Sha256Digest};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::BlobResult;
use crate::budget::SpaceBudget;
use calls::{SHORT_CALL, call_unless_missing, storage_error};
pub use multipart::MAX_PART_SIZE;
pub use write_guard::WriteGuard;

/// Lifetime of the URLs the server signs for its own calls.
const CONTROL_URL_LIFETIME: Duration = Duration::from_secs(300);
/// Memory that parts buffered for uploads through the server may take together, unless
/// [`S3BlobStore::with_max_buffered_bytes`] says otherwise: 32 uploads of default-sized parts.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: url::Url,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    /// Prepended to every object key, e.g. `once/`.
    pub prefix: String,
    /// How a second upload to one ticket is kept from replacing the first.
    pub write_guard: WriteGuard,
}

pub struct S3BlobStore {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    prefix: String,
    /// Versioning mode (see [`WriteGuard`]): uploads are not conditional, the first version
    /// is recorded and served.
    versioning: bool,
    /// The bucket keeps versions (in either mode): a plain DELETE would only hide the bytes
    /// behind a delete marker, so deletes remove every version.
    bucket_versioned: bool,
    /// Memory held by parts of uploads that stream through the server, all uploads together.
    buffers: Arc<SpaceBudget>,
}

/// Signs `action` so that it stays valid until at least `expires_at`. SigV4 dates are whole
/// seconds and `X-Amz-Expires` counts from that date, so both are taken from the current
/// second and the lifetime is rounded up: signing `now` with the lifetime left, rounded down,
/// would let a URL die up to two seconds before the expiry its ticket announces.
fn presign<'a, A: S3Action<'a>>(action: &A, expires_at: Instant) -> url::Url {
    let (signed_at, lifetime) = validity(jiff::Timestamp::now().as_second(), expires_at);
    let signed_at =
        jiff::Timestamp::from_second(signed_at).unwrap_or_else(|_| jiff::Timestamp::now());
    action.sign_with_time(lifetime, &signed_at)
}

/// The signing second and the lifetime from it that covers `expires_at` (S3 accepts 1 s to
/// 7 days).
fn validity(now_second: i64, expires_at: Instant) -> (i64, Duration) {
    let mut until = expires_at.unix_timestamp();
    if expires_at.nanosecond() > 0 {
        until += 1;
    }
    let seconds = (until - now_second).clamp(1, 7 * 86400);
    (now_second, Duration::from_secs(seconds as u64))
}

/// Whether an S3 listing's timestamp (RFC 3339) is before `before`. A missing or unreadable
/// one counts as recent: a listing is never reason enough to delete something.
fn stamped_before(timestamp: Option<&str>, before: Instant) -> bool {
    timestamp
        .and_then(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|stamp| stamp < before)
}

impl S3BlobStore {
    /// Connects, checks the bucket answers and settles the [`WriteGuard`]: the property
    /// "first upload wins" needs, so the store refuses to start without one.
    pub async fn connect(settings: S3Settings) -> BlobResult<Self> {
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            settings.endpoint.clone(),
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|error| storage_error(format!("invalid S3 endpoint or bucket: {error:?}")))?;
        let credentials = match &settings.session_token {
            Some(token) => {
                Credentials::new_with_token(&settings.access_key, &settings.secret_key, token)
            }
            None => Credentials::new(&settings.access_key, &settings.secret_key),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(storage_error)?;
        let mut store = Self {
            bucket,
            credentials,
            http,
            prefix: settings.prefix.clone(),
            versioning: false,
            bucket_versioned: false,
            buffers: SpaceBudget::new(DEFAULT_MAX_BUFFERED_BYTES),
        };
        crate::BlobStore::ping(&store).await?;
        store
            .settle_write_guard(settings.write_guard, &settings.bucket)
            .await?;
        Ok(store)
    }

    /// Bounds the memory that parts buffered for uploads through the server take together;
    /// an upload that would pass it is refused with
    /// [`BlobError::PendingSpaceExhausted`](crate::BlobError::PendingSpaceExhausted).
    pub fn with_max_buffered_bytes(mut self, bytes: u64) -> Self {
        self.buffers = SpaceBudget::new(bytes);
        self
    }

    fn object(&self, key: &BlobKey) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Size, ETag and (where the store keeps one) SHA-256 of the object, or None when it is
    /// absent.
    async fn head(&self, key: &BlobKey, version: Option<&str>) -> BlobResult<Option<ObjectHead>> {
        let object = self.object(key);
        let mut action = self.bucket.head_object(Some(&self.credentials), &object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        let request = self.signed(
            &mut action,
            &[("x-amz-checksum-mode", "ENABLED".to_owned())],
        );
        let Some(response) = call_unless_missing(request, SHORT_CALL, "HEAD").await? else {
            return Ok(None);
        };
        let size = response
            .headers()
            .get("content-length")
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .ok_or_else(|| storage_error("S3 HEAD answered without Content-Length"))?;
        let sha256 = response
            .headers()
            .get("x-amz-checksum-sha256")
            .and_then(|value| STANDARD.decode(value.as_bytes()).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map(Sha256Digest);
        let etag = response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .map(|etag| etag.trim_matches('"').to_owned());
        Ok(Some(ObjectHead { size, sha256, etag }))
    }
}

/// What a `HEAD` of an object tells.
pub(crate) struct ObjectHead {
    pub(crate) size: u64,
    pub(crate) sha256: Option<Sha256Digest>,
    pub(crate) etag: Option<String>,
}

/// The ETag S3 gives an object assembled from parts with these (MD5) ETags: the MD5 of their
/// concatenated binary digests, then `-` and the number of parts. None when a part's tag is
/// not a plain MD5 (encrypted buckets, stores with tags of their own), so nothing can be said.
pub(crate) fn multipart_etag(part_etags: &[&str]) -> Option<String> {
    use md5::Digest;
    let mut hasher = md5::Md5::new();
    for etag in part_etags {
        let etag = etag.trim().trim_matches('"');
        if etag.len() != 32 {
            return None;
        }
        hasher.update(hex::decode(etag).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(hasher.finalize()),
        part_etags.len()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_presigned_url_lives_at_least_until_the_expiry_it_was_asked_for() {
        let at = |second: i64, nanos: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(second) * 1_000_000_000 + i128::from(nanos),
            )
            .unwrap()
        };
        // Asked at 100.9 s for 101.9 s: signed at 100, valid for 2 s, so until 102 > 101.9.
        assert_eq!(
            super::validity(100, at(101, 900_000_000)),
            (100, std::time::Duration::from_secs(2))
        );
        assert_eq!(
            super::validity(100, at(160, 0)),
            (100, std::time::Duration::from_secs(60))
        );
        // Already past, or far ahead: S3's own bounds.
        assert_eq!(super::validity(100, at(50, 0)).1.as_secs(), 1);
        assert_eq!(
            super::validity(100, at(100 + 30 * 86400, 0)).1.as_secs(),
            7 * 86400
        );
    }

    #[test]
    fn the_etag_of_an_assembled_object_follows_from_its_parts() {
        // MD5("a") and MD5("b"); the object's tag is MD5 of both digests, then "-2".
        let parts = [
            "0cc175b9c0f1b6a831c399e269772661",
            "\"92eb5ffee6ae2fec3ad71c777531578f\"",
        ];
        let mut digests = Vec::new();
        for part in parts {
            digests.extend(hex::decode(part.trim_matches('"')).unwrap());
        }
        let expected = {
            use md5::Digest;
            format!("{}-2", hex::encode(md5::Md5::digest(&digests)))
        };
        assert_eq!(super::multipart_etag(&parts), Some(expected));
        assert_eq!(super::multipart_etag(&["not-md5"]), None);
    }
}
