//! Domain values rendered as the wire contract's types (`once-api`), the only place where the
//! server decides what a share or a request looks like on the wire.

use once_api::{ArchiveContents, RequestUpload, RequestView, ShareView};
use once_domain::{Instant, Share, UploadRequest};

pub fn share_link(base: &str, share: &Share) -> String {
    format!("{base}{}", once_api::routes::share_link(share.id.as_str()))
}

pub fn request_link(base: &str, request: &UploadRequest) -> String {
    format!(
        "{base}{}",
        once_api::routes::request_link(request.id.as_str())
    )
}

pub fn share(share: &Share, base: &str, now: Instant) -> ShareView {
    let availability = serde_json::to_value(share.availability(now))
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    ShareView {
        id: share.id.as_str().to_owned(),
        url: share_link(base, share),
        filename: share.filename.as_str().to_owned(),
        size: share.size,
        content_type: share.content_type.clone(),
        sha256: share.sha256.map(|digest| digest.to_hex()),
        state: share.state.as_str().to_owned(),
        availability,
        max_downloads: share.max_downloads,
        downloads_left: share.downloads_left,
        created_at: share.created_at,
        expires_at: share.expires_at,
        upload_expires_at: share.upload_expires_at,
        published_at: share.published_at,
        lease_until: share.lease_until,
        upload_attempts: share.upload_attempts,
        preview_hits: share.preview_hits,
        request_id: share.request_id.as_ref().map(|id| id.as_str().to_owned()),
        encrypted: share.encryption.is_some(),
        note: share.note.as_ref().map(|note| note.as_str().to_owned()),
        contents: contents(share),
        upload: None,
        refused: Vec::new(),
    }
}

/// A refused upload kept as evidence, for its owner.
pub fn refused(upload: &once_meta::RefusedUpload) -> once_api::RefusedUploadView {
    once_api::RefusedUploadView {
        at: upload.at,
        client_address: upload.client_address.clone(),
        user_agent: upload.user_agent.clone(),
        declared_size: upload.declared_size,
        received_size: upload.received_size,
        sha256: upload.sha256.clone(),
        truncated: upload.truncated,
        kept: upload.blob_key.is_some(),
    }
}

/// An archive listing as the share stores it (JSON text, written only by us from a value
/// that was parsed and checked).
pub fn contents_text(contents: &ArchiveContents) -> String {
    serde_json::to_string(contents).unwrap_or_default()
}

/// The stored listing, or None if there is none or it cannot be read back.
pub fn contents(share: &Share) -> Option<ArchiveContents> {
    share
        .contents
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
}

/// `fulfilled`, `expired` or `open`.
pub fn request_state(request: &UploadRequest, now: Instant) -> &'static str {
    if request.share_id.is_some() {
        "fulfilled"
    } else if now >= request.expires_at {
        "expired"
    } else {
        "open"
    }
}

/// The cursor of the page of shares that follows `last`.
pub fn next_cursor(last: &Share) -> String {
    format!("{}.{}", last.created_at.unix_timestamp(), last.id.as_str())
}

pub fn request(
    request: &UploadRequest,
    share: Option<&Share>,
    refused_uploads: u32,
    base: &str,
    now: Instant,
) -> RequestView {
    let state = request_state(request, now);
    let url = request_link(base, request);
    RequestView {
        id: request.id.as_str().to_owned(),
        url: url.clone(),
        state: state.to_owned(),
        filename: request
            .filename
            .as_ref()
            .map(|name| name.as_str().to_owned()),
        max_size: request.max_size,
        max_downloads: request.max_downloads,
        share_expires_in: request.share_expires_in.as_secs(),
        created_at: request.created_at,
        expires_at: request.expires_at,
        fulfilled_at: request.fulfilled_at,
        refused_uploads,
        note: request.note.as_ref().map(|note| note.as_str().to_owned()),
        from: request
            .requester
            .as_ref()
            .map(|name| name.as_str().to_owned()),
        encrypted: request.encrypted,
        upload: RequestUpload {
            method: "PUT".to_owned(),
            url,
            expires_at: request.expires_at,
        },
        share: share.map(|share| self::share(share, base, now)),
        refused: Vec::new(),
    }
}
