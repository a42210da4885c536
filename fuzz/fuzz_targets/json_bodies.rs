//! JSON request bodies and the ids and digests read from paths and headers. Every body type
//! of `once-api` the server deserializes either refuses the input or reads a value that
//! survives a round trip; ids and digests that parse print back as they were read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use once_api::{CompleteShare, NewRequest, NewShare, RefreshParts};
use once_domain::{BlobKey, RequestId, Sha256Digest, ShareId};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let written = serde_json::to_vec(&value).expect("a parsed body serializes");
        let again: T = serde_json::from_slice(&written).expect("a written body parses");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<NewShare>(data);
    round_trip::<NewRequest>(data);
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
