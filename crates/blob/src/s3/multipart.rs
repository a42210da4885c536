//! Multipart uploads: the part layout of a ticket, the bucket calls that create, list, complete
//! and abort them, and uploads that stream through the server, cut into parts of bounded size
//! whose buffers count against the store's memory budget.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use once_domain::{BlobKey, Instant};
use reqwest::StatusCode;
use rusty_s3::actions::CreateMultipartUpload;

use super::S3BlobStore;
use super::calls::{
    LISTING_CALL, LONG_CALL, SHORT_CALL, call, call_text, call_unless_missing, check,
    s3_error_code, send, storage_error, text_of,
};
use super::xml::{ListPartsResult, ListedPart};
use crate::budget::Reservation;
use crate::verify::Verifier;
use crate::{BlobError, BlobInfo, BlobResult, ByteStream, PutLimits, ReportedPart};
use rusty_s3::S3Action;

/// Parts of uploads that stream through the server; also the most memory one such upload holds
/// (more only for uploads so large that 10,000 parts of this size would not hold them).
const SERVER_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's limit on the parts of one upload.
const S3_MAX_PARTS: u64 = once_domain::parts::MAX_PARTS as u64;
/// S3's largest part, and its largest single `PUT`.
pub const MAX_PART_SIZE: u64 = once_domain::parts::MAX_PART_SIZE;

impl S3BlobStore {
    /// A URL for one part, signed for its exact length.
    pub(super) fn sign_part(
        &self,
        object: &str,
        upload_id: &str,
        number: u16,
        size: u64,
        expires_at: Instant,
    ) -> String {
        let length = size.to_string();
        let mut action =
            self.bucket
                .upload_part(Some(&self.credentials), object, number, upload_id);
        action.headers_mut().insert("content-length", length);
        super::presign(&action, expires_at).to_string()
    }

    pub(super) async fn create_multipart(
        &self,
        object: &str,
        content_type: Option<&str>,
    ) -> BlobResult<String> {
        let mut action = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), object);
        let headers: Vec<_> = content_type
            .map(|content_type| ("content-type", content_type.to_owned()))
            .into_iter()
            .collect();
        let request = self.signed(&mut action, &headers);
        let text = call_text(request, SHORT_CALL, "CreateMultipartUpload").await?;
        let parsed = CreateMultipartUpload::parse_response(&text).map_err(storage_error)?;
        Ok(parsed.upload_id().to_owned())
    }

    pub(super) async fn complete_multipart(
        &self,
        object: &str,
        upload_id: &str,
        etags: &[String],
    ) -> BlobResult<()> {
        let mut action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            object,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let request = self.signed(&mut action, &[]);
        let response = send(request.body(action.body()), LONG_CALL).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(BlobError::NotFound);
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN {
            // InvalidPart, InvalidPartOrder, EntityTooSmall: the client reported parts that
            // are not what the storage holds. Some compatible stores (s3s-fs) answer a part
            // whose ETag does not match with 403 AccessDenied instead; the same credentials
            // signed every call before this one, so a 403 here is about the parts.
            let text = response.text().await.unwrap_or_default();
            return Err(BlobError::InvalidParts(s3_error_code(&text)));
        }
        let text = text_of(check(response, "CompleteMultipartUpload").await?).await?;
        // S3 may answer 200 with an error document when completion fails late.
        if text.contains("<Error>") {
            return Err(storage_error(format!(
                "S3 CompleteMultipartUpload failed: {text}"
            )));
        }
        Ok(())
    }

    /// Checks the parts a client reported against the storage's own list, then assembles
    /// them. AWS refuses a missing part or a wrong ETag with a clear error, but some
    /// compatible stores fail with 500 or do not check ETags at all (where they list none,
    /// only presence is checked).
    pub(super) async fn complete_reported(
        &self,
        object: &str,
        upload_id: &str,
        parts: &[ReportedPart],
    ) -> BlobResult<()> {
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
        let held = self.uploaded_parts(object, upload_id).await?;
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
        self.complete_multipart(object, upload_id, &etags).await
    }

    /// The parts the storage holds for an unfinished multipart upload.
    pub(super) async fn uploaded_parts(
        &self,
        object: &str,
        upload_id: &str,
    ) -> BlobResult<Vec<ListedPart>> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = self
                .bucket
                .list_parts(Some(&self.credentials), object, upload_id);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let request = self.signed(&mut action, &[]);
            let Some(response) = call_unless_missing(request, LISTING_CALL, "ListParts").await?
            else {
                return Err(BlobError::NotFound);
            };
            let text = text_of(response).await?;
            let listed: ListPartsResult = quick_xml::de::from_str(&text).map_err(storage_error)?;
            parts.extend(listed.parts);
            match listed.next_part_number_marker {
                Some(next) if listed.is_truncated => marker = Some(next),
                _ => break,
            }
        }
        Ok(parts)
    }

    pub(super) async fn abort_multipart(&self, object: &str, upload_id: &str) -> BlobResult<()> {
        let mut action =
            self.bucket
                .abort_multipart_upload(Some(&self.credentials), object, upload_id);
        let response = send(self.signed(&mut action, &[]), SHORT_CALL).await?;
        match response.status() {
            // Already gone. Some compatible stores (s3s-fs) answer an upload that was aborted
            // or completed with 403 instead of 404; an abort is cleanup, and the bucket's
            // lifecycle rule remains the backstop, so neither stops the caller.
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::FORBIDDEN => {
                tracing::debug!(object, "AbortMultipartUpload answered 403; taken as gone");
                Ok(())
            }
            _ => check(response, "AbortMultipartUpload").await.map(|_| ()),
        }
    }

    async fn upload_part_bytes(
        &self,
        object: &str,
        upload_id: &str,
        number: u16,
        bytes: Bytes,
    ) -> BlobResult<String> {
        let mut action =
            self.bucket
                .upload_part(Some(&self.credentials), object, number, upload_id);
        let request = self.signed(&mut action, &[("content-length", bytes.len().to_string())]);
        let response = call(request.body(bytes), LONG_CALL, "UploadPart").await?;
        response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| storage_error("S3 UploadPart answered without an ETag"))
    }

    async fn put_single(&self, object: &str, bytes: Bytes) -> BlobResult<()> {
        let mut action = self.bucket.put_object(Some(&self.credentials), object);
        let request = self.signed(&mut action, &self.conditional_write_headers());
        call(request.body(bytes), LONG_CALL, "PUT")
            .await
            .map(|_| ())
    }

    /// Streams an upload that arrived through the server: one `PUT` when it fits in a part,
    /// otherwise a multipart upload of `SERVER_PART_SIZE` parts (larger when the upload may be
    /// too big for 10,000 of them). Everything is verified before the object is completed; on
    /// any failure the multipart upload is aborted.
    pub(super) async fn put_streamed(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        let object = self.object(key);
        let mut part = PartBuffer::new(self, limits)?;
        if !part.fill(&mut body).await? {
            let info = part.verifier.finish()?;
            self.put_single(&object, part.buffer.freeze()).await?;
            return Ok(info);
        }
        let upload_id = self.create_multipart(&object, None).await?;
        let result: BlobResult<BlobInfo> = async {
            let mut etags = Vec::new();
            loop {
                let more = part.fill(&mut body).await?;
                if !part.buffer.is_empty() {
                    let number = u16::try_from(etags.len() + 1)
                        .map_err(|_| storage_error("too many parts"))?;
                    let bytes = part.buffer.split().freeze();
                    etags.push(
                        self.upload_part_bytes(&object, &upload_id, number, bytes)
                            .await?,
                    );
                }
                if !more {
                    break;
                }
            }
            let info = part.verifier.finish()?;
            self.complete_multipart(&object, &upload_id, &etags).await?;
            Ok(info)
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(&object, &upload_id).await;
        }
        result
    }
}

/// The part of a streamed upload that is being gathered, with the memory it holds.
struct PartBuffer {
    buffer: BytesMut,
    part_size: usize,
    verifier: Verifier,
    reservation: Reservation,
}

impl PartBuffer {
    fn new(store: &S3BlobStore, limits: PutLimits) -> BlobResult<Self> {
        let verifier = Verifier::new(limits);
        let part_size = server_part_size(verifier.limit);
        // A declared size is held from the start (refused before any byte); an undeclared
        // one as the buffer grows. Either way one part's worth at most, plus a chunk.
        let declared = limits
            .expected_size
            .map_or(0, |_| verifier.limit.min(part_size as u64));
        Ok(Self {
            reservation: store.buffers.reserve(declared)?,
            buffer: BytesMut::with_capacity(declared as usize),
            part_size,
            verifier,
        })
    }

    /// Reads the stream until the buffer holds a part or the stream ends; the buffer's bytes
    /// are reserved before they are taken in. Returns false at the end of the stream.
    async fn fill(&mut self, body: &mut ByteStream) -> BlobResult<bool> {
        while self.buffer.len() < self.part_size {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(BlobError::Interrupted)?;
                    self.verifier.take(&chunk)?;
                    self.reservation
                        .grow_to((self.buffer.len() + chunk.len()) as u64)?;
                    self.buffer.extend_from_slice(&chunk);
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// The part size for an upload through the server of at most `limit` bytes.
fn server_part_size(limit: u64) -> usize {
    usize::try_from(limit.div_ceil(S3_MAX_PARTS))
        .unwrap_or(usize::MAX)
        .max(SERVER_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_parts_grow_only_when_10000_would_not_hold_the_upload() {
        assert_eq!(server_part_size(10 << 30), SERVER_PART_SIZE);
        let huge = 200u64 << 30;
        assert!(server_part_size(huge) as u64 * S3_MAX_PARTS >= huge);
        assert!(server_part_size(huge) > SERVER_PART_SIZE);
    }
}
