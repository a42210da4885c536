//! [`BlobStore`] on an S3-compatible bucket: presigned tickets and downloads, checks of what a
//! direct upload left, reads, deletes and the listings the reaper sweeps.

use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use once_domain::{BlobKey, Instant, Sha256Digest};
use reqwest::StatusCode;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Method, S3Action};

use super::calls::{LISTING_CALL, call, call_text, call_text_if_implemented, check, storage_error};
use super::xml::ListMultipartUploadsResult;
use super::{S3BlobStore, presign, stamped_before};
use crate::{
    BlobError, BlobInfo, BlobRead, BlobResult, BlobStore, ByteStream, CompletedBlob, DirectUpload,
    PutLimits, ReportedPart, StoredPart,
};

/// An S3 multipart object tag: 32 hex digits, `-`, the number of parts.
fn is_multipart_etag(etag: &str) -> bool {
    etag.split_once('-').is_some_and(|(digest, count)| {
        digest.len() == 32
            && digest.bytes().all(|b| b.is_ascii_hexdigit())
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
    })
}

impl S3BlobStore {
    /// Whether the object exists now or within a moment: a store may still be writing an
    /// object whose completion it has already accepted (and refuses a second completion of).
    async fn appears(&self, key: &BlobKey) -> bool {
        for attempt in 0..10 {
            if let Ok(Some(_)) = self.head(key, None).await {
                return true;
            }
            if attempt < 9 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        false
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn ping(&self) -> BlobResult<()> {
        let mut action = self.bucket.head_bucket(Some(&self.credentials));
        call(
            self.signed(&mut action, &[]),
            Duration::from_secs(10),
            "HEAD bucket",
        )
        .await
        .map(|_| ())
    }

    fn pending_bytes(&self) -> u64 {
        self.buffers.held()
    }

    /// Streams an upload that arrived through the server, in parts (see `multipart`).
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        self.put_streamed(key, body, limits).await
    }

    async fn open(
        &self,
        key: &BlobKey,
        version: Option<&str>,
        range: Option<RangeInclusive<u64>>,
    ) -> BlobResult<BlobRead> {
        let total_size = self
            .head(key, version)
            .await?
            .ok_or(BlobError::NotFound)?
            .size;
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
        // No deadline on the whole call: the body streams to a recipient for as long as the
        // download takes (the client's read timeout still applies).
        let mut request = self.signed(&mut action, &[]);
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
        Ok(self.head(key, None).await?.map(|head| head.size))
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
            let text =
                call_text(self.signed(&mut action, &[]), LISTING_CALL, "ListObjectsV2").await?;
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
            let request = self.signed_bucket(Method::Get, &query);
            // Some stores (s3s-fs) cannot list uploads; the bucket's lifecycle rule remains.
            let Some(text) =
                call_text_if_implemented(request, LISTING_CALL, "ListMultipartUploads").await?
            else {
                tracing::debug!("the store cannot list multipart uploads");
                return Ok(found);
            };
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

    fn direct_origin(&self) -> Option<String> {
        Some(self.bucket.object_url("o").origin().ascii_serialization())
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
        let url = presign(&action, expires_at).to_string();
        Ok(Some(DirectUpload {
            method: "PUT".into(),
            url,
            headers,
            expires_at,
        }))
    }

    async fn start_multipart(&self, key: &BlobKey, content_type: &str) -> BlobResult<String> {
        self.create_multipart(&self.object(key), Some(content_type))
            .await
    }

    fn presign_part(
        &self,
        key: &BlobKey,
        upload_id: &str,
        number: u16,
        length: u64,
        expires_at: Instant,
    ) -> Option<String> {
        Some(self.sign_part(&self.object(key), upload_id, number, length, expires_at))
    }

    /// Stores that list parts without sizes or ETags (some compatible ones) report them as
    /// unknown: size 0 and an empty tag, which completion then refuses rather than trusts.
    async fn list_parts(&self, key: &BlobKey, upload_id: &str) -> BlobResult<Vec<StoredPart>> {
        let mut parts: Vec<StoredPart> = self
            .uploaded_parts(&self.object(key), upload_id)
            .await?
            .into_iter()
            .map(|part| StoredPart {
                number: part.number,
                size: part.size.unwrap_or(0),
                etag: part
                    .etag
                    .map(|etag| etag.trim_matches('"').to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        parts.sort_by_key(|part| part.number);
        Ok(parts)
    }

    async fn complete_upload(
        &self,
        key: &BlobKey,
        upload_id: Option<&str>,
        parts: &[ReportedPart],
    ) -> BlobResult<CompletedBlob> {
        // A multipart upload has no URL that writes the object itself, so an object already
        // there means an earlier `complete` assembled it and its share was not published (say
        // the database was briefly away): check it again instead of failing the retry.
        let assembled_before = upload_id.is_some() && self.head(key, None).await?.is_some();
        if let Some(upload_id) = upload_id.filter(|_| !assembled_before) {
            match self
                .complete_reported(&self.object(key), upload_id, parts)
                .await
            {
                Ok(()) => {}
                // A completion of the same upload that raced this one may have assembled it
                // meanwhile, and the store then refuses this one: the object is judged below by
                // its tag, like one assembled before.
                // (Stores refuse the loser of such a race in their own ways: 400, 403, 404
                // or even 500.)
                Err(error) => {
                    if !self.appears(key).await {
                        return Err(error);
                    }
                }
            }
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
        let head = self
            .head(key, version.as_deref())
            .await?
            .ok_or(BlobError::NotFound)?;
        // The object must be the reported parts. Stores that list parts without their tags
        // (s3s-fs) assemble whatever the parts hold now, even if another upload replaced them
        // after the reporter sent its own; the object's tag tells, where it is the standard
        // one. The object stays: its share's reaper owns it, and the upload that really sent
        // these parts may still complete with them.
        if upload_id.is_some()
            && let Some(stored) = head.etag.as_deref().filter(|etag| is_multipart_etag(etag))
            && super::multipart_etag(
                &parts
                    .iter()
                    .map(|part| part.etag.as_str())
                    .collect::<Vec<_>>(),
            )
            .as_deref()
                != Some(stored)
        {
            return Err(BlobError::InvalidParts(
                "the storage holds other bytes than the reported parts (another upload \
                 replaced them)"
                    .into(),
            ));
        }
        Ok(CompletedBlob {
            size: head.size,
            sha256: head.sha256,
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
        Some(presign(&action, expires_at).to_string())
    }
}
