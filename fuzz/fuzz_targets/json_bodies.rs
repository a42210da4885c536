//! JSON request bodies and the ids and digests read from paths and headers. Every body type
//! of `once-api` the server deserializes either refuses the input or reads a value that
//! survives a round trip; a new share or request body then goes through the domain's checks
//! as the server hands it over (under the default limits and under no limits at all, where
//! the durations are largest); ids and digests that parse print back as they were read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use once_api::{CompleteShare, NewRequest, NewShare, RefreshParts};
use once_domain::share::DEFAULT_CONTENT_TYPE;
use once_domain::{
    BlobKey, KeyId, RequestId, RequestPolicy, RequestSpec, Sha256Digest, ShareId, SharePolicy,
    ShareSpec,
};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let value = serde_json::from_slice::<T>(data).ok()?;
    let written = serde_json::to_vec(&value).expect("a parsed body serializes");
    let again: T = serde_json::from_slice(&written).expect("a written body parses");
    assert_eq!(again, value);
    Some(value)
}

fn policies() -> [SharePolicy; 2] {
    let unlimited = SharePolicy {
        default_expires_in: Duration::MAX,
        max_expires_in: Duration::MAX,
        max_downloads_limit: u32::MAX,
        max_size: u64::MAX,
        upload_window: Duration::MAX,
    };
    [SharePolicy::default(), unlimited]
}

/// `POST /api/v1/shares` as `crates/server/src/http/api.rs` turns the body into a spec (a
/// deliberate mirror: the fuzz workspace does not build the server).
fn check_new_share(body: NewShare, now: once_domain::Instant) {
    let spec = ShareSpec {
        filename: body.filename,
        size: body.size,
        content_type: body.content_type,
        max_downloads: body.max_downloads,
        expires_in: body.expires_in.map(Duration::from_secs),
        upload_expires_in: body.upload_expires_in.map(Duration::from_secs),
        sha256: body.sha256,
        note: body.note,
    };
    for policy in policies() {
        if let Ok(share) = policy.new_share(&spec, Some(KeyId::generate()), now) {
            assert!(share.expires_at >= now && share.upload_expires_at >= now);
            assert!(share.max_downloads >= 1 && share.max_downloads <= policy.max_downloads_limit);
            if let Some(note) = &share.note {
                assert!(!note.as_str().is_empty() && note.as_str().chars().count() <= 1000);
            }
            assert!(
                share.content_type == DEFAULT_CONTENT_TYPE
                    || share
                        .content_type
                        .bytes()
                        .all(|b| b.is_ascii_graphic() || b == b' ')
            );
        }
    }
}

/// `POST /api/v1/requests`, likewise.
fn check_new_request(body: NewRequest, now: once_domain::Instant) {
    let spec = RequestSpec {
        filename: body.filename,
        max_size: body.max_size,
        expires_in: body
            .expires_in
            .or(body.upload_expires_in)
            .map(Duration::from_secs),
        max_downloads: body.max_downloads,
        share_expires_in: body.share_expires_in.map(Duration::from_secs),
        note: body.note,
        requester: body.from,
    };
    for policy in policies() {
        if let Ok(request) =
            RequestPolicy::default().new_request(&spec, &policy, KeyId::generate(), now)
        {
            assert!(request.expires_at >= now);
            assert!(request.max_size >= 1 && request.max_size <= policy.max_size);
            if let Some(from) = &request.requester {
                assert!(!from.as_str().chars().any(char::is_control));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    if let Some(body) = round_trip::<NewShare>(data) {
        check_new_share(body, now);
    }
    if let Some(body) = round_trip::<NewRequest>(data) {
        check_new_request(body, now);
    }
    round_trip::<CompleteShare>(data);
    round_trip::<RefreshParts>(data);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = Sha256Digest::parse_hex(text) {
        assert_eq!(digest.to_hex(), text.to_ascii_lowercase());
    }
    if let Ok(id) = ShareId::parse(text) {
        assert_eq!(id.as_str(), text);
        let _ = id.log_label();
    }
    if let Ok(id) = RequestId::parse(text) {
        assert_eq!(id.as_str(), text);
        let _ = id.log_label();
    }
    if let Ok(key) = BlobKey::parse(text) {
        assert_eq!(key.as_str(), text);
    }
});
