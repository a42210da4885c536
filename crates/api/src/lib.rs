//! The HTTP wire contract of `once` (v1, see `docs/api.md`): every JSON body the API reads or
//! writes and every header name it defines, in one place that the server, the CLI and the
//! tests all compile against, so a renamed field breaks the build instead of a user.
//!
//! Times are RFC 3339 UTC on the wire, durations integer seconds, sizes integer bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
    pub const SHARE_LINK: &str = "/s/{id}";
    pub const SHARE_LINK_NAMED: &str = "/s/{id}/{filename}";
    pub const REQUEST_LINK: &str = "/r/{id}";
    pub const REQUEST_LINK_NAMED: &str = "/r/{id}/{filename}";
    /// The embedded store's signed upload and download URLs.
    pub const TICKET_UPLOAD: &str = "/b/up/{id}";
    pub const BLOB_DOWNLOAD: &str = "/b/dl/{blob_key}/{filename}";
    pub const HEALTH: &str = "/healthz";
    pub const READY: &str = "/readyz";
    pub const METRICS: &str = "/metrics";

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

    pub fn request_link(id: &str) -> String {
        format!("/r/{id}")
    }

    pub fn ticket_upload(id: &str) -> String {
        format!("/b/up/{id}")
    }

    pub fn blob_download(blob_key: &str, escaped_filename: &str) -> String {
        format!("/b/dl/{blob_key}/{escaped_filename}")
    }
}

/// `POST /api/v1/shares`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub filename: String,
    pub size: u64,
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
}

/// A share as its owner sees it (`GET /api/v1/shares/{id}`, and the answer to create and
/// complete, where `upload` says how to send the bytes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareView {
    pub id: String,
    pub url: String,
    pub filename: String,
    pub size: Option<u64>,
    pub content_type: String,
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
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_until: Option<OffsetDateTime>,
    pub upload_attempts: u32,
    pub preview_hits: u32,
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadTicket>,
}

/// How to send the bytes of a new share: one request to `url` with `headers`, or the parts of
/// `multipart`; then, when `complete_url` is set, `POST` there to publish the share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadTicket {
    pub method: String,
    /// Absent for a multipart ticket.
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub complete_url: Option<String>,
    pub multipart: Option<MultipartTicket>,
}

/// A multipart upload: each part to its own URL, signed for its length.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MultipartTicket {
    pub upload_id: String,
    pub part_size: u64,
    pub parts: Vec<PartTicket>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartTicket {
    pub number: u16,
    pub url: String,
    pub size: u64,
}

/// `POST /api/v1/shares/{id}/parts`: fresh URLs for these parts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RefreshParts {
    pub part_numbers: Vec<u16>,
}

/// The answer to [`RefreshParts`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartTickets {
    pub parts: Vec<PartTicket>,
}

/// `POST /api/v1/shares/{id}/complete` (an empty body means no parts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompleteShare {
    #[serde(default)]
    pub parts: Vec<CompletedPart>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    pub part_number: u16,
    pub etag: String,
}

/// `POST /api/v1/requests` (an empty body asks for the defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
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
}

/// An upload request as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestView {
    pub id: String,
    /// The upload page (browsers) and upload URL (`curl -T`).
    pub url: String,
    /// `open`, `fulfilled` or `expired`.
    pub state: String,
    pub filename: Option<String>,
    pub max_size: u64,
    pub max_downloads: u32,
    pub share_expires_in: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub fulfilled_at: Option<OffsetDateTime>,
    pub upload: RequestUpload,
    /// The share the upload became, once it arrived.
    pub share: Option<ShareView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestUpload {
    pub method: String,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `GET /api/v1/requests`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
}

/// `GET /r/{id}` for programs: what the upload URL accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenRequest {
    pub state: String,
    pub filename: Option<String>,
    pub max_size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The uploader's answer after a successful upload to a request URL (the link goes to the
/// requester, not to the uploader).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Uploaded {
    pub status: String,
    pub filename: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// Every refusal: `{"error": {"code", "message"}}` with a stable code (`docs/api.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
            routes::request_link("X"),
            fill(routes::REQUEST_LINK, &[("id", "X")])
        );
        assert_eq!(
            routes::ticket_upload("X"),
            fill(routes::TICKET_UPLOAD, &[("id", "X")])
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
