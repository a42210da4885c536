//! The HTTP wire contract of `once` (v1, see `docs/api.md`): every JSON body the API reads or
//! writes and every header name it defines, in one place that the server, the CLI and the
//! tests all compile against, so a renamed field breaks the build instead of a user.
//!
//! Times are RFC 3339 UTC on the wire, durations integer seconds, sizes integer bytes. Every
//! body derives `utoipa::ToSchema`: the server's OpenAPI document (`docs/openapi.json`) takes
//! its schemas from here. In answers a field without a value is `null`, not absent, so there
//! `#[schema(required = true)]` marks the optional fields the server always writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Header names (lower case, as HTTP/2 and `http::HeaderName` want them).
pub mod headers {
    /// HMAC authentication: the key id.
    pub const KEY: &str = "x-once-key";
    /// HMAC authentication: unix seconds.
    pub const TIMESTAMP: &str = "x-once-timestamp";
    /// HMAC authentication: base64 HMAC-SHA256 of the canonical request.
    pub const SIGNATURE: &str = "x-once-signature";
    /// The SHA-256 (hex) a streamed upload announces and is held to.
    pub const CONTENT_SHA256: &str = "x-once-content-sha256";
    /// On a claim: the SHA-256 (hex) the sender declared for the file.
    pub const SHA256: &str = "x-once-sha256";
    /// On `PUT /api/v1/files/…`: the id of the share created.
    pub const SHARE_ID: &str = "x-once-share-id";
    /// On an upload to a request URL from the browser page: the percent-encoded file name.
    pub const FILENAME: &str = "x-once-filename";
    /// transfer.sh-style share settings on `PUT /api/v1/files/…`.
    pub const MAX_DOWNLOADS: &str = "max-downloads";
    pub const MAX_DAYS: &str = "max-days";
    /// On `POST /s/{id}` of an end-to-end encrypted share: `CHALLENGE.PROOF`, the proof that
    /// the client holds the share's key (`docs/encryption.md`).
    pub const PROOF: &str = "x-once-proof";
}

/// Every route, spelled once: the templates the router matches (`{…}` is a path parameter)
/// and the builders that make the same paths for links.
pub mod routes {
    pub const SHARES: &str = "/api/v1/shares";
    pub const SHARE: &str = "/api/v1/shares/{id}";
    pub const SHARE_COMPLETE: &str = "/api/v1/shares/{id}/complete";
    pub const SHARE_PARTS: &str = "/api/v1/shares/{id}/parts";
    /// The curl-friendly one-step upload; its prefix is what the auth middleware recognises.
    pub const FILES_PREFIX: &str = "/api/v1/files/";
    pub const FILE: &str = "/api/v1/files/{filename}";
    pub const REQUESTS: &str = "/api/v1/requests";
    pub const REQUEST: &str = "/api/v1/requests/{id}";
    /// The caller's audit log.
    pub const AUDIT: &str = "/api/v1/audit";
    pub const SHARE_LINK: &str = "/s/{id}";
    pub const SHARE_LINK_NAMED: &str = "/s/{id}/{filename}";
    /// `GET`: what a client needs to open and claim an encrypted share ([`SealedShare`]).
    pub const SHARE_SEAL: &str = "/s/{id}/seal";
    pub const REQUEST_LINK: &str = "/r/{id}";
    pub const REQUEST_LINK_NAMED: &str = "/r/{id}/{filename}";
    /// An uploader's own multipart upload to a request (no key: the request URL and the
    /// upload's token are the capabilities).
    pub const REQUEST_UPLOADS: &str = "/r/{id}/uploads";
    pub const REQUEST_UPLOAD_PARTS: &str = "/r/{id}/uploads/{token}/parts";
    pub const REQUEST_UPLOAD_COMPLETE: &str = "/r/{id}/uploads/{token}/complete";
    /// The embedded store's signed upload and download URLs.
    pub const TICKET_UPLOAD: &str = "/b/up/{id}";
    pub const PART_UPLOAD: &str = "/b/part/{token}/{number}";
    pub const BLOB_DOWNLOAD: &str = "/b/dl/{blob_key}/{filename}";
    pub const HEALTH: &str = "/healthz";
    pub const READY: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    /// The OpenAPI document of all of the above (no key needed).
    pub const OPENAPI: &str = "/api/v1/openapi.json";
    /// The web app's sign-in form (`key=…`) and sign-out (`csrf=…`).
    pub const SESSION: &str = "/session";
    pub const SESSION_END: &str = "/session/end";

    pub fn share_complete(id: &str) -> String {
        format!("/api/v1/shares/{id}/complete")
    }

    pub fn share_parts(id: &str) -> String {
        format!("/api/v1/shares/{id}/parts")
    }

    pub fn share(id: &str) -> String {
        format!("/api/v1/shares/{id}")
    }

    pub fn request(id: &str) -> String {
        format!("/api/v1/requests/{id}")
    }

    pub fn file(escaped_filename: &str) -> String {
        format!("{FILES_PREFIX}{escaped_filename}")
    }

    pub fn share_link(id: &str) -> String {
        format!("/s/{id}")
    }

    pub fn share_seal(id: &str) -> String {
        format!("/s/{id}/seal")
    }

    pub fn request_link(id: &str) -> String {
        format!("/r/{id}")
    }

    pub fn ticket_upload(id: &str) -> String {
        format!("/b/up/{id}")
    }

    pub fn part_upload(token: &str, number: u16) -> String {
        format!("/b/part/{token}/{number}")
    }

    pub fn request_uploads(id: &str) -> String {
        format!("/r/{id}/uploads")
    }

    pub fn request_upload_parts(id: &str, token: &str) -> String {
        format!("/r/{id}/uploads/{token}/parts")
    }

    pub fn request_upload_complete(id: &str, token: &str) -> String {
        format!("/r/{id}/uploads/{token}/complete")
    }

    pub fn blob_download(blob_key: &str, escaped_filename: &str) -> String {
        format!("/b/dl/{blob_key}/{escaped_filename}")
    }
}

/// `POST /api/v1/shares`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub filename: String,
    /// Absent when the client does not know the size in advance (a pipe): the upload is then
    /// multipart, each part at most `part_size`, the whole at most the server's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downloads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What an archive holds, for the landing page and the owner's view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<ArchiveContents>,
    /// The sender's message to the recipient, shown on the landing page: plain text, at most
    /// 1000 characters; blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set for an end-to-end encrypted share: `size` and `sha256` are then the ciphertext's,
    /// and `filename` (may be empty), `content_type`, `contents` and `note` must be absent:
    /// they travel inside `sealed_meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<NewEncryption>,
}

/// How a share is encrypted end to end, as its sender (or an uploader to a request) tells the
/// server: only what the server needs to gate claims and what a recipient needs to derive the
/// keys. Binary values are URL-safe base64 without padding.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEncryption {
    /// `once-v1` (`docs/encryption.md`), the only format so far.
    pub scheme: String,
    /// `Ka` (32 bytes): the server checks claim proofs with it; it cannot decrypt anything.
    pub claim_key: String,
    /// The file's name, type, size, note and listing, sealed with `Km`.
    pub sealed_meta: String,
    /// Set when a password is part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordParams>,
    /// Uploads to an encrypted request: the uploader's ephemeral X25519 public key `E`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_key: Option<String>,
    /// Uploads to an encrypted request: the requester's X25519 public key `R` (from the
    /// request link's fragment), so the requester's client finds its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_key: Option<String>,
}

/// Argon2id parameters of a password-protected share (public: they are no secret).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordParams {
    /// 16 random bytes.
    pub salt: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// `GET /s/{id}/seal`: what a recipient needs to derive an encrypted share's keys, show its
/// name and prove it holds the key; consumes nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SealedShare {
    pub scheme: String,
    /// The ciphertext's size (absent only while an upload of unknown size is pending).
    #[schema(required = true)]
    pub size: Option<u64>,
    /// Plaintext bytes per record (65,536 in `once-v1`).
    pub record_size: u32,
    pub sealed_meta: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_key: Option<String>,
    /// Sign this with the claim key and send it back in [`headers::PROOF`].
    pub challenge: String,
    #[serde(with = "time::serde::rfc3339")]
    pub challenge_expires_at: OffsetDateTime,
    pub downloads_left: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The listing of an archive share (`once send A B DIR` packs them into one ZIP).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveContents {
    /// How many entries the archive has (files and directories).
    pub entries: u64,
    /// The bytes of all files together.
    pub total_size: u64,
    /// The first entries, in archive order (a long listing is cut short).
    pub listing: Vec<ArchiveEntry>,
    /// True when `listing` holds only the first of `entries`.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveEntry {
    /// `/`-separated; directories end with `/`.
    pub path: String,
    pub size: u64,
}

/// A share as its owner sees it (`GET /api/v1/shares/{id}`, and the answer to create and
/// complete, where `upload` says how to send the bytes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ShareView {
    pub id: String,
    pub url: String,
    pub filename: String,
    #[schema(required = true)]
    pub size: Option<u64>,
    pub content_type: String,
    #[schema(required = true)]
    pub sha256: Option<String>,
    /// `pending`, `ready` or `gone`.
    pub state: String,
    /// `awaiting_upload`, `available`, `consumed`, `expired` or `revoked`.
    pub availability: String,
    pub max_downloads: u32,
    pub downloads_left: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub upload_expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub lease_until: Option<OffsetDateTime>,
    pub upload_attempts: u32,
    pub preview_hits: u32,
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// End to end encrypted: `filename` and `content_type` are then placeholders and
    /// `size`/`sha256` the ciphertext's.
    #[serde(default)]
    #[schema(required = true)]
    pub encrypted: bool,
    /// The sender's message to the recipient.
    #[serde(default)]
    #[schema(required = true)]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<ArchiveContents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadTicket>,
    /// Uploads to this share's ticket after it had its file, refused and kept as evidence
    /// (only in `GET /api/v1/shares/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedUploadView>,
}

/// An upload refused because its ticket or request had been used, as its owner sees it. The
/// bytes are never served; `kept` says whether the server holds them aside (capped).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RefusedUploadView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub client_address: String,
    pub user_agent: String,
    /// The size it announced (`Content-Length`).
    #[schema(required = true)]
    pub declared_size: Option<u64>,
    /// The bytes that arrived before the server stopped reading.
    pub received_size: u64,
    /// SHA-256 (hex) of those bytes; null when none were read (parts that went elsewhere).
    #[schema(required = true)]
    pub sha256: Option<String>,
    /// More was sent than the server reads from a refused upload (`evidence_max_bytes`).
    pub truncated: bool,
    pub kept: bool,
}

/// One event of the audit log (`GET /api/v1/audit`): what happened (`kind`, e.g.
/// `share.claimed`), when, to which share or request, with which key, from which address and
/// user agent; `detail` holds a few `name=value` words (an error code, a size).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AuditEventView {
    /// The order events were written in; also the `after` cursor.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: String,
    #[serde(default)]
    pub share_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// `GET /api/v1/audit?share=&request=&since=&after=&limit=`: the caller's events, oldest
/// first; `next` is the `after` of the following page, absent on the last one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct AuditList {
    pub events: Vec<AuditEventView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /s/{id}` with `Accept: application/json` (what the landing page's script sends): the
/// claim's answer as data instead of a redirect, so the page can start the download and offer
/// to resume it while the lease lasts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ClaimTicket {
    pub download_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
    pub downloads_left: u32,
}

/// `GET /api/v1/shares?limit=N&after=CURSOR`: the owner's shares, newest first; `next` is the
/// cursor of the following page, absent on the last one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ShareList {
    pub shares: Vec<ShareView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// How to send the bytes of a new share: one request to `url` with `headers`, or the parts of
/// `multipart`; then, when `complete_url` is set, `POST` there to publish the share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct UploadTicket {
    pub method: String,
    /// Absent for a multipart ticket.
    #[schema(required = true)]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[schema(required = true)]
    pub complete_url: Option<String>,
    #[schema(required = true)]
    pub multipart: Option<MultipartTicket>,
}

/// A multipart upload: each part to its own URL, signed for its exact length, in any order
/// and a few at a time; then `POST complete_url` with the parts' ETags in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct MultipartTicket {
    /// Names this upload (the resume record keeps it).
    pub upload_id: String,
    /// Every part but the last has exactly this many bytes.
    pub part_size: u64,
    /// The declared size, None for an upload of unknown length.
    #[serde(default)]
    #[schema(required = true)]
    pub size: Option<u64>,
    /// URLs for the first parts of a declared size (up to 1,000); `POST parts_url` signs more,
    /// or signs a fresh URL for a part whose URL expired.
    pub parts: Vec<PartTicket>,
    /// `GET`: the parts stored so far ([`StoredParts`]); `POST`: URLs for parts ([`RefreshParts`]).
    pub parts_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PartTicket {
    pub number: u16,
    pub url: String,
    pub size: u64,
}

/// `POST` to a multipart ticket's `parts_url`: URLs for these parts. For a declared size the
/// numbers are enough (the layout fixes each length); an upload of unknown size says each
/// part's length in `parts` (every part but the last is a whole `part_size`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshParts {
    #[serde(default)]
    pub part_numbers: Vec<u16>,
    #[serde(default)]
    pub parts: Vec<PartLength>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartLength {
    pub number: u16,
    pub size: u64,
}

/// `GET` on a multipart ticket's `parts_url`: what the storage holds of the upload, so an
/// interrupted client sends only what is missing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StoredParts {
    pub part_size: u64,
    #[schema(required = true)]
    pub size: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub parts: Vec<StoredPartView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct StoredPartView {
    pub number: u16,
    pub size: u64,
    pub etag: String,
}

/// The answer to [`RefreshParts`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PartTickets {
    pub parts: Vec<PartTicket>,
}

/// `POST` to a ticket's `complete_url` (an empty body means no parts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteShare {
    #[serde(default)]
    pub parts: Vec<CompletedPart>,
    /// The SHA-256 (hex) the client computed while sending an upload whose checksum it could
    /// not declare up front (a pipe); checked where the store can check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u16,
    pub etag: String,
}

/// `POST /api/v1/requests` (an empty body asks for the defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// How long the upload URL accepts an upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The same window under the name share tickets use; give one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downloads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_expires_in: Option<u64>,
    /// The requester's message to the uploader, shown on the upload page (the rules of
    /// [`NewShare::note`]); the share the upload becomes has no note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who asks, shown to the uploader: one line, at most 100 characters; blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Uploads must be encrypted end to end to the requester's public key (which lives only
    /// in the request link's fragment); plain uploads are refused with `encryption_required`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

/// An upload request as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RequestView {
    pub id: String,
    /// The upload page (browsers) and upload URL (`curl -T`).
    pub url: String,
    /// `open`, `fulfilled` or `expired`.
    pub state: String,
    #[schema(required = true)]
    pub filename: Option<String>,
    pub max_size: u64,
    pub max_downloads: u32,
    pub share_expires_in: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub fulfilled_at: Option<OffsetDateTime>,
    /// Uploads refused because another one had fulfilled the request first.
    #[serde(default)]
    #[schema(required = true)]
    pub refused_uploads: u32,
    /// What the uploader is shown: the requester's note and name.
    #[serde(default)]
    #[schema(required = true)]
    pub note: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub from: Option<String>,
    /// Uploads must be encrypted end to end.
    #[serde(default)]
    #[schema(required = true)]
    pub encrypted: bool,
    pub upload: RequestUpload,
    /// The share the upload became, once it arrived.
    #[schema(required = true)]
    pub share: Option<ShareView>,
    /// The refused uploads, kept as evidence (only in `GET /api/v1/requests/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedUploadView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RequestUpload {
    pub method: String,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `GET /api/v1/requests`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
}

/// `POST /r/{id}/uploads`: an uploader starts its own upload to a request; the answer's
/// ticket is used like a share's (parts, then complete), without a key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestUpload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<ArchiveContents>,
    /// Required by an encrypted request (the rules of [`NewShare::encryption`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<NewEncryption>,
}

/// The answer to [`NewRequestUpload`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RequestUploadTicket {
    pub filename: String,
    pub upload: UploadTicket,
}

/// `GET /r/{id}` for programs: what the upload URL accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct OpenRequest {
    pub state: String,
    #[schema(required = true)]
    pub filename: Option<String>,
    pub max_size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The requester's note to the uploader and who asks.
    #[serde(default)]
    #[schema(required = true)]
    pub note: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub from: Option<String>,
    /// Uploads must be encrypted to the key in the request link's fragment.
    #[serde(default)]
    #[schema(required = true)]
    pub encrypted: bool,
}

/// The uploader's answer after a successful upload to a request URL (the link goes to the
/// requester, not to the uploader).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Uploaded {
    pub status: String,
    pub filename: String,
    #[schema(required = true)]
    pub size: Option<u64>,
    #[schema(required = true)]
    pub sha256: Option<String>,
}

/// Every refusal: `{"error": {"code", "message"}}` with a stable code (`docs/api.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_builders_fill_the_templates_the_router_matches() {
        let fill = |template: &str, values: &[(&str, &str)]| {
            values
                .iter()
                .fold(template.to_owned(), |path, (name, value)| {
                    path.replace(&format!("{{{name}}}"), value)
                })
        };
        assert_eq!(routes::share("X"), fill(routes::SHARE, &[("id", "X")]));
        assert_eq!(
            routes::share_complete("X"),
            fill(routes::SHARE_COMPLETE, &[("id", "X")])
        );
        assert_eq!(
            routes::share_parts("X"),
            fill(routes::SHARE_PARTS, &[("id", "X")])
        );
        assert_eq!(routes::request("X"), fill(routes::REQUEST, &[("id", "X")]));
        assert_eq!(
            routes::file("a.txt"),
            fill(routes::FILE, &[("filename", "a.txt")])
        );
        assert_eq!(
            routes::share_link("X"),
            fill(routes::SHARE_LINK, &[("id", "X")])
        );
        assert_eq!(
            routes::share_seal("X"),
            fill(routes::SHARE_SEAL, &[("id", "X")])
        );
        assert_eq!(
            routes::request_link("X"),
            fill(routes::REQUEST_LINK, &[("id", "X")])
        );
        assert_eq!(
            routes::ticket_upload("X"),
            fill(routes::TICKET_UPLOAD, &[("id", "X")])
        );
        assert_eq!(
            routes::part_upload("T", 7),
            fill(routes::PART_UPLOAD, &[("token", "T"), ("number", "7")])
        );
        assert_eq!(
            routes::request_uploads("X"),
            fill(routes::REQUEST_UPLOADS, &[("id", "X")])
        );
        assert_eq!(
            routes::request_upload_parts("X", "T"),
            fill(routes::REQUEST_UPLOAD_PARTS, &[("id", "X"), ("token", "T")])
        );
        assert_eq!(
            routes::request_upload_complete("X", "T"),
            fill(
                routes::REQUEST_UPLOAD_COMPLETE,
                &[("id", "X"), ("token", "T")]
            )
        );
        assert_eq!(
            routes::blob_download("K", "a.txt"),
            fill(
                routes::BLOB_DOWNLOAD,
                &[("blob_key", "K"), ("filename", "a.txt")]
            )
        );
    }

    #[test]
    fn unknown_fields_of_a_new_share_are_refused() {
        let parsed: Result<NewShare, _> =
            serde_json::from_str(r#"{"filename":"a","size":1,"colour":"red"}"#);
        assert!(parsed.is_err());
    }
}
