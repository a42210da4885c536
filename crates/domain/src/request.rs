//! Upload requests: a one-time upload URL handed to someone without a key. The first complete
//! upload turns it into a share owned by the requester; every later upload is refused.

use std::time::Duration;

use crate::share::{DEFAULT_CONTENT_TYPE, add, encrypted_filename, validate_content_type};
use crate::{
    BlobKey, DomainError, Encryption, Filename, Instant, KeyId, Note, RequestId, RequesterName,
    Sha256Digest, Share, ShareId, SharePolicy, ShareState, UploadToken,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub id: RequestId,
    pub owner: KeyId,
    /// A name fixed by the requester; otherwise the uploader's name is used.
    pub filename: Option<Filename>,
    pub max_size: u64,
    /// How the share created by the upload behaves.
    pub max_downloads: u32,
    pub share_expires_in: Duration,
    pub created_at: Instant,
    pub expires_at: Instant,
    /// Set once, by the first complete upload.
    pub share_id: Option<ShareId>,
    pub fulfilled_at: Option<Instant>,
    /// The requester's message to the uploader, shown on the upload page. The share the
    /// upload becomes does not inherit it: the uploader did not write it.
    pub note: Option<Note>,
    /// Who asks (`from` on the wire), shown to the uploader.
    pub requester: Option<RequesterName>,
    /// Uploads must be encrypted end to end to the requester's public key (which only the
    /// request link's fragment holds); plain ones are refused.
    pub encrypted: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    pub filename: Option<String>,
    pub max_size: Option<u64>,
    pub expires_in: Option<Duration>,
    pub max_downloads: Option<u32>,
    pub share_expires_in: Option<Duration>,
    /// Blank means none, for both.
    pub note: Option<String>,
    pub requester: Option<String>,
    pub encrypted: bool,
}

/// Limits for upload requests; share limits come from the [`SharePolicy`].
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    pub default_expires_in: Duration,
}

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            default_expires_in: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl RequestPolicy {
    pub fn new_request(
        &self,
        spec: &RequestSpec,
        shares: &SharePolicy,
        owner: KeyId,
        now: Instant,
    ) -> Result<UploadRequest, DomainError> {
        // An encrypted upload's name travels sealed; a fixed one would sit here in plaintext
        // and name nothing (the share is called `encrypted`).
        if spec.encrypted && spec.filename.is_some() {
            return Err(DomainError::InvalidEncryption(
                "an encrypted request fixes no filename: the uploader's travels sealed",
            ));
        }
        let filename = spec.filename.as_deref().map(Filename::parse).transpose()?;
        let max_size = spec.max_size.unwrap_or(shares.max_size);
        if max_size == 0 {
            return Err(DomainError::InvalidSize(
                "max_size must be at least 1 byte".into(),
            ));
        }
        shares.check_size(Some(max_size))?;
        let expires_in =
            shares.check_expires_in(Some(spec.expires_in.unwrap_or(self.default_expires_in)))?;
        let share_expires_in = shares.check_expires_in(spec.share_expires_in)?;
        let max_downloads = shares.check_max_downloads(spec.max_downloads)?;
        let note = Note::parse_optional(spec.note.as_deref())?;
        let requester = RequesterName::parse_optional(spec.requester.as_deref())?;
        Ok(UploadRequest {
            id: RequestId::generate(),
            owner,
            filename,
            max_size,
            max_downloads,
            share_expires_in,
            created_at: now,
            expires_at: add(now, expires_in),
            share_id: None,
            fulfilled_at: None,
            note,
            requester,
            encrypted: spec.encrypted,
        })
    }
}

/// What an uploader says of the file it is about to send to a request URL in parts.
#[derive(Debug, Clone, Default)]
pub struct SessionSpec {
    pub filename_hint: Option<String>,
    pub content_type: Option<String>,
    /// None when the uploader does not know the size in advance (a pipe).
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// An encrypted upload (checked by [`crate::Encryption::parse`]): `filename_hint` and
    /// `content_type` must then be absent, they travel sealed.
    pub encryption: Option<Encryption>,
}

/// What arrived with an upload to a request URL.
#[derive(Debug, Clone)]
pub struct ReceivedUpload {
    pub filename_hint: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub blob_key: BlobKey,
}

impl UploadRequest {
    /// The name an upload gets: the requester's fixed one, else the uploader's, else a
    /// neutral default.
    fn filename_for(&self, hint: Option<&str>) -> Result<Filename, DomainError> {
        match (&self.filename, hint) {
            (Some(fixed), _) => Ok(fixed.clone()),
            (None, Some(hint)) => Filename::parse(hint),
            (None, None) => Filename::parse("upload.bin"),
        }
    }

    /// Why a streamed (so plain) upload to this request would be refused, if it would.
    pub fn plain_upload_refusal(&self, now: Instant) -> Option<DomainError> {
        self.upload_refusal(now)
            .or_else(|| self.encrypted.then_some(DomainError::EncryptionRequired))
    }

    pub fn upload_refusal(&self, now: Instant) -> Option<DomainError> {
        if self.share_id.is_some() {
            Some(DomainError::SlotUsed)
        } else if now >= self.expires_at {
            Some(DomainError::UploadExpired)
        } else {
            None
        }
    }

    /// The pending share that one uploader's multipart upload to this request fills: owned by
    /// the requester, named by the request's fixed name or the uploader's, with its own upload
    /// window. Several may exist at once; the first one completed fulfils the request and the
    /// others are refused. Its `expires_at` is set again when it is published.
    pub fn session_share(
        &self,
        spec: &SessionSpec,
        upload_window: Duration,
        now: Instant,
    ) -> Result<Share, DomainError> {
        if let Some(refusal) = self.upload_refusal(now) {
            return Err(refusal);
        }
        if let Some(size) = spec.size
            && size > self.max_size
        {
            return Err(DomainError::TooLarge {
                limit: self.max_size,
            });
        }
        let (filename, content_type) = match &spec.encryption {
            None if self.encrypted => return Err(DomainError::EncryptionRequired),
            None => (
                self.filename_for(spec.filename_hint.as_deref())?,
                validate_content_type(spec.content_type.as_deref())?,
            ),
            // Only the requester's key opens an upload to a request: an encryption to any
            // other key (or to none) would be a file the requester cannot read.
            Some(encryption) if !self.encrypted || !encryption.is_request_upload() => {
                return Err(DomainError::InvalidEncryption(
                    "an upload to a request is encrypted exactly when the request is, with \
                     ephemeral_key and recipient_key",
                ));
            }
            Some(_) if spec.filename_hint.is_some() || spec.content_type.is_some() => {
                return Err(DomainError::InvalidEncryption(
                    "an encrypted upload has no plaintext filename or content_type",
                ));
            }
            Some(_) => (encrypted_filename(), DEFAULT_CONTENT_TYPE.to_owned()),
        };
        let sha256 = spec
            .sha256
            .as_deref()
            .map(Sha256Digest::parse_hex)
            .transpose()?;
        Ok(Share {
            id: ShareId::generate(),
            owner: Some(self.owner.clone()),
            filename,
            content_type,
            size: spec.size,
            sha256,
            max_downloads: self.max_downloads,
            downloads_left: self.max_downloads,
            state: ShareState::Pending,
            created_at: now,
            expires_at: add(add(now, upload_window), self.share_expires_in),
            upload_expires_at: add(now, upload_window),
            published_at: None,
            lease_until: None,
            blob_key: None,
            blob_version: None,
            request_id: Some(self.id.clone()),
            upload_attempts: 0,
            preview_hits: 0,
            upload_session: None,
            upload_token: Some(UploadToken::generate()),
            part_size: None,
            contents: None,
            note: None,
            encryption: spec.encryption.clone(),
        })
    }

    /// The published share that a complete upload to this request becomes.
    pub fn share_for(
        &self,
        share_id: ShareId,
        upload: ReceivedUpload,
        now: Instant,
    ) -> Result<Share, DomainError> {
        let filename = self.filename_for(upload.filename_hint.as_deref())?;
        Ok(Share {
            id: share_id,
            owner: Some(self.owner.clone()),
            filename,
            content_type: validate_content_type(upload.content_type.as_deref())?,
            size: Some(upload.size),
            sha256: Some(upload.sha256),
            max_downloads: self.max_downloads,
            downloads_left: self.max_downloads,
            state: ShareState::Ready,
            created_at: now,
            expires_at: add(now, self.share_expires_in),
            upload_expires_at: now,
            published_at: Some(now),
            lease_until: None,
            blob_key: Some(upload.blob_key),
            blob_version: None,
            request_id: Some(self.id.clone()),
            upload_attempts: 1,
            preview_hits: 0,
            upload_session: None,
            upload_token: None,
            part_size: None,
            contents: None,
            note: None,
            // Streamed uploads are plain; an encrypted request refuses them before this.
            encryption: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Instant {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn request() -> UploadRequest {
        let spec = RequestSpec {
            max_size: Some(100),
            ..RequestSpec::default()
        };
        RequestPolicy::default()
            .new_request(&spec, &SharePolicy::default(), KeyId::generate(), now())
            .unwrap()
    }

    #[test]
    fn request_accepts_until_fulfilled_or_expired() {
        let mut request = request();
        assert_eq!(request.upload_refusal(now()), None);
        assert_eq!(
            request.upload_refusal(request.expires_at),
            Some(DomainError::UploadExpired)
        );
        request.share_id = Some(ShareId::generate());
        assert_eq!(request.upload_refusal(now()), Some(DomainError::SlotUsed));
    }

    #[test]
    fn a_session_is_a_pending_share_of_the_requester_within_the_size() {
        let request = request();
        let window = Duration::from_secs(600);
        let spec = SessionSpec {
            filename_hint: Some("scan.pdf".into()),
            size: Some(100),
            ..SessionSpec::default()
        };
        let share = request.session_share(&spec, window, now()).unwrap();
        assert_eq!(share.state, ShareState::Pending);
        assert_eq!(share.owner.as_ref(), Some(&request.owner));
        assert_eq!(share.request_id.as_ref(), Some(&request.id));
        assert!(share.upload_token.is_some());
        assert_eq!(share.upload_expires_at, add(now(), window));
        let too_big = SessionSpec {
            size: Some(101),
            ..spec.clone()
        };
        assert_eq!(
            request.session_share(&too_big, window, now()),
            Err(DomainError::TooLarge { limit: 100 })
        );
        let mut used = request.clone();
        used.share_id = Some(ShareId::generate());
        assert_eq!(
            used.session_share(&spec, window, now()),
            Err(DomainError::SlotUsed)
        );
    }

    #[test]
    fn a_request_keeps_its_note_and_requester_but_its_share_gets_neither() {
        let spec = RequestSpec {
            note: Some(" Please send the signed contract.\n".into()),
            requester: Some(" Alice ".into()),
            ..RequestSpec::default()
        };
        let request = RequestPolicy::default()
            .new_request(&spec, &SharePolicy::default(), KeyId::generate(), now())
            .unwrap();
        assert_eq!(
            request.note.as_ref().map(Note::as_str),
            Some("Please send the signed contract.")
        );
        assert_eq!(
            request.requester.as_ref().map(RequesterName::as_str),
            Some("Alice")
        );
        let session = request
            .session_share(&SessionSpec::default(), Duration::from_secs(600), now())
            .unwrap();
        assert_eq!(session.note, None);
        let upload = ReceivedUpload {
            filename_hint: None,
            content_type: None,
            size: 1,
            sha256: Sha256Digest([0; 32]),
            blob_key: BlobKey::generate(),
        };
        let share = request
            .share_for(ShareId::generate(), upload, now())
            .unwrap();
        assert_eq!(share.note, None);
    }

    #[test]
    fn a_bad_note_or_requester_is_refused_as_invalid_note() {
        for spec in [
            RequestSpec {
                note: Some("n".repeat(1001)),
                ..RequestSpec::default()
            },
            RequestSpec {
                requester: Some("r".repeat(101)),
                ..RequestSpec::default()
            },
            RequestSpec {
                requester: Some("Alice\nBob".into()),
                ..RequestSpec::default()
            },
        ] {
            let error = RequestPolicy::default()
                .new_request(&spec, &SharePolicy::default(), KeyId::generate(), now())
                .unwrap_err();
            assert_eq!(error.code(), "invalid_note");
        }
    }

    #[test]
    fn zero_max_size_is_refused() {
        let spec = RequestSpec {
            max_size: Some(0),
            ..RequestSpec::default()
        };
        let error = RequestPolicy::default()
            .new_request(&spec, &SharePolicy::default(), KeyId::generate(), now())
            .unwrap_err();
        assert_eq!(error.code(), "invalid_size");
    }

    #[test]
    fn fulfilled_request_becomes_a_ready_share_of_the_requester() {
        let request = request();
        let share_id = ShareId::generate();
        let upload = ReceivedUpload {
            filename_hint: Some("../photo.jpg".into()),
            content_type: Some("image/jpeg".into()),
            size: 42,
            sha256: Sha256Digest([0; 32]),
            blob_key: BlobKey::generate(),
        };
        let share = request.share_for(share_id, upload, now()).unwrap();
        assert_eq!(share.state, ShareState::Ready);
        assert_eq!(share.owner.as_ref(), Some(&request.owner));
        assert_eq!(share.filename.as_str(), "photo.jpg");
        assert_eq!(share.request_id.as_ref(), Some(&request.id));
    }

    fn sample_encryption(request_upload: bool) -> Encryption {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let key = b64(&[1; 32]);
        let public = request_upload.then(|| b64(&[2; 32]));
        Encryption::parse(
            crate::encryption::SCHEME_V1,
            &key,
            &b64(&[3; 40]),
            None,
            public.as_deref(),
            public.as_deref(),
        )
        .unwrap()
    }

    #[test]
    fn an_encrypted_request_takes_only_uploads_encrypted_to_the_requester() {
        let mut request = request();
        request.encrypted = true;
        let window = Duration::from_secs(600);
        let plain = SessionSpec {
            size: Some(10),
            ..SessionSpec::default()
        };
        assert_eq!(
            request.session_share(&plain, window, now()),
            Err(DomainError::EncryptionRequired)
        );
        assert_eq!(
            request.plain_upload_refusal(now()),
            Some(DomainError::EncryptionRequired)
        );
        let sealed = SessionSpec {
            encryption: Some(sample_encryption(true)),
            ..plain.clone()
        };
        let share = request.session_share(&sealed, window, now()).unwrap();
        assert_eq!(share.filename.as_str(), crate::share::ENCRYPTED_FILENAME);
        assert_eq!(share.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(share.encryption, sealed.encryption);
        let named = SessionSpec {
            filename_hint: Some("secret-plan.pdf".into()),
            ..sealed.clone()
        };
        let not_to_requester = SessionSpec {
            encryption: Some(sample_encryption(false)),
            ..plain.clone()
        };
        for refused in [named, not_to_requester] {
            assert_eq!(
                request
                    .session_share(&refused, window, now())
                    .unwrap_err()
                    .code(),
                "invalid_encryption"
            );
        }
        let named = RequestSpec {
            filename: Some("contract.pdf".into()),
            encrypted: true,
            ..RequestSpec::default()
        };
        let error = RequestPolicy::default()
            .new_request(&named, &SharePolicy::default(), KeyId::generate(), now())
            .unwrap_err();
        assert_eq!(error.code(), "invalid_encryption");
        // A plain request has no key to encrypt to.
        request.encrypted = false;
        assert_eq!(request.plain_upload_refusal(now()), None);
        assert_eq!(
            request
                .session_share(&sealed, window, now())
                .unwrap_err()
                .code(),
            "invalid_encryption"
        );
    }
}
