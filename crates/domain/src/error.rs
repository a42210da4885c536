//! Every way a request can be refused by the rules, with a stable snake_case code.
//! The HTTP layer maps [`ErrorClass`] to a status code in exactly one place.

/// Broad outcome class of a refusal; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    BadInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    TooLarge,
    RateLimited,
    MethodNotAllowed,
    RangeNotSatisfiable,
    /// The resource exists but not in a form this client can use (an encrypted link fetched
    /// by a download tool, which never sends the key in the fragment).
    NotAcceptable,
    /// The service cannot take this now; the client may retry later.
    Unavailable,
    /// The storage is full.
    InsufficientStorage,
    /// Our fault; nothing the client can change.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid filename: {0}")]
    InvalidFilename(&'static str),
    #[error("invalid size: {0}")]
    InvalidSize(String),
    #[error("invalid expiry: {0}")]
    InvalidExpiry(String),
    #[error("max_downloads must be between 1 and {0}")]
    InvalidMaxDownloads(u32),
    #[error("invalid content type")]
    InvalidContentType,
    #[error("sha256 must be 64 hexadecimal characters")]
    InvalidSha256,
    /// A share's or request's `note`, or a request's `from` (the message says which).
    #[error("{0}")]
    InvalidNote(&'static str),
    #[error("malformed id")]
    InvalidId,
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    #[error("a part of the URL path is not valid (percent-encoded UTF-8 expected)")]
    InvalidPath,
    #[error("invalid query parameter: {0}")]
    InvalidQuery(String),
    #[error("key name must be 1-100 printable characters")]
    InvalidKeyName,
    #[error("the master secret must be 64 hexadecimal characters")]
    InvalidMasterSecret,
    #[error("the upload was interrupted: {0}")]
    UploadInterrupted(String),
    #[error("the reported parts were refused: {0}")]
    InvalidParts(String),
    #[error("no complete upload has been received for this share yet")]
    NothingUploaded,
    #[error("this share has no unfinished multipart upload")]
    NotMultipart,
    #[error("the parts must be listed in ascending order, each once")]
    PartOutOfOrder,
    #[error("part {0} was never uploaded (parts are numbered 1..n without gaps)")]
    PartMissing(u16),
    #[error("part {0} already holds other bytes; an upload cannot replace a stored part")]
    PartConflict(u16),
    #[error("this part would go past the upload's size of {limit} bytes")]
    PartBeyondSize { limit: u64 },
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("the upload was shorter than the declared size ({expected} bytes, got {actual})")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the uploaded bytes do not match the declared sha256")]
    ChecksumMismatch,
    #[error("the upload exceeds the allowed size of {limit} bytes")]
    TooLarge { limit: u64 },

    #[error("missing credentials: send Authorization: Bearer KEYID.SECRET or a signed request")]
    MissingCredentials,
    /// One text for every cause (unknown id, revoked key, wrong secret, malformed token), so
    /// the answer tells a prober nothing about which key ids exist.
    #[error(
        "invalid credentials: not an active key of this server (keys are made on the server \
         with `once keys create`)"
    )]
    InvalidCredentials,
    #[error("request signature does not match")]
    BadRequestSignature,
    #[error("request timestamp is outside the accepted window of ±300 s")]
    StaleTimestamp,
    #[error("this request signature was already used")]
    ReplayedSignature,
    #[error("the browser session is not valid; sign in again")]
    SessionInvalid,
    #[error("the browser session has expired; sign in again")]
    SessionExpired,
    #[error("this request did not come from a page of this server (CSRF check failed)")]
    CsrfRejected,

    #[error("the URL signature is invalid")]
    BadUrlSignature,
    #[error("the URL has expired")]
    UrlExpired,
    #[error("the upload window for this ticket has closed")]
    UploadExpired,

    #[error("no such share")]
    ShareNotFound,
    #[error("no such upload request")]
    RequestNotFound,
    #[error("no such key")]
    KeyNotFound,
    #[error("not found")]
    NotFound,

    #[error("this upload slot has already received its file")]
    SlotUsed,
    #[error("a key with this id already exists")]
    KeyExists,

    #[error("this share has already been downloaded")]
    ShareConsumed,
    #[error("this share has expired")]
    ShareExpired,
    #[error("this share was revoked by its owner")]
    ShareRevoked,
    #[error("this share is not available yet: its upload has not completed")]
    ShareNotReady,
    #[error("this upload request has expired")]
    RequestExpired,

    #[error("no such route")]
    RouteNotFound,
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("the requested range is outside the file")]
    RangeNotSatisfiable,
    #[error("this upload URL already has {0} uploads running; try again when they finish")]
    UploadsInFlight(u32),
    /// Over a key's quota (shares per day, bytes stored): the text says which.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Over a request rate (per key, or per client address on share and upload links).
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the server's space for unfinished uploads is taken; try again later")]
    UploadSpaceExhausted,
    #[error("the server's storage is full; try again later")]
    StorageFull,
    #[error("the metadata store is unavailable, try again")]
    StoreUnavailable,
    #[error("invalid encryption: {0}")]
    InvalidEncryption(&'static str),
    #[error("this share is end-to-end encrypted: send X-Once-Proof (see docs/encryption.md)")]
    KeyRequired,
    #[error("the claim challenge has expired or is not valid; fetch /s/{{id}}/seal again")]
    ChallengeExpired,
    #[error("the claim proof does not match this share's key (wrong link or wrong password)")]
    WrongKey,
    #[error(
        "this link is end-to-end encrypted; its key is in the part after '#', which download \
         tools never send: use `once get 'LINK'` or a browser"
    )]
    EncryptedLink,
    #[error("this upload request takes only end-to-end encrypted uploads")]
    EncryptionRequired,
    #[error("this share is not end-to-end encrypted")]
    NotEncrypted,
    #[error("internal error")]
    Internal,
}

impl DomainError {
    /// The stable machine-readable code documented in `docs/api.md`.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            InvalidFilename(_) => "invalid_filename",
            InvalidSize(_) => "invalid_size",
            InvalidExpiry(_) => "invalid_expiry",
            InvalidMaxDownloads(_) => "invalid_max_downloads",
            InvalidContentType => "invalid_content_type",
            InvalidSha256 => "invalid_sha256",
            InvalidNote(_) => "invalid_note",
            InvalidId => "invalid_id",
            InvalidJson(_) => "invalid_json",
            InvalidHeader(_) => "invalid_header",
            InvalidPath => "invalid_path",
            InvalidQuery(_) => "invalid_query",
            InvalidKeyName => "invalid_key_name",
            InvalidMasterSecret => "invalid_master_secret",
            UploadInterrupted(_) => "upload_interrupted",
            InvalidParts(_) => "invalid_parts",
            NothingUploaded => "nothing_uploaded",
            NotMultipart => "not_multipart",
            PartOutOfOrder => "part_out_of_order",
            PartMissing(_) => "part_missing",
            PartConflict(_) => "part_conflict",
            PartBeyondSize { .. } => "part_beyond_size",
            InvalidPart(_) => "invalid_part",
            SizeMismatch { .. } => "size_mismatch",
            ChecksumMismatch => "checksum_mismatch",
            TooLarge { .. } => "too_large",
            MissingCredentials => "missing_credentials",
            InvalidCredentials => "invalid_credentials",
            BadRequestSignature => "bad_request_signature",
            StaleTimestamp => "stale_timestamp",
            ReplayedSignature => "replayed_signature",
            SessionInvalid => "session_invalid",
            SessionExpired => "session_expired",
            CsrfRejected => "csrf_rejected",
            BadUrlSignature => "bad_url_signature",
            UrlExpired => "url_expired",
            UploadExpired => "upload_expired",
            ShareNotFound => "share_not_found",
            RequestNotFound => "request_not_found",
            KeyNotFound => "key_not_found",
            NotFound => "not_found",
            SlotUsed => "slot_used",
            KeyExists => "key_exists",
            ShareConsumed => "share_consumed",
            ShareExpired => "share_expired",
            ShareRevoked => "share_revoked",
            ShareNotReady => "share_not_ready",
            RequestExpired => "request_expired",
            RouteNotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            RangeNotSatisfiable => "range_not_satisfiable",
            UploadsInFlight(_) => "uploads_in_flight",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded(_) => "quota_exceeded",
            UploadSpaceExhausted => "upload_space_exhausted",
            StorageFull => "storage_full",
            StoreUnavailable => "store_unavailable",
            InvalidEncryption(_) => "invalid_encryption",
            KeyRequired => "key_required",
            ChallengeExpired => "challenge_expired",
            WrongKey => "wrong_key",
            EncryptedLink => "encrypted_link",
            EncryptionRequired => "encryption_required",
            NotEncrypted => "not_encrypted",
            Internal => "internal",
        }
    }

    pub fn class(&self) -> ErrorClass {
        use DomainError::*;
        match self {
            InvalidFilename(_)
            | InvalidSize(_)
            | InvalidExpiry(_)
            | InvalidMaxDownloads(_)
            | InvalidContentType
            | InvalidSha256
            | InvalidNote(_)
            | InvalidId
            | InvalidJson(_)
            | InvalidHeader(_)
            | InvalidPath
            | InvalidQuery(_)
            | InvalidKeyName
            | InvalidMasterSecret
            | UploadInterrupted(_)
            | InvalidParts(_)
            | NothingUploaded
            | NotMultipart
            | PartOutOfOrder
            | PartMissing(_)
            | InvalidPart(_)
            | SizeMismatch { .. }
            | ChecksumMismatch
            | InvalidEncryption(_)
            | EncryptionRequired => ErrorClass::BadInput,
            KeyRequired | ChallengeExpired | WrongKey => ErrorClass::Unauthenticated,
            EncryptedLink => ErrorClass::NotAcceptable,
            NotEncrypted => ErrorClass::NotFound,
            TooLarge { .. } | PartBeyondSize { .. } => ErrorClass::TooLarge,
            MissingCredentials | InvalidCredentials | BadRequestSignature | StaleTimestamp
            | ReplayedSignature | SessionInvalid | SessionExpired => ErrorClass::Unauthenticated,
            BadUrlSignature | UrlExpired | UploadExpired | CsrfRejected | QuotaExceeded(_) => {
                ErrorClass::Forbidden
            }
            ShareNotFound | RequestNotFound | KeyNotFound | NotFound | ShareNotReady
            | RouteNotFound => ErrorClass::NotFound,
            SlotUsed | KeyExists | PartConflict(_) => ErrorClass::Conflict,
            ShareConsumed | ShareExpired | ShareRevoked | RequestExpired => ErrorClass::Gone,
            MethodNotAllowed => ErrorClass::MethodNotAllowed,
            RangeNotSatisfiable => ErrorClass::RangeNotSatisfiable,
            UploadsInFlight(_) | RateLimited { .. } => ErrorClass::RateLimited,
            UploadSpaceExhausted | StoreUnavailable => ErrorClass::Unavailable,
            StorageFull => ErrorClass::InsufficientStorage,
            Internal => ErrorClass::Internal,
        }
    }
}

impl DomainError {
    /// One value of every variant, for documentation checks: the match below has no wildcard,
    /// so a new variant does not compile until it is listed here too.
    pub fn one_of_each() -> Vec<DomainError> {
        use DomainError::*;
        let all = vec![
            InvalidFilename("x"),
            InvalidSize(String::new()),
            InvalidExpiry(String::new()),
            InvalidMaxDownloads(1),
            InvalidContentType,
            InvalidSha256,
            InvalidNote(""),
            InvalidId,
            InvalidJson(String::new()),
            InvalidHeader(String::new()),
            InvalidPath,
            InvalidQuery(String::new()),
            InvalidKeyName,
            InvalidMasterSecret,
            UploadInterrupted(String::new()),
            InvalidParts(String::new()),
            NothingUploaded,
            NotMultipart,
            PartOutOfOrder,
            PartMissing(1),
            PartConflict(1),
            PartBeyondSize { limit: 1 },
            InvalidPart(String::new()),
            SizeMismatch {
                expected: 2,
                actual: 1,
            },
            ChecksumMismatch,
            TooLarge { limit: 1 },
            MissingCredentials,
            InvalidCredentials,
            BadRequestSignature,
            StaleTimestamp,
            ReplayedSignature,
            SessionInvalid,
            SessionExpired,
            CsrfRejected,
            BadUrlSignature,
            UrlExpired,
            UploadExpired,
            ShareNotFound,
            RequestNotFound,
            KeyNotFound,
            NotFound,
            SlotUsed,
            KeyExists,
            ShareConsumed,
            ShareExpired,
            ShareRevoked,
            ShareNotReady,
            RequestExpired,
            RouteNotFound,
            MethodNotAllowed,
            RangeNotSatisfiable,
            UploadsInFlight(2),
            RateLimited {
                retry_after_secs: 1,
            },
            QuotaExceeded(String::new()),
            UploadSpaceExhausted,
            StorageFull,
            StoreUnavailable,
            InvalidEncryption(""),
            KeyRequired,
            ChallengeExpired,
            WrongKey,
            EncryptedLink,
            EncryptionRequired,
            NotEncrypted,
            Internal,
        ];
        for error in &all {
            // Exhaustiveness guard (see above).
            match error {
                InvalidFilename(_)
                | InvalidSize(_)
                | InvalidExpiry(_)
                | InvalidMaxDownloads(_)
                | InvalidContentType
                | InvalidSha256
                | InvalidNote(_)
                | InvalidId
                | InvalidJson(_)
                | InvalidHeader(_)
                | InvalidPath
                | InvalidQuery(_)
                | InvalidKeyName
                | InvalidMasterSecret
                | UploadInterrupted(_)
                | InvalidParts(_)
                | NothingUploaded
                | NotMultipart
                | PartOutOfOrder
                | PartMissing(_)
                | PartConflict(_)
                | PartBeyondSize { .. }
                | InvalidPart(_)
                | SizeMismatch { .. }
                | ChecksumMismatch
                | TooLarge { .. }
                | MissingCredentials
                | InvalidCredentials
                | BadRequestSignature
                | StaleTimestamp
                | ReplayedSignature
                | SessionInvalid
                | SessionExpired
                | CsrfRejected
                | BadUrlSignature
                | UrlExpired
                | UploadExpired
                | ShareNotFound
                | RequestNotFound
                | KeyNotFound
                | NotFound
                | SlotUsed
                | KeyExists
                | ShareConsumed
                | ShareExpired
                | ShareRevoked
                | ShareNotReady
                | RequestExpired
                | RouteNotFound
                | MethodNotAllowed
                | RangeNotSatisfiable
                | UploadsInFlight(_)
                | RateLimited { .. }
                | QuotaExceeded(_)
                | UploadSpaceExhausted
                | StorageFull
                | StoreUnavailable
                | InvalidEncryption(_)
                | KeyRequired
                | ChallengeExpired
                | WrongKey
                | EncryptedLink
                | EncryptionRequired
                | NotEncrypted
                | Internal => {}
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case() {
        for error in DomainError::one_of_each() {
            let code = error.code();
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
        }
    }

    #[test]
    fn consumed_share_is_gone_and_used_slot_is_conflict() {
        assert_eq!(DomainError::ShareConsumed.class(), ErrorClass::Gone);
        assert_eq!(DomainError::SlotUsed.class(), ErrorClass::Conflict);
        assert_eq!(DomainError::UploadExpired.class(), ErrorClass::Forbidden);
    }
}
