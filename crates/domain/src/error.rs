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
    #[error("malformed id")]
    InvalidId,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the upload was shorter than the declared size ({expected} bytes, got {actual})")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the uploaded bytes do not match the declared sha256")]
    ChecksumMismatch,
    #[error("the upload exceeds the allowed size of {limit} bytes")]
    TooLarge { limit: u64 },

    #[error("missing credentials: send Authorization: Bearer KEYID.SECRET or a signed request")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("request signature does not match")]
    BadRequestSignature,
    #[error("request timestamp is outside the accepted window of ±300 s")]
    StaleTimestamp,
    #[error("this request signature was already used")]
    ReplayedSignature,

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
            InvalidId => "invalid_id",
            InvalidRequest(_) => "invalid_request",
            SizeMismatch { .. } => "size_mismatch",
            ChecksumMismatch => "checksum_mismatch",
            TooLarge { .. } => "too_large",
            MissingCredentials => "missing_credentials",
            InvalidCredentials => "invalid_credentials",
            BadRequestSignature => "bad_request_signature",
            StaleTimestamp => "stale_timestamp",
            ReplayedSignature => "replayed_signature",
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
            | InvalidId
            | InvalidRequest(_)
            | SizeMismatch { .. }
            | ChecksumMismatch => ErrorClass::BadInput,
            TooLarge { .. } => ErrorClass::TooLarge,
            MissingCredentials | InvalidCredentials | BadRequestSignature | StaleTimestamp
            | ReplayedSignature => ErrorClass::Unauthenticated,
            BadUrlSignature | UrlExpired | UploadExpired => ErrorClass::Forbidden,
            ShareNotFound | RequestNotFound | KeyNotFound | NotFound | ShareNotReady => {
                ErrorClass::NotFound
            }
            SlotUsed | KeyExists => ErrorClass::Conflict,
            ShareConsumed | ShareExpired | ShareRevoked | RequestExpired => ErrorClass::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case() {
        let samples = [
            DomainError::SlotUsed,
            DomainError::ShareConsumed,
            DomainError::TooLarge { limit: 1 },
            DomainError::SizeMismatch {
                expected: 2,
                actual: 1,
            },
        ];
        for error in samples {
            let code = error.code();
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
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
