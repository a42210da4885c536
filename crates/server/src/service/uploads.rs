//! The one upload protocol of every store: a ticket (one request for a small file of known
//! size, otherwise parts), part URLs signed for their exact lengths (by the bucket, or by this
//! server for the embedded store), the list of stored parts for a client that resumes, and the
//! completion that checks the parts against the layout and assembles them. Shares of key
//! holders and uploads to someone's request use it alike; only what completion publishes
//! differs.

use once_api::{PartTicket, StoredPartView, StoredParts, UploadTicket};
use once_blob::{BlobError, ReportedPart, StoredPart};
use once_domain::parts::{MAX_PARTS, PartLayout};
use once_domain::share::add;
use once_domain::{BlobKey, DomainError, Instant, Sha256Digest, Share, ShareState, UploadToken};
use once_meta::CompletedUpload;

use once_api::routes;

use super::*;

/// A ticket lists URLs for at most this many parts (the client asks for more as it goes), so
/// the ticket of a very large upload stays small.
const PARTS_IN_TICKET: u16 = 1000;

/// Where a multipart ticket's client reports to: the parts and completion URLs.
pub(super) struct UploadEndpoints {
    pub parts_url: String,
    pub complete_url: String,
}

impl Service {
    /// Whether an upload of `size` goes in parts: always when the size is unknown, and when it
    /// is larger than one part (so no request body is ever larger than a part).
    fn uses_parts(&self, size: Option<u64>) -> bool {
        size.is_none_or(|size| size > self.upload_part_size)
    }

    /// Starts the multipart upload of a pending share: a fresh blob key, the storage's upload,
    /// the token that names it and the part size, all recorded on the share (which the caller
    /// then inserts), and the ticket with the first part URLs.
    pub(super) async fn begin_multipart(
        &self,
        share: &mut Share,
        endpoints: UploadEndpoints,
        base: &str,
        now: Instant,
    ) -> ServiceResult<UploadTicket> {
        let layout = PartLayout::new(share.size, self.shares.max_size, self.upload_part_size);
        let blob_key = BlobKey::generate();
        let upload_id = self
            .blob
            .start_multipart(&blob_key, &share.content_type)
            .await?;
        share.blob_key = Some(blob_key);
        share.upload_session = Some(upload_id);
        // A request's session already has the token its URLs name.
        share.upload_token.get_or_insert_with(UploadToken::generate);
        share.part_size = Some(layout.part_size);
        let first = layout.part_count().unwrap_or(0).min(PARTS_IN_TICKET);
        let lengths: Vec<(u16, u64)> = (1..=first)
            .map(|number| Ok((number, layout.length_of(number)?)))
            .collect::<Result<_, DomainError>>()?;
        let parts = self.part_urls(share, &lengths, base, now)?;
        Ok(UploadTicket {
            method: "PUT".into(),
            url: None,
            headers: Default::default(),
            expires_at: share.upload_expires_at,
            complete_url: Some(endpoints.complete_url),
            multipart: Some(once_api::MultipartTicket {
                upload_id: share
                    .upload_token
                    .as_ref()
                    .map(|token| token.as_str().to_owned())
                    .unwrap_or_default(),
                part_size: layout.part_size,
                size: share.size,
                parts,
                parts_url: endpoints.parts_url,
            }),
        })
    }

    /// The single-request ticket of a small upload of known size: a presigned bucket URL, or
    /// this server's own signed `/b/up/{id}` URL, which publishes the share as it arrives.
    pub(super) async fn begin_single(
        &self,
        share: &mut Share,
        complete_url: String,
        base: &str,
    ) -> ServiceResult<UploadTicket> {
        let size = share.size.unwrap_or(0);
        if self.blob.direct_uploads() {
            // The object key is fixed per share, so the bucket's If-None-Match refuses a
            // second upload to the same ticket.
            let blob_key = BlobKey::generate();
            let direct = self
                .blob
                .presign_upload(
                    &blob_key,
                    size,
                    &share.content_type,
                    share.sha256,
                    share.upload_expires_at,
                )
                .await?
                .ok_or(ServiceError::Blob(BlobError::Unsupported(
                    "presigned uploads",
                )))?;
            share.blob_key = Some(blob_key);
            return Ok(UploadTicket {
                method: direct.method,
                url: Some(direct.url),
                headers: direct.headers.into_iter().collect(),
                expires_at: direct.expires_at,
                complete_url: Some(complete_url),
                multipart: None,
            });
        }
        let path = routes::ticket_upload(share.id.as_str());
        let query = self
            .signer
            .signed_query("PUT", &path, &[], share.upload_expires_at);
        Ok(UploadTicket {
            method: "PUT".into(),
            url: Some(format!("{base}{path}?{query}")),
            headers: [("Content-Length".to_owned(), size.to_string())]
                .into_iter()
                .collect(),
            expires_at: share.upload_expires_at,
            complete_url: None,
            multipart: None,
        })
    }

    /// The ticket for a new upload of `share`: one request when that is enough, else parts.
    pub(super) async fn begin_upload(
        &self,
        share: &mut Share,
        endpoints: UploadEndpoints,
        base: &str,
        now: Instant,
    ) -> ServiceResult<UploadTicket> {
        if self.uses_parts(share.size) {
            self.begin_multipart(share, endpoints, base, now).await
        } else {
            self.begin_single(share, endpoints.complete_url, base).await
        }
    }

    /// The layout fixed when the upload began. An upload of unknown size may grow to the
    /// server's limit, or, for an upload to a request, to the request's.
    async fn layout_of(&self, share: &Share) -> ServiceResult<PartLayout> {
        let part_size = share.part_size.ok_or(DomainError::NotMultipart)?;
        let limit = match (share.size, &share.request_id) {
            (Some(size), _) => size,
            (None, Some(request)) => match self.meta.get_request(request).await? {
                Some(request) => request.max_size.min(self.shares.max_size),
                None => return Err(DomainError::RequestNotFound.into()),
            },
            (None, None) => self.shares.max_size,
        };
        Ok(PartLayout {
            part_size,
            size: share.size,
            max_size: limit,
        })
    }

    /// Until when the parts of `share` may still arrive: an upload that started within its
    /// window may take the grace period longer to finish.
    fn parts_deadline(&self, share: &Share) -> Instant {
        add(share.upload_expires_at, self.upload_grace)
    }

    /// Refuses work on the parts of a share that is no longer waiting for them.
    fn check_parts_open(&self, share: &Share, now: Instant) -> ServiceResult<()> {
        if share.state != ShareState::Pending {
            return Err(DomainError::SlotUsed.into());
        }
        if share.upload_session.is_none() {
            return Err(DomainError::NotMultipart.into());
        }
        if now >= self.parts_deadline(share) {
            return Err(DomainError::UploadExpired.into());
        }
        Ok(())
    }

    /// URLs for the given (number, length) parts, each signed for exactly its length: the
    /// bucket's own where it has them, else this server's `/b/part/{token}/{number}`.
    fn part_urls(
        &self,
        share: &Share,
        lengths: &[(u16, u64)],
        base: &str,
        now: Instant,
    ) -> ServiceResult<Vec<PartTicket>> {
        let (Some(blob_key), Some(upload_id), Some(token)) =
            (&share.blob_key, &share.upload_session, &share.upload_token)
        else {
            return Err(DomainError::NotMultipart.into());
        };
        let expires_at = add(now, self.shares.upload_window).min(self.parts_deadline(share));
        lengths
            .iter()
            .map(|&(number, length)| {
                let url = match self
                    .blob
                    .presign_part(blob_key, upload_id, number, length, expires_at)
                {
                    Some(url) => url,
                    None => {
                        let path = routes::part_upload(token.as_str(), number);
                        let length_text = length.to_string();
                        let query = self.signer.signed_query(
                            "PUT",
                            &path,
                            &[("len", &length_text)],
                            expires_at,
                        );
                        format!("{base}{path}?{query}")
                    }
                };
                Ok(PartTicket {
                    number,
                    url,
                    size: length,
                })
            })
            .collect()
    }

    /// URLs for more parts, or fresh ones for parts whose URLs expired.
    pub(super) async fn sign_parts(
        &self,
        share: &Share,
        wanted: &once_api::RefreshParts,
        base: &str,
        now: Instant,
    ) -> ServiceResult<Vec<PartTicket>> {
        self.check_parts_open(share, now)?;
        let layout = self.layout_of(share).await?;
        if wanted.part_numbers.len() + wanted.parts.len() > usize::from(PARTS_IN_TICKET) {
            return Err(DomainError::InvalidPart(format!(
                "ask for at most {PARTS_IN_TICKET} part URLs at once"
            ))
            .into());
        }
        let mut lengths = Vec::new();
        for &number in &wanted.part_numbers {
            lengths.push((number, layout.length_of(number)?));
        }
        for part in &wanted.parts {
            layout.check_part(part.number, part.size)?;
            lengths.push((part.number, part.size));
        }
        self.part_urls(share, &lengths, base, now)
    }

    /// What the storage holds of an unfinished multipart upload.
    pub(super) async fn stored_parts(&self, share: &Share) -> ServiceResult<StoredParts> {
        let layout = self.layout_of(share).await?;
        let parts = self.list_stored(share).await?;
        Ok(StoredParts {
            part_size: layout.part_size,
            size: share.size,
            expires_at: self.parts_deadline(share),
            parts: parts
                .into_iter()
                .map(|part| StoredPartView {
                    number: part.number,
                    size: part.size,
                    etag: part.etag,
                })
                .collect(),
        })
    }

    async fn list_stored(&self, share: &Share) -> ServiceResult<Vec<StoredPart>> {
        let (Some(blob_key), Some(upload_id)) = (&share.blob_key, &share.upload_session) else {
            return Err(DomainError::NotMultipart.into());
        };
        match self.blob.list_parts(blob_key, upload_id).await {
            Ok(parts) => Ok(parts),
            // The storage no longer has the upload: it was completed or reaped meanwhile.
            Err(BlobError::NotFound) => Err(DomainError::UploadExpired.into()),
            Err(error) => Err(error.into()),
        }
    }

    /// A part sent to this server's signed URL (`/b/part/{token}/{number}`, the embedded
    /// store): the URL must be ours and unexpired when the part starts, its length the signed
    /// one, and the share still waiting for parts.
    #[tracing::instrument(name = "upload.part", skip_all)]
    pub async fn receive_part(
        &self,
        path: &str,
        query: &str,
        token: &UploadToken,
        number: u16,
        incoming: IncomingBody,
        started_at: Instant,
    ) -> ServiceResult<StoredPart> {
        self.verify_upload_url(path, query, started_at)?;
        let length = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("len="))
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or(DomainError::BadUrlSignature)?;
        if incoming
            .content_length
            .is_some_and(|declared| declared != length)
        {
            return Err(DomainError::InvalidPart(format!(
                "this part URL takes exactly {length} bytes"
            ))
            .into());
        }
        let share = self
            .meta
            .get_share_by_upload_token(token)
            .await?
            .ok_or(DomainError::UploadExpired)?;
        self.check_parts_open(&share, started_at)?;
        self.layout_of(&share).await?.check_part(number, length)?;
        let (Some(blob_key), Some(upload_id)) = (&share.blob_key, &share.upload_session) else {
            return Err(DomainError::NotMultipart.into());
        };
        match self
            .blob
            .put_part(blob_key, upload_id, number, length, incoming.body)
            .await
        {
            Ok(part) => {
                metrics::counter!("once_parts_stored_total").increment(1);
                Ok(part)
            }
            Err(BlobError::PartConflict(number)) => Err(DomainError::PartConflict(number).into()),
            Err(BlobError::NotFound) => Err(DomainError::UploadExpired.into()),
            Err(error) => Err(error.into()),
        }
    }

    /// Completes the multipart upload of `share`: the reported parts are checked against the
    /// layout and what the storage holds (order, gaps, tags, sizes), then assembled; the
    /// result is checked against the declared (or, for a pipe, reported) checksum where the
    /// store gives one. Returns what the publishing write needs.
    pub(super) async fn finish_multipart(
        &self,
        share: &Share,
        reported: &[ReportedPart],
        reported_sha256: Option<Sha256Digest>,
        now: Instant,
    ) -> ServiceResult<CompletedUpload> {
        self.check_parts_open(share, now)?;
        let layout = self.layout_of(share).await?;
        let (Some(blob_key), Some(upload_id)) = (&share.blob_key, &share.upload_session) else {
            return Err(DomainError::NotMultipart.into());
        };
        if reported.len() > usize::from(MAX_PARTS) {
            return Err(DomainError::InvalidPart(format!("at most {MAX_PARTS} parts")).into());
        }
        // A store that assembled the parts already (an earlier completion that was refused,
        // or whose share was not published because the server died or the database was
        // away) lists them no more: the assembled blob is then judged by the store (the
        // bucket against the reported tags), and by its size and checksum below.
        let assembled_before = self.blob.size(blob_key).await?.is_some();
        if assembled_before {
            once_domain::parts::check_numbering(reported)?;
        } else {
            let stored = self.list_stored(share).await?;
            layout.check_completion(reported, &stored)?;
        }
        let completed = match self
            .blob
            .complete_upload(blob_key, Some(upload_id), reported)
            .await
        {
            Ok(completed) => completed,
            // A completion that raced this one may have taken the upload meanwhile: then this
            // one lost, whatever the storage said about it.
            Err(error) if self.lost_race(share).await => {
                tracing::debug!(%error, "a concurrent completion took the upload first");
                return Err(DomainError::SlotUsed.into());
            }
            Err(BlobError::NotFound) => return Err(DomainError::NothingUploaded.into()),
            Err(BlobError::PartConflict(number)) => {
                return Err(DomainError::PartConflict(number).into());
            }
            Err(error) => return Err(error.into()),
        };
        let expected = share.sha256.or(reported_sha256);
        let stored_sha256 = match (expected, completed.sha256) {
            // The store keeps no checksum of an assembled upload (S3): hash small ones
            // ourselves, so a declared checksum is never taken on trust; larger ones rely on
            // the parts' signed lengths and tags.
            (Some(_), None) if completed.size <= VERIFY_BY_READING_UP_TO => Some(
                self.hash_blob(blob_key, completed.version.as_deref())
                    .await?,
            ),
            (_, stored) => stored,
        };
        let refusal = match (share.size, expected, stored_sha256) {
            (Some(size), _, _) if completed.size != size => Some(DomainError::SizeMismatch {
                expected: size,
                actual: completed.size,
            }),
            (_, Some(expected), Some(stored)) if expected != stored => {
                Some(DomainError::ChecksumMismatch)
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            // The assembled object is wrong: it must never be served.
            self.blob.delete(blob_key).await?;
            return Err(refusal.into());
        }
        Ok(CompletedUpload {
            blob_key: blob_key.clone(),
            blob_version: completed.version,
            size: completed.size,
            // What the store computed, else what was declared, else what the client reported
            // for a pipe (as unverified as a declared one on a store that keeps none).
            sha256: stored_sha256.or(share.sha256).or(reported_sha256),
            // Parts are accepted until the grace ends only for uploads that began in time.
            started_at: now.min(share.upload_expires_at - time::Duration::seconds(1)),
        })
    }
}

impl Service {
    /// Whether the share left `pending` since it was read (another completion published it,
    /// or it was revoked).
    async fn lost_race(&self, share: &Share) -> bool {
        matches!(
            self.meta.get_share(&share.id).await,
            Ok(Some(now)) if now.state != ShareState::Pending
        )
    }
}

/// The parts as a client reports them on the wire.
pub fn reported_parts(parts: &[once_api::CompletedPart]) -> Vec<ReportedPart> {
    parts
        .iter()
        .map(|part| ReportedPart {
            number: part.part_number,
            etag: part.etag.clone(),
        })
        .collect()
}

pub fn parse_sha256(text: Option<&str>) -> ServiceResult<Option<Sha256Digest>> {
    Ok(text.map(Sha256Digest::parse_hex).transpose()?)
}
