//! The S3-compatible store. Clients move the bytes themselves through presigned URLs (signed
//! with rusty-s3, never by hand): a single `PUT` signed for the exact `Content-Length`, content
//! type, checksum and `If-None-Match: *` (so the bucket refuses a second upload), or a multipart
//! upload whose parts are each signed for their exact length. Downloads are presigned `GET`s that
//! carry the `Content-Disposition`. The server only talks to the bucket for small control calls,
//! plus the uploads that arrive through it (`PUT /api/v1/files`, upload requests), which it
//! streams in parts of bounded size.
//!
//! "First upload wins" needs the bucket's help, because a presigned `PUT` can be replayed until
//! it expires. Either the bucket refuses a second `PUT` under `If-None-Match: *` (conditional
//! writes), or it keeps every version of an object and the server records and serves only the
//! first one (versioning). [`WriteGuard`] says which; `connect` checks it before serving.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use once_domain::{BlobKey, Instant, Sha256Digest};
use reqwest::StatusCode;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, Method, S3Action, UrlStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::budget::{Reservation, SpaceBudget};
use crate::{
    BlobError, BlobInfo, BlobRead, BlobResult, BlobStore, ByteStream, CompletedBlob, DirectUpload,
    PartReceipt, PresignedPart, PutLimits,
};

/// Lifetime of the URLs the server signs for its own calls.
const CONTROL_URL_LIFETIME: Duration = Duration::from_secs(300);
/// Parts of uploads that stream through the server; also the most memory one such upload holds
/// (more only for uploads so large that 10,000 parts of this size would not hold them).
const SERVER_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's limit on the parts of one upload.
const S3_MAX_PARTS: u64 = 10_000;
/// S3 allows at most 10,000 parts; staying far below keeps tickets small.
const MAX_TICKET_PARTS: u64 = 1000;
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part, and its largest single `PUT`.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
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
    /// Direct uploads larger than this use multipart.
    pub multipart_threshold: u64,
    /// How a second upload to one ticket is kept from replacing the first.
    pub write_guard: WriteGuard,
}

/// How the bucket keeps a ticket's first upload from being replaced by a replayed URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteGuard {
    /// Probe at start-up: conditional writes when the bucket refuses an overwrite, else
    /// versioning when it is enabled on the bucket, else refuse to start.
    #[default]
    Auto,
    /// The bucket refuses a second `PUT` under `If-None-Match: *`; trusted without probing.
    ConditionalWrites,
    /// The bucket keeps every version; the server records the first complete version of each
    /// object and serves only that one. Checked at start-up.
    Versioning,
}

/// One entry of `ListObjectVersions`, in the bucket's order (per key, newest first).
#[derive(Debug, Clone)]
struct ObjectVersion {
    version_id: String,
    delete_marker: bool,
}

#[derive(Debug, Deserialize)]
struct ListVersionsResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextVersionIdMarker")]
    next_version_id_marker: Option<String>,
    #[serde(rename = "$value", default)]
    entries: Vec<ListVersionsEntry>,
}

#[derive(Debug, Deserialize)]
enum ListVersionsEntry {
    Version(VersionEntry),
    DeleteMarker(VersionEntry),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct VersionEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId")]
    version_id: String,
}

/// `ListParts`, parsed leniently: some compatible stores list parts without their ETags.
#[derive(Debug, Deserialize)]
struct ListPartsResult {
    #[serde(rename = "Part", default)]
    parts: Vec<ListedPart>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextPartNumberMarker")]
    next_part_number_marker: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct ListedPart {
    #[serde(rename = "PartNumber")]
    number: u16,
    #[serde(rename = "ETag")]
    etag: Option<String>,
}

/// `ListMultipartUploads`.
#[derive(Debug, Deserialize)]
struct ListMultipartUploadsResult {
    #[serde(rename = "Upload", default)]
    uploads: Vec<PendingUpload>,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PendingUpload {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated")]
    initiated: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersioningConfiguration {
    #[serde(rename = "Status")]
    status: Option<String>,
}

pub struct S3BlobStore {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    prefix: String,
    multipart_threshold: u64,
    /// Versioning mode (see [`WriteGuard`]): uploads are not conditional, the first version
    /// is recorded and served.
    versioning: bool,
    /// The bucket keeps versions (in either mode): a plain DELETE would only hide the bytes
    /// behind a delete marker, so deletes remove every version.
    bucket_versioned: bool,
    /// Memory held by parts of uploads that stream through the server, all uploads together.
    buffers: Arc<SpaceBudget>,
}

fn storage_error(what: impl std::fmt::Display) -> BlobError {
    BlobError::Storage(std::io::Error::other(what.to_string()))
}

fn seconds_until(expires_at: Instant) -> Duration {
    let now = time::OffsetDateTime::now_utc();
    // S3 accepts 1 s to 7 days.
    let seconds = (expires_at - now).whole_seconds().clamp(1, 7 * 86400);
    Duration::from_secs(seconds as u64)
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

/// The `<Code>` of an S3 error document, or the document's start when it has none.
fn s3_error_code(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Turns a non-success answer into an error that says what S3 said.
async fn check(response: reqwest::Response, what: &str) -> BlobResult<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    Err(storage_error(format!(
        "S3 {what} failed with {status}: {body}"
    )))
}

/// Sends a control call to the bucket with a deadline.
async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> BlobResult<reqwest::Response> {
    request.timeout(timeout).send().await.map_err(storage_error)
}

/// Sends a control call and insists on success.
async fn call(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<reqwest::Response> {
    check(send(request, timeout).await?, what).await
}

/// Like [`call`], but "no such object or upload" (404) is `None`: deleting or aborting what is
/// already gone is not an error.
async fn call_unless_missing(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<Option<reqwest::Response>> {
    let response = send(request, timeout).await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    check(response, what).await.map(Some)
}

/// [`call`], then the answer's body as text (XML listings and results).
async fn call_text(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    what: &str,
) -> BlobResult<String> {
    call(request, timeout, what)
        .await?
        .text()
        .await
        .map_err(storage_error)
}

const SHORT_CALL: Duration = Duration::from_secs(30);
const LISTING_CALL: Duration = Duration::from_secs(60);
/// Calls that carry up to a part of bytes, or make the bucket assemble an object.
const LONG_CALL: Duration = Duration::from_secs(300);

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
            multipart_threshold: settings
                .multipart_threshold
                .clamp(MIN_PART_SIZE, MAX_PART_SIZE),
            versioning: false,
            bucket_versioned: false,
            buffers: SpaceBudget::new(DEFAULT_MAX_BUFFERED_BYTES),
        };
        store.ping().await?;
        let status = store.versioning_status().await?;
        let versioning_enabled = status.as_deref() == Some("Enabled");
        // A suspended bucket still holds old versions: deletes must remove them too.
        store.bucket_versioned = status.is_some();
        let versioning = match settings.write_guard {
            WriteGuard::ConditionalWrites => false,
            WriteGuard::Versioning => {
                if !versioning_enabled {
                    return Err(storage_error(format!(
                        "ONCE_S3_WRITE_GUARD=versioning, but versioning is not enabled on bucket \
                         {:?}; enable it (PutBucketVersioning Status=Enabled) or use a store \
                         that honours If-None-Match",
                        settings.bucket
                    )));
                }
                true
            }
            WriteGuard::Auto => {
                if store.refuses_overwrites().await? {
                    false
                } else if versioning_enabled {
                    true
                } else {
                    return Err(storage_error(format!(
                        "bucket {:?} accepted a second PUT with If-None-Match: * and has no \
                         versioning, so a replayed upload URL could replace a file after it \
                         was published. Use a store that refuses overwrites (AWS S3, MinIO, \
                         R2, Ceph RGW, …) or enable versioning on the bucket \
                         (ONCE_S3_WRITE_GUARD=versioning).",
                        settings.bucket
                    )));
                }
            }
        };
        store.versioning = versioning;
        Ok(store)
    }

    /// Bounds the memory that parts buffered for uploads through the server take together;
    /// an upload that would pass it is refused with [`BlobError::PendingSpaceExhausted`].
    pub fn with_max_buffered_bytes(mut self, bytes: u64) -> Self {
        self.buffers = SpaceBudget::new(bytes);
        self
    }

    /// The guard in force after start-up checks: never `Auto`.
    pub fn write_guard(&self) -> WriteGuard {
        if self.versioning {
            WriteGuard::Versioning
        } else {
            WriteGuard::ConditionalWrites
        }
    }

    /// Signs a request on the bucket itself with sub-resource query parameters rusty-s3 has no
    /// action for (`?versioning`, `?versions`).
    fn sign_bucket_request(&self, method: Method, query: &[(&str, &str)]) -> url::Url {
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            CONTROL_URL_LIFETIME.as_secs(),
            query.iter().copied(),
            std::iter::empty(),
        )
    }

    /// The bucket's versioning status: `Enabled`, `Suspended` (versions written before are
    /// kept), or None for a bucket that never had versioning.
    async fn versioning_status(&self) -> BlobResult<Option<String>> {
        let url = self.sign_bucket_request(Method::Get, &[("versioning", "")]);
        let response = send(self.http.get(url), SHORT_CALL).await?;
        // Stores without versioning may not know the call at all.
        if response.status() == StatusCode::NOT_IMPLEMENTED {
            return Ok(None);
        }
        let text = check(response, "GetBucketVersioning")
            .await?
            .text()
            .await
            .map_err(storage_error)?;
        let parsed: VersioningConfiguration =
            quick_xml::de::from_str(&text).map_err(storage_error)?;
        Ok(parsed.status)
    }

    /// Every version and delete marker of exactly `object`, newest first.
    async fn list_versions(&self, object: &str) -> BlobResult<Vec<ObjectVersion>> {
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![("versions", ""), ("prefix", object)];
            if let Some((key, version)) = &markers {
                query.push(("key-marker", key));
                query.push(("version-id-marker", version));
            }
            let url = self.sign_bucket_request(Method::Get, &query);
            let text = call_text(self.http.get(url), LISTING_CALL, "ListObjectVersions").await?;
            let listed: ListVersionsResult =
                quick_xml::de::from_str(&text).map_err(storage_error)?;
            for entry in listed.entries {
                let (entry, delete_marker) = match entry {
                    ListVersionsEntry::Version(entry) => (entry, false),
                    ListVersionsEntry::DeleteMarker(entry) => (entry, true),
                    ListVersionsEntry::Other => continue,
                };
                // The prefix also matches longer keys; only this object counts.
                if entry.key == object {
                    found.push(ObjectVersion {
                        version_id: entry.version_id,
                        delete_marker,
                    });
                }
            }
            match (
                listed.is_truncated,
                listed.next_key_marker,
                listed.next_version_id_marker,
            ) {
                (true, Some(key), Some(version)) => markers = Some((key, version)),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The first complete version of `object`: the oldest one that is not a delete marker.
    async fn first_version(&self, object: &str) -> BlobResult<Option<String>> {
        Ok(self
            .list_versions(object)
            .await?
            .into_iter()
            .rev()
            .find(|version| !version.delete_marker)
            .map(|version| version.version_id))
    }

    fn object(&self, key: &BlobKey) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Writes a probe object twice under `If-None-Match: *`: true when the second is refused.
    async fn refuses_overwrites(&self) -> BlobResult<bool> {
        let probe = format!(
            "{}.once-probe-{}",
            self.prefix,
            once_domain::ShareId::generate()
        );
        let put = || {
            let mut action = self.bucket.put_object(Some(&self.credentials), &probe);
            action.headers_mut().insert("if-none-match", "*");
            let request = self
                .http
                .put(action.sign(CONTROL_URL_LIFETIME))
                .header("if-none-match", "*")
                .header("content-length", "5")
                .body("probe");
            send(request, SHORT_CALL)
        };
        check(put().await?, "probe PUT").await?;
        let second = put().await?.status();
        // On a versioned bucket both writes left versions: this removes them all.
        let _ = self.remove_object(&probe).await;
        Ok(second == StatusCode::PRECONDITION_FAILED)
    }

    /// Deletes `object`: on a versioned bucket every version and delete marker of it (a plain
    /// DELETE would only hide the bytes behind a new marker).
    async fn remove_object(&self, object: &str) -> BlobResult<()> {
        if self.bucket_versioned {
            self.delete_every_version(object).await
        } else {
            self.delete_object(object, None).await
        }
    }

    /// Deletes every version and delete marker of `object`.
    async fn delete_every_version(&self, object: &str) -> BlobResult<()> {
        for version in self.list_versions(object).await? {
            self.delete_object(object, Some(&version.version_id))
                .await?;
        }
        Ok(())
    }

    async fn delete_object(&self, object: &str, version: Option<&str>) -> BlobResult<()> {
        let mut action = self.bucket.delete_object(Some(&self.credentials), object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        let request = self.http.delete(action.sign(CONTROL_URL_LIFETIME));
        call_unless_missing(request, SHORT_CALL, "DELETE")
            .await
            .map(|_| ())
    }

    async fn head(
        &self,
        key: &BlobKey,
        version: Option<&str>,
    ) -> BlobResult<Option<(u64, Option<Sha256Digest>)>> {
        let object = self.object(key);
        let mut action = self.bucket.head_object(Some(&self.credentials), &object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        action
            .headers_mut()
            .insert("x-amz-checksum-mode", "ENABLED");
        let request = self
            .http
            .head(action.sign(CONTROL_URL_LIFETIME))
            .header("x-amz-checksum-mode", "ENABLED");
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
        Ok(Some((size, sha256)))
    }

    fn part_size_for(&self, size: u64) -> u64 {
        self.multipart_threshold
            .max(size.div_ceil(MAX_TICKET_PARTS))
            .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
    }

    fn sign_part(
        &self,
        object: &str,
        upload_id: &str,
        number: u16,
        size: u64,
        lifetime: Duration,
    ) -> String {
        let length = size.to_string();
        let mut action =
            self.bucket
                .upload_part(Some(&self.credentials), object, number, upload_id);
        action.headers_mut().insert("content-length", length);
        action.sign(lifetime).to_string()
    }

    /// The parts of an upload of `size` bytes in `part_size` pieces, as (number, length).
    fn part_layout(size: u64, part_size: u64) -> impl Iterator<Item = (u16, u64)> {
        let count = size.div_ceil(part_size).max(1);
        (1..=count).map(move |n| (n as u16, part_size.min(size - (n - 1) * part_size)))
    }

    async fn create_multipart(
        &self,
        object: &str,
        content_type: Option<&str>,
    ) -> BlobResult<String> {
        let mut action = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), object);
        if let Some(content_type) = content_type {
            action
                .headers_mut()
                .insert("content-type", content_type.to_owned());
        }
        let mut request = self.http.post(action.sign(CONTROL_URL_LIFETIME));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let text = call_text(request, SHORT_CALL, "CreateMultipartUpload").await?;
        let parsed = CreateMultipartUpload::parse_response(&text).map_err(storage_error)?;
        Ok(parsed.upload_id().to_owned())
    }

    async fn complete_multipart(
        &self,
        object: &str,
        upload_id: &str,
        etags: &[String],
    ) -> BlobResult<()> {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            object,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(CONTROL_URL_LIFETIME);
        let body = action.body();
        let response = send(self.http.post(url).body(body), LONG_CALL).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(BlobError::NotFound);
        }
        if status == StatusCode::BAD_REQUEST {
            // InvalidPart, InvalidPartOrder, EntityTooSmall: the client reported parts that
            // are not what the storage holds.
            let text = response.text().await.unwrap_or_default();
            return Err(BlobError::InvalidParts(s3_error_code(&text)));
        }
        let text = check(response, "CompleteMultipartUpload")
            .await?
            .text()
            .await
            .map_err(storage_error)?;
        // S3 may answer 200 with an error document when completion fails late.
        if text.contains("<Error>") {
            return Err(storage_error(format!(
                "S3 CompleteMultipartUpload failed: {text}"
            )));
        }
        Ok(())
    }

    /// The parts the storage holds for an unfinished multipart upload.
    async fn uploaded_parts(&self, object: &str, upload_id: &str) -> BlobResult<Vec<ListedPart>> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = self
                .bucket
                .list_parts(Some(&self.credentials), object, upload_id);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let url = action.sign(CONTROL_URL_LIFETIME);
            let Some(response) =
                call_unless_missing(self.http.get(url), LISTING_CALL, "ListParts").await?
            else {
                return Err(BlobError::NotFound);
            };
            let text = response.text().await.map_err(storage_error)?;
            let listed: ListPartsResult = quick_xml::de::from_str(&text).map_err(storage_error)?;
            parts.extend(listed.parts);
            match listed.next_part_number_marker {
                Some(next) if listed.is_truncated => marker = Some(next),
                _ => break,
            }
        }
        Ok(parts)
    }

    async fn abort_multipart(&self, object: &str, upload_id: &str) -> BlobResult<()> {
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), object, upload_id)
            .sign(CONTROL_URL_LIFETIME);
        call_unless_missing(self.http.delete(url), SHORT_CALL, "AbortMultipartUpload")
            .await
            .map(|_| ())
    }

    async fn upload_part_bytes(
        &self,
        object: &str,
        upload_id: &str,
        number: u16,
        bytes: Bytes,
    ) -> BlobResult<String> {
        let url = self.sign_part(
            object,
            upload_id,
            number,
            bytes.len() as u64,
            CONTROL_URL_LIFETIME,
        );
        let request = self
            .http
            .put(url)
            .header("content-length", bytes.len())
            .body(bytes);
        let response = call(request, LONG_CALL, "UploadPart").await?;
        response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| storage_error("S3 UploadPart answered without an ETag"))
    }

    async fn put_single(&self, object: &str, bytes: Bytes) -> BlobResult<()> {
        let mut action = self.bucket.put_object(Some(&self.credentials), object);
        if !self.versioning {
            action.headers_mut().insert("if-none-match", "*");
        }
        let mut request = self.http.put(action.sign(CONTROL_URL_LIFETIME));
        if !self.versioning {
            request = request.header("if-none-match", "*");
        }
        let request = request.header("content-length", bytes.len()).body(bytes);
        call(request, LONG_CALL, "PUT").await.map(|_| ())
    }
}

/// Enforces the limits of a write while its bytes go by.
struct Verifier {
    limits: PutLimits,
    limit: u64,
    received: u64,
    hasher: Sha256,
}

impl Verifier {
    fn new(limits: PutLimits) -> Self {
        let limit = limits
            .expected_size
            .map_or(limits.max_size, |size| size.min(limits.max_size));
        Self {
            limits,
            limit,
            received: 0,
            hasher: Sha256::new(),
        }
    }

    fn take(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self) -> BlobResult<BlobInfo> {
        if let Some(expected) = self.limits.expected_size
            && self.received != expected
        {
            return Err(BlobError::SizeMismatch {
                expected,
                actual: self.received,
            });
        }
        let sha256 = Sha256Digest(self.hasher.finalize().into());
        if self
            .limits
            .sha256
            .is_some_and(|declared| declared != sha256)
        {
            return Err(BlobError::ChecksumMismatch);
        }
        Ok(BlobInfo {
            size: self.received,
            sha256,
        })
    }
}

/// The part size for an upload through the server of at most `limit` bytes.
fn server_part_size(limit: u64) -> usize {
    usize::try_from(limit.div_ceil(S3_MAX_PARTS))
        .unwrap_or(usize::MAX)
        .max(SERVER_PART_SIZE)
}

/// Reads the stream into `buffer` until it holds `part_size` bytes or the stream ends.
/// Returns false at the end of the stream.
/// The buffer's bytes are held in `reservation` before they are taken in.
async fn fill(
    body: &mut ByteStream,
    buffer: &mut BytesMut,
    part_size: usize,
    verifier: &mut Verifier,
    reservation: &mut Reservation,
) -> BlobResult<bool> {
    while buffer.len() < part_size {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(BlobError::Interrupted)?;
                verifier.take(&chunk)?;
                reservation.grow_to((buffer.len() + chunk.len()) as u64)?;
                buffer.extend_from_slice(&chunk);
            }
            None => return Ok(false),
        }
    }
    Ok(true)
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn ping(&self) -> BlobResult<()> {
        let url = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(CONTROL_URL_LIFETIME);
        call(self.http.head(url), Duration::from_secs(10), "HEAD bucket")
            .await
            .map(|_| ())
    }

    fn pending_bytes(&self) -> u64 {
        self.buffers.held()
    }

    /// Streams an upload that arrived through the server: one `PUT` when it fits in a part,
    /// otherwise a multipart upload of `SERVER_PART_SIZE` parts (larger when the upload may be
    /// too big for 10,000 of them). Everything is verified before
    /// the object is completed; on any failure the multipart upload is aborted.
    async fn put(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        let object = self.object(key);
        let mut verifier = Verifier::new(limits);
        let part_size = server_part_size(verifier.limit);
        // A declared size is held from the start (refused before any byte); an undeclared
        // one as the buffer grows. Either way one part's worth at most, plus a chunk.
        let declared = limits
            .expected_size
            .map_or(0, |_| verifier.limit.min(part_size as u64));
        let mut reservation = self.buffers.reserve(declared)?;
        let mut buffer = BytesMut::with_capacity(declared as usize);
        if !fill(
            &mut body,
            &mut buffer,
            part_size,
            &mut verifier,
            &mut reservation,
        )
        .await?
        {
            let info = verifier.finish()?;
            self.put_single(&object, buffer.freeze()).await?;
            return Ok(info);
        }
        let upload_id = self.create_multipart(&object, None).await?;
        let result: BlobResult<BlobInfo> = async {
            let mut etags = Vec::new();
            loop {
                let more = fill(
                    &mut body,
                    &mut buffer,
                    part_size,
                    &mut verifier,
                    &mut reservation,
                )
                .await?;
                if !buffer.is_empty() {
                    let number = u16::try_from(etags.len() + 1)
                        .map_err(|_| storage_error("too many parts"))?;
                    let part = buffer.split().freeze();
                    etags.push(
                        self.upload_part_bytes(&object, &upload_id, number, part)
                            .await?,
                    );
                }
                if !more {
                    break;
                }
            }
            let info = verifier.finish()?;
            self.complete_multipart(&object, &upload_id, &etags).await?;
            Ok(info)
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(&object, &upload_id).await;
        }
        result
    }

    async fn open(
        &self,
        key: &BlobKey,
        version: Option<&str>,
        range: Option<RangeInclusive<u64>>,
    ) -> BlobResult<BlobRead> {
        let (total_size, _) = self.head(key, version).await?.ok_or(BlobError::NotFound)?;
        if let Some(range) = &range
            && (range.start() > range.end() || *range.end() >= total_size)
        {
            return Err(BlobError::RangeNotSatisfiable { size: total_size });
        }
        let object = self.object(key);
        let mut action = self.bucket.get_object(Some(&self.credentials), &object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        let mut request = self.http.get(action.sign(CONTROL_URL_LIFETIME));
        if let Some(range) = &range {
            request = request.header("range", format!("bytes={}-{}", range.start(), range.end()));
        }
        let response = request.send().await.map_err(storage_error)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(BlobError::NotFound);
        }
        let response = check(response, "GET").await?;
        let body: ByteStream = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
        Ok(BlobRead {
            total_size,
            range,
            body,
        })
    }

    async fn size(&self, key: &BlobKey) -> BlobResult<Option<u64>> {
        Ok(self.head(key, None).await?.map(|(size, _)| size))
    }

    /// On a versioned bucket every version goes, including those a replayed URL left behind.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        self.remove_object(&self.object(key)).await
    }

    async fn list_older_than(&self, before: Instant) -> BlobResult<Vec<BlobKey>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action: ListObjectsV2<'_> =
                self.bucket.list_objects_v2(Some(&self.credentials));
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let url = action.sign(CONTROL_URL_LIFETIME);
            let text = call_text(self.http.get(url), LISTING_CALL, "ListObjectsV2").await?;
            let listed = ListObjectsV2::parse_response(&text).map_err(storage_error)?;
            for object in &listed.contents {
                let Some(name) = object.key.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                let Ok(key) = BlobKey::parse(name) else {
                    continue;
                };
                if stamped_before(object.last_modified.as_deref(), before) {
                    keys.push(key);
                }
            }
            match listed.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(keys)
    }

    /// Nothing of an unfinished upload is visible in the bucket before it completes; pending
    /// multipart uploads are found by [`BlobStore::pending_uploads`].
    async fn remove_stale_uploads(&self, _before: Instant) -> BlobResult<u64> {
        Ok(0)
    }

    async fn pending_uploads(&self, before: Instant) -> BlobResult<Vec<(BlobKey, String)>> {
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![("uploads", "")];
            // An empty `prefix=` is signed differently by some stores: leave it out.
            if !self.prefix.is_empty() {
                query.push(("prefix", self.prefix.as_str()));
            }
            if let Some((key, upload)) = &markers {
                query.push(("key-marker", key));
                query.push(("upload-id-marker", upload));
            }
            let url = self.sign_bucket_request(Method::Get, &query);
            let response = send(self.http.get(url), LISTING_CALL).await?;
            // Some stores (s3s-fs) cannot list uploads; the bucket's lifecycle rule remains.
            if response.status() == StatusCode::NOT_IMPLEMENTED {
                tracing::debug!("the store cannot list multipart uploads");
                return Ok(found);
            }
            let text = check(response, "ListMultipartUploads")
                .await?
                .text()
                .await
                .map_err(storage_error)?;
            let listed: ListMultipartUploadsResult =
                quick_xml::de::from_str(&text).map_err(storage_error)?;
            for upload in listed.uploads {
                let Some(key) = upload
                    .key
                    .strip_prefix(self.prefix.as_str())
                    .and_then(|name| BlobKey::parse(name).ok())
                else {
                    continue;
                };
                if stamped_before(upload.initiated.as_deref(), before) {
                    found.push((key, upload.upload_id));
                }
            }
            match (
                listed.is_truncated,
                listed.next_key_marker,
                listed.next_upload_id_marker,
            ) {
                (true, Some(key), Some(upload)) => markers = Some((key, upload)),
                _ => break,
            }
        }
        Ok(found)
    }

    fn direct_uploads(&self) -> bool {
        true
    }

    async fn presign_upload(
        &self,
        key: &BlobKey,
        size: u64,
        content_type: &str,
        sha256: Option<Sha256Digest>,
        expires_at: Instant,
    ) -> BlobResult<Option<DirectUpload>> {
        let object = self.object(key);
        let lifetime = seconds_until(expires_at);
        if size > self.multipart_threshold {
            let upload_id = self.create_multipart(&object, Some(content_type)).await?;
            let part_size = self.part_size_for(size);
            let parts = Self::part_layout(size, part_size)
                .map(|(number, length)| PresignedPart {
                    number,
                    url: self.sign_part(&object, &upload_id, number, length, lifetime),
                    size: length,
                })
                .collect();
            return Ok(Some(DirectUpload::Multipart {
                upload_id,
                part_size,
                parts,
                expires_at,
            }));
        }
        let mut headers = vec![
            ("content-length".to_owned(), size.to_string()),
            ("content-type".to_owned(), content_type.to_owned()),
        ];
        if !self.versioning {
            headers.push(("if-none-match".to_owned(), "*".to_owned()));
        }
        if let Some(digest) = sha256 {
            headers.push((
                "x-amz-checksum-sha256".to_owned(),
                STANDARD.encode(digest.0),
            ));
        }
        let mut action = self.bucket.put_object(Some(&self.credentials), &object);
        for (name, value) in &headers {
            action.headers_mut().insert(name.clone(), value.clone());
        }
        let url = action.sign(lifetime).to_string();
        Ok(Some(DirectUpload::Single {
            method: "PUT".into(),
            url,
            headers,
            expires_at,
        }))
    }

    async fn presign_parts(
        &self,
        key: &BlobKey,
        upload_id: &str,
        size: u64,
        numbers: &[u16],
        expires_at: Instant,
    ) -> BlobResult<Vec<PresignedPart>> {
        let object = self.object(key);
        let lifetime = seconds_until(expires_at);
        let layout: Vec<(u16, u64)> = Self::part_layout(size, self.part_size_for(size)).collect();
        numbers
            .iter()
            .map(|number| {
                let (_, length) = layout
                    .iter()
                    .find(|(n, _)| n == number)
                    .copied()
                    .ok_or(BlobError::NotFound)?;
                Ok(PresignedPart {
                    number: *number,
                    url: self.sign_part(&object, upload_id, *number, length, lifetime),
                    size: length,
                })
            })
            .collect()
    }

    async fn complete_upload(
        &self,
        key: &BlobKey,
        upload_id: Option<&str>,
        parts: &[PartReceipt],
    ) -> BlobResult<CompletedBlob> {
        // A multipart ticket has no URL that writes the object itself, so an object already
        // there means an earlier `complete` assembled it and its share was not published (say
        // the database was briefly away): check it again instead of failing the retry.
        let assembled_before = upload_id.is_some() && self.head(key, None).await?.is_some();
        if let Some(upload_id) = upload_id.filter(|_| !assembled_before) {
            let mut sorted = parts.to_vec();
            sorted.sort_by_key(|part| part.number);
            let in_order = sorted
                .iter()
                .enumerate()
                .all(|(index, part)| usize::from(part.number) == index + 1);
            if sorted.is_empty() || !in_order {
                return Err(BlobError::InvalidParts(
                    "the parts must be numbered 1..n without gaps".into(),
                ));
            }
            // Check the report against the storage's own list first: AWS refuses a missing
            // part or a wrong ETag with a clear error, but some compatible stores fail with
            // 500 or do not check ETags at all (where they list none, only presence is checked).
            let held = self.uploaded_parts(&self.object(key), upload_id).await?;
            let unquoted = |etag: &str| etag.trim_matches('"').to_owned();
            for part in &sorted {
                let listed = held.iter().find(|listed| listed.number == part.number);
                let refusal = match listed {
                    None => Some("was never uploaded"),
                    Some(ListedPart {
                        etag: Some(etag), ..
                    }) if unquoted(etag) != unquoted(&part.etag) => {
                        Some("has another ETag in the storage")
                    }
                    Some(_) => None,
                };
                if let Some(refusal) = refusal {
                    return Err(BlobError::InvalidParts(format!(
                        "part {} {refusal}",
                        part.number
                    )));
                }
            }
            let etags: Vec<String> = sorted.into_iter().map(|part| part.etag).collect();
            self.complete_multipart(&self.object(key), upload_id, &etags)
                .await?;
        }
        // In versioning mode a replayed PUT may have added versions: the oldest one is the
        // upload that completed first, and the only one that will ever be served.
        let version = if self.versioning {
            Some(
                self.first_version(&self.object(key))
                    .await?
                    .ok_or(BlobError::NotFound)?,
            )
        } else {
            None
        };
        let (size, sha256) = self
            .head(key, version.as_deref())
            .await?
            .ok_or(BlobError::NotFound)?;
        Ok(CompletedBlob {
            size,
            sha256,
            version,
        })
    }

    async fn abort_upload(&self, key: &BlobKey, upload_id: &str) -> BlobResult<()> {
        self.abort_multipart(&self.object(key), upload_id).await
    }

    fn presign_download(
        &self,
        key: &BlobKey,
        version: Option<&str>,
        content_disposition: &str,
        content_type: &str,
        expires_at: Instant,
    ) -> Option<String> {
        let object = self.object(key);
        let mut action = self.bucket.get_object(Some(&self.credentials), &object);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        action.query_mut().insert(
            "response-content-disposition",
            content_disposition.to_owned(),
        );
        action
            .query_mut()
            .insert("response-content-type", content_type.to_owned());
        action
            .query_mut()
            .insert("response-cache-control", "private, no-store");
        Some(action.sign(seconds_until(expires_at)).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_size_exactly() {
        let layout: Vec<_> = S3BlobStore::part_layout(25, 10).collect();
        assert_eq!(layout, vec![(1, 10), (2, 10), (3, 5)]);
        let layout: Vec<_> = S3BlobStore::part_layout(20, 10).collect();
        assert_eq!(layout, vec![(1, 10), (2, 10)]);
    }

    #[test]
    fn server_parts_grow_only_when_10000_would_not_hold_the_upload() {
        assert_eq!(server_part_size(10 << 30), SERVER_PART_SIZE);
        let huge = 200u64 << 30;
        assert!(server_part_size(huge) as u64 * S3_MAX_PARTS >= huge);
        assert!(server_part_size(huge) > SERVER_PART_SIZE);
    }

    #[test]
    fn verifier_enforces_declared_size_and_checksum() {
        let limits = PutLimits {
            expected_size: Some(3),
            max_size: 100,
            sha256: None,
        };
        let mut verifier = Verifier::new(limits);
        assert!(matches!(
            verifier.take(b"abcd"),
            Err(BlobError::TooLarge { limit: 3 })
        ));
        let mut verifier = Verifier::new(limits);
        verifier.take(b"ab").unwrap();
        assert!(matches!(
            verifier.finish(),
            Err(BlobError::SizeMismatch {
                expected: 3,
                actual: 2
            })
        ));
        let digest = Sha256Digest(Sha256::digest(b"abc").into());
        let mut verifier = Verifier::new(PutLimits {
            sha256: Some(digest),
            ..limits
        });
        verifier.take(b"abc").unwrap();
        assert_eq!(verifier.finish().unwrap().sha256, digest);
    }
}
