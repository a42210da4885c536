//! The pure core of `once`: identifiers, the share and upload-request state machines, expiry
//! rules, URL/request signing and the error kinds every other layer maps from.
//!
//! Nothing here performs I/O (apart from drawing randomness for new ids and secrets), so every
//! rule can be unit-tested in isolation and reused unchanged by every store and front end.

pub mod audit;
pub mod encryption;
pub mod error;
pub mod event;
pub mod filename;
pub mod id;
pub mod key;
pub mod note;
pub mod parts;
pub mod preview;
pub mod quota;
pub mod range;
pub mod request;
pub mod session;
pub mod share;
pub mod signing;

pub use audit::{AuditEvent, AuditKind, AuditSource};
pub use encryption::{ChallengeSigner, Encryption};
pub use error::{DomainError, ErrorClass};
pub use filename::Filename;
pub use id::{BlobKey, KeyId, RequestId, ShareId, UploadToken};
pub use key::{ApiToken, KeyRecord, KeySecret};
pub use note::{Note, RequesterName};
pub use parts::{PartLayout, ReportedPart, StoredPart};
pub use quota::{KeyUsage, Quotas};
pub use range::{RequestedRange, requested_range};
pub use request::{RequestPolicy, RequestSpec, SessionSpec, UploadRequest};
pub use session::{BrowserSession, SessionSigner};
pub use share::{Availability, Sha256Digest, Share, SharePolicy, ShareSpec, ShareState};
pub use signing::{MasterSecret, SecretSealer, UrlSigner};

/// Wall-clock instants are passed in explicitly so rules stay deterministic in tests.
pub type Instant = time::OffsetDateTime;

/// The current UTC time truncated to whole seconds: every store keeps unix seconds, so rules
/// computed before and after a round trip through a store must agree.
pub fn now() -> Instant {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}
