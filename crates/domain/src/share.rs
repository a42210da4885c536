//! The share state machine.
//!
//! ```text
//! Pending --first complete upload--> Ready --claims use up downloads_left--> (consumed)
//!    |                                 |  \--expires_at passes--> (expired)
//!    \--upload window closes, reaped    \--owner revokes--> Revoked
//! any of them --reaper removes the bytes--> Gone (a tombstone, so the link keeps answering 410)
//! ```
//! Consumed and expired are not stored states: they follow from the counters and clocks, so a
//! claim can be decided by one conditional write in the store.

use std::time::Duration;

use crate::{
    BlobKey, DomainError, Encryption, Filename, Instant, KeyId, Note, RequestId, ShareId,
    UploadToken,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// Waiting for its one upload.
    Pending,
    /// Published: claimable while downloads are left and it has not expired.
    Ready,
    /// Revoked by the owner; bytes are deleted by the reaper.
    Revoked,
    /// The reaper removed the bytes; the row stays as a tombstone.
    Gone,
}

impl ShareState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareState::Pending => "pending",
            ShareState::Ready => "ready",
            ShareState::Revoked => "revoked",
            ShareState::Gone => "gone",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => ShareState::Pending,
            "ready" => ShareState::Ready,
            "revoked" => ShareState::Revoked,
            "gone" => ShareState::Gone,
            _ => return None,
        })
    }
}

/// What a recipient would find right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    AwaitingUpload,
    Available,
    Consumed,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn parse_hex(text: &str) -> Result<Self, DomainError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| DomainError::InvalidSha256)?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: ShareId,
    /// The key that created the share (or asked for it through an upload request).
    pub owner: Option<KeyId>,
    pub filename: Filename,
    pub content_type: String,
    /// Declared size before the upload (None for a streamed upload of unknown length), the
    /// exact size once published.
    pub size: Option<u64>,
    pub sha256: Option<Sha256Digest>,
    pub max_downloads: u32,
    pub downloads_left: u32,
    pub state: ShareState,
    pub created_at: Instant,
    pub expires_at: Instant,
    /// The upload ticket's own clock, separate from the share's expiry.
    pub upload_expires_at: Instant,
    pub published_at: Option<Instant>,
    /// End of the resume window opened by the latest claim.
    pub lease_until: Option<Instant>,
    pub blob_key: Option<BlobKey>,
    /// The object version to serve, where the storage keeps versions instead of refusing
    /// overwrites (S3 versioning mode): the first complete upload.
    pub blob_version: Option<String>,
    pub request_id: Option<RequestId>,
    pub upload_attempts: u32,
    pub preview_hits: u32,
    /// The storage's id of an unfinished multipart upload (an S3 upload id, or the embedded
    /// store's staging area), so the upload can be completed or, when abandoned, aborted by
    /// the reaper.
    pub upload_session: Option<String>,
    /// The secret that names this upload in part and completion URLs, so whoever uploads
    /// (say, to someone else's request) never learns the share's id, which is its link.
    pub upload_token: Option<UploadToken>,
    /// The part size of the multipart upload, fixed when it began.
    pub part_size: Option<u64>,
    /// What an archive holds (JSON, as the client described it), for the landing page.
    pub contents: Option<String>,
    /// The sender's message to the recipient, for the landing page.
    pub note: Option<Note>,
    /// Set for an end-to-end encrypted share: the public parameters that gate its claims and
    /// let a recipient derive the keys. Its `filename` and `content_type` are then
    /// placeholders ([`ENCRYPTED_FILENAME`], [`DEFAULT_CONTENT_TYPE`]).
    pub encryption: Option<Encryption>,
}

impl Share {
    pub fn availability(&self, now: Instant) -> Availability {
        match self.state {
            ShareState::Revoked => Availability::Revoked,
            ShareState::Pending if now >= self.upload_expires_at => Availability::Expired,
            ShareState::Pending => Availability::AwaitingUpload,
            _ if self.downloads_left == 0 => Availability::Consumed,
            _ if now >= self.expires_at => Availability::Expired,
            // Gone with downloads left before its expiry: the reaper only takes the bytes of a
            // published share early when it was revoked; one never published ran out of time
            // for its upload.
            ShareState::Gone if self.published_at.is_some() => Availability::Revoked,
            ShareState::Gone => Availability::Expired,
            ShareState::Ready => Availability::Available,
        }
    }

    /// Why a claim of this share would be refused, if it would.
    pub fn claim_refusal(&self, now: Instant) -> Option<DomainError> {
        match self.availability(now) {
            Availability::Available => None,
            Availability::AwaitingUpload => Some(DomainError::ShareNotReady),
            Availability::Consumed => Some(DomainError::ShareConsumed),
            Availability::Expired => Some(DomainError::ShareExpired),
            Availability::Revoked => Some(DomainError::ShareRevoked),
        }
    }

    /// Published, past its expiry, and never downloaded: what `share.expired_unread` tells.
    pub fn expired_unread(&self, now: Instant) -> bool {
        self.state == ShareState::Ready
            && now >= self.expires_at
            && self.downloads_left == self.max_downloads
    }

    /// Why an upload to this share's ticket would be refused, if it would.
    pub fn upload_refusal(&self, now: Instant) -> Option<DomainError> {
        match self.state {
            ShareState::Pending if now >= self.upload_expires_at => {
                Some(DomainError::UploadExpired)
            }
            ShareState::Pending => None,
            _ => Some(DomainError::SlotUsed),
        }
    }

    pub fn lease_active(&self, now: Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }
}

/// What a client asks for when it creates a share.
#[derive(Debug, Clone, Default)]
pub struct ShareSpec {
    pub filename: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub max_downloads: Option<u32>,
    pub expires_in: Option<Duration>,
    /// How long the upload ticket stays valid; at most the policy's `upload_window`.
    pub upload_expires_in: Option<Duration>,
    pub sha256: Option<String>,
    /// The sender's message to the recipient; blank means none.
    pub note: Option<String>,
    /// End-to-end encryption (checked by [`Encryption::parse`]); `filename` must then be
    /// empty and `content_type` and `note` absent: the real ones travel sealed.
    pub encryption: Option<Encryption>,
}

/// Server-side limits that every new share is checked against.
#[derive(Debug, Clone)]
pub struct SharePolicy {
    pub default_expires_in: Duration,
    pub max_expires_in: Duration,
    pub max_downloads_limit: u32,
    pub max_size: u64,
    /// The default and the longest lifetime of an upload ticket.
    pub upload_window: Duration,
}

impl Default for SharePolicy {
    fn default() -> Self {
        Self {
            default_expires_in: Duration::from_secs(7 * 24 * 3600),
            max_expires_in: Duration::from_secs(30 * 24 * 3600),
            max_downloads_limit: 1000,
            max_size: 10 * 1024 * 1024 * 1024,
            upload_window: Duration::from_secs(600),
        }
    }
}

pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// The name the server keeps for every end-to-end encrypted share; the real one is sealed.
pub const ENCRYPTED_FILENAME: &str = "encrypted";

/// Content types are echoed in a response header, so only a plain `type/subtype[; params]`
/// made of visible ASCII is accepted.
pub fn validate_content_type(raw: Option<&str>) -> Result<String, DomainError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(DEFAULT_CONTENT_TYPE.to_owned());
    };
    let plausible = raw.len() <= 255
        && raw.contains('/')
        && raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if plausible {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::InvalidContentType)
    }
}

/// `now + duration`, saturating at the last representable instant: durations may come from a
/// client or a config file, and no number there may panic the server.
pub fn add(now: Instant, duration: Duration) -> Instant {
    let seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
    now.saturating_add(time::Duration::seconds(seconds))
}

impl SharePolicy {
    pub fn check_expires_in(&self, expires_in: Option<Duration>) -> Result<Duration, DomainError> {
        let expires_in = expires_in.unwrap_or(self.default_expires_in);
        if expires_in.is_zero() {
            return Err(DomainError::InvalidExpiry(
                "expires_in must be at least 1 second".into(),
            ));
        }
        if expires_in > self.max_expires_in {
            return Err(DomainError::InvalidExpiry(format!(
                "expires_in must be at most {} seconds",
                self.max_expires_in.as_secs()
            )));
        }
        Ok(expires_in)
    }

    /// A client may ask for a shorter upload window than the default, never a longer one.
    pub fn check_upload_expires_in(
        &self,
        upload_expires_in: Option<Duration>,
    ) -> Result<Duration, DomainError> {
        match upload_expires_in {
            None => Ok(self.upload_window),
            Some(window) if window.is_zero() => Err(DomainError::InvalidExpiry(
                "upload_expires_in must be at least 1 second".into(),
            )),
            Some(window) if window > self.upload_window => {
                Err(DomainError::InvalidExpiry(format!(
                    "upload_expires_in must be at most {} seconds",
                    self.upload_window.as_secs()
                )))
            }
            Some(window) => Ok(window),
        }
    }

    pub fn check_max_downloads(&self, max_downloads: Option<u32>) -> Result<u32, DomainError> {
        match max_downloads.unwrap_or(1) {
            n if n >= 1 && n <= self.max_downloads_limit => Ok(n),
            _ => Err(DomainError::InvalidMaxDownloads(self.max_downloads_limit)),
        }
    }

    pub fn check_size(&self, size: Option<u64>) -> Result<(), DomainError> {
        match size {
            Some(size) if size > self.max_size => Err(DomainError::TooLarge {
                limit: self.max_size,
            }),
            _ => Ok(()),
        }
    }

    /// Validates a request and builds the pending share it describes.
    pub fn new_share(
        &self,
        spec: &ShareSpec,
        owner: Option<KeyId>,
        now: Instant,
    ) -> Result<Share, DomainError> {
        let (filename, content_type, note) = match &spec.encryption {
            None => (
                Filename::parse(&spec.filename)?,
                validate_content_type(spec.content_type.as_deref())?,
                Note::parse_optional(spec.note.as_deref())?,
            ),
            Some(_) => {
                if !spec.filename.is_empty() || spec.content_type.is_some() || spec.note.is_some() {
                    return Err(DomainError::InvalidEncryption(
                        "an encrypted share has no plaintext filename, content_type or note",
                    ));
                }
                (encrypted_filename(), DEFAULT_CONTENT_TYPE.to_owned(), None)
            }
        };
        self.check_size(spec.size)?;
        let max_downloads = self.check_max_downloads(spec.max_downloads)?;
        let expires_in = self.check_expires_in(spec.expires_in)?;
        let upload_window = self.check_upload_expires_in(spec.upload_expires_in)?;
        let sha256 = spec
            .sha256
            .as_deref()
            .map(Sha256Digest::parse_hex)
            .transpose()?;
        Ok(Share {
            id: ShareId::generate(),
            owner,
            filename,
            content_type,
            size: spec.size,
            sha256,
            max_downloads,
            downloads_left: max_downloads,
            state: ShareState::Pending,
            created_at: now,
            expires_at: add(now, expires_in),
            upload_expires_at: add(now, upload_window),
            published_at: None,
            lease_until: None,
            blob_key: None,
            blob_version: None,
            request_id: None,
            upload_attempts: 0,
            preview_hits: 0,
            upload_session: None,
            upload_token: None,
            part_size: None,
            contents: None,
            note,
            encryption: spec.encryption.clone(),
        })
    }
}

/// [`ENCRYPTED_FILENAME`] as a [`Filename`].
pub fn encrypted_filename() -> Filename {
    Filename::parse(ENCRYPTED_FILENAME).expect("a valid file name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Instant {
        time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn spec() -> ShareSpec {
        ShareSpec {
            filename: "report.pdf".into(),
            size: Some(10),
            ..ShareSpec::default()
        }
    }

    fn ready_share() -> Share {
        let mut share = SharePolicy::default()
            .new_share(&spec(), None, now())
            .unwrap();
        share.state = ShareState::Ready;
        share
    }

    #[test]
    fn a_tombstone_still_says_why_the_link_is_dead() {
        let mut revoked = ready_share();
        revoked.published_at = Some(now());
        revoked.state = ShareState::Gone;
        assert_eq!(revoked.availability(now()), Availability::Revoked);
        assert_eq!(
            revoked.claim_refusal(now()),
            Some(DomainError::ShareRevoked)
        );
        let mut used = revoked.clone();
        used.downloads_left = 0;
        assert_eq!(used.availability(now()), Availability::Consumed);
        let later = revoked.expires_at + time::Duration::SECOND;
        assert_eq!(revoked.availability(later), Availability::Expired);
        let mut never_uploaded = ready_share();
        never_uploaded.published_at = None;
        never_uploaded.state = ShareState::Gone;
        assert_eq!(never_uploaded.availability(now()), Availability::Expired);
    }

    #[test]
    fn new_share_is_pending_single_use_with_default_expiry() {
        let share = SharePolicy::default()
            .new_share(&spec(), None, now())
            .unwrap();
        assert_eq!(share.state, ShareState::Pending);
        assert_eq!(share.downloads_left, 1);
        assert_eq!(share.expires_at, now() + time::Duration::days(7));
        assert_eq!(share.upload_expires_at, now() + time::Duration::minutes(10));
        assert_eq!(share.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(share.availability(now()), Availability::AwaitingUpload);
    }

    #[test]
    fn bad_specs_are_refused_with_their_own_codes() {
        let policy = SharePolicy::default();
        let cases = [
            (
                ShareSpec {
                    filename: "..".into(),
                    ..spec()
                },
                "invalid_filename",
            ),
            (
                ShareSpec {
                    max_downloads: Some(0),
                    ..spec()
                },
                "invalid_max_downloads",
            ),
            (
                ShareSpec {
                    expires_in: Some(Duration::ZERO),
                    ..spec()
                },
                "invalid_expiry",
            ),
            (
                ShareSpec {
                    expires_in: Some(Duration::from_secs(365 * 86400)),
                    ..spec()
                },
                "invalid_expiry",
            ),
            (
                ShareSpec {
                    size: Some(u64::MAX),
                    ..spec()
                },
                "too_large",
            ),
            (
                ShareSpec {
                    sha256: Some("zz".into()),
                    ..spec()
                },
                "invalid_sha256",
            ),
            (
                ShareSpec {
                    content_type: Some("text/html\r\nX: y".into()),
                    ..spec()
                },
                "invalid_content_type",
            ),
            (
                ShareSpec {
                    note: Some("x".repeat(1001)),
                    ..spec()
                },
                "invalid_note",
            ),
        ];
        for (case, code) in cases {
            assert_eq!(
                policy.new_share(&case, None, now()).unwrap_err().code(),
                code
            );
        }
    }

    #[test]
    fn a_share_keeps_the_senders_note_and_a_blank_one_is_none() {
        let policy = SharePolicy::default();
        let with_note = ShareSpec {
            note: Some("  For the meeting on Friday.\r\nThanks!  ".into()),
            ..spec()
        };
        let share = policy.new_share(&with_note, None, now()).unwrap();
        assert_eq!(
            share.note.as_ref().map(Note::as_str),
            Some("For the meeting on Friday.\nThanks!")
        );
        let blank = ShareSpec {
            note: Some(" \n ".into()),
            ..spec()
        };
        assert_eq!(policy.new_share(&blank, None, now()).unwrap().note, None);
        assert_eq!(policy.new_share(&spec(), None, now()).unwrap().note, None);
    }

    #[test]
    fn ready_share_is_claimable_until_used_up_or_expired() {
        let mut share = ready_share();
        assert_eq!(share.claim_refusal(now()), None);
        share.downloads_left = 0;
        assert_eq!(share.claim_refusal(now()), Some(DomainError::ShareConsumed));
        let mut share = ready_share();
        let later = share.expires_at;
        assert_eq!(share.claim_refusal(later), Some(DomainError::ShareExpired));
        share.state = ShareState::Revoked;
        assert_eq!(share.claim_refusal(now()), Some(DomainError::ShareRevoked));
    }

    #[test]
    fn upload_slot_is_used_once_and_closes_on_its_own_clock() {
        let mut share = SharePolicy::default()
            .new_share(&spec(), None, now())
            .unwrap();
        assert_eq!(share.upload_refusal(now()), None);
        assert_eq!(
            share.upload_refusal(share.upload_expires_at),
            Some(DomainError::UploadExpired)
        );
        share.state = ShareState::Ready;
        assert_eq!(share.upload_refusal(now()), Some(DomainError::SlotUsed));
    }

    #[test]
    fn lease_is_active_only_before_its_end() {
        let mut share = ready_share();
        assert!(!share.lease_active(now()));
        share.lease_until = Some(now() + time::Duration::minutes(5));
        assert!(share.lease_active(now()));
        assert!(!share.lease_active(now() + time::Duration::minutes(5)));
    }

    #[test]
    fn a_client_may_shorten_the_upload_window_but_not_extend_it() {
        let policy = SharePolicy::default();
        let short = policy
            .new_share(
                &ShareSpec {
                    upload_expires_in: Some(Duration::from_secs(30)),
                    ..spec()
                },
                None,
                now(),
            )
            .unwrap();
        assert_eq!(short.upload_expires_at, now() + time::Duration::seconds(30));
        for refused in [0, 601] {
            let error = policy
                .new_share(
                    &ShareSpec {
                        upload_expires_in: Some(Duration::from_secs(refused)),
                        ..spec()
                    },
                    None,
                    now(),
                )
                .unwrap_err();
            assert_eq!(error.code(), "invalid_expiry", "{refused} s");
        }
    }

    #[test]
    fn adding_a_huge_duration_saturates_instead_of_panicking() {
        let far = add(now(), Duration::MAX);
        assert!(far > now() + time::Duration::days(365 * 1000));
        assert_eq!(add(far, Duration::from_secs(1)), far);
        assert_eq!(
            add(now(), Duration::from_secs(60)),
            now() + time::Duration::minutes(1)
        );
    }

    #[test]
    fn an_encrypted_share_keeps_no_plaintext_name_type_or_note() {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let encryption = Encryption::parse(
            crate::encryption::SCHEME_V1,
            &b64(&[1; 32]),
            &b64(&[2; 40]),
            None,
            None,
            None,
        )
        .unwrap();
        let sealed = ShareSpec {
            filename: String::new(),
            encryption: Some(encryption.clone()),
            ..spec()
        };
        let policy = SharePolicy::default();
        let share = policy.new_share(&sealed, None, now()).unwrap();
        assert_eq!(share.filename.as_str(), ENCRYPTED_FILENAME);
        assert_eq!(share.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(share.encryption, Some(encryption));
        for leaky in [
            ShareSpec {
                filename: "report.pdf".into(),
                ..sealed.clone()
            },
            ShareSpec {
                content_type: Some("application/pdf".into()),
                ..sealed.clone()
            },
            ShareSpec {
                note: Some("the slides".into()),
                ..sealed.clone()
            },
        ] {
            let error = policy.new_share(&leaky, None, now()).unwrap_err();
            assert_eq!(error.code(), "invalid_encryption");
        }
    }
}
