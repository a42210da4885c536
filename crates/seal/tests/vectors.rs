//! The committed test vectors are what the implementation computes, they open again with the
//! public API, and docs/encryption.md shows every one of them (so the docs cannot drift).
//! Regenerate with `cargo run -p once-seal --example make_vectors`.

mod support;

use once_seal::{Keys, PasswordParams, RequestKeyPair, Secret, StreamOpener, from_b64u};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::vectors;

const REGENERATE: &str =
    "run `cargo run -p once-seal --example make_vectors` and update docs/encryption.md";

fn committed() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json"))
        .expect("tests/vectors.json");
    serde_json::from_str(&text).expect("vectors.json is JSON")
}

fn docs() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/encryption.md"
    ))
    .expect("docs/encryption.md")
}

fn text<'a>(vectors: &'a Value, pointer: &str) -> &'a str {
    vectors
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is a string in vectors.json"))
}

fn hex_at(vectors: &Value, pointer: &str) -> Vec<u8> {
    hex::decode(text(vectors, pointer)).expect("hex")
}

#[test]
fn committed_vectors_are_what_the_implementation_computes() {
    assert!(
        vectors::compute() == committed(),
        "tests/vectors.json is stale: {REGENERATE}"
    );
}

#[test]
fn committed_vectors_open_with_the_public_api() {
    let vectors = committed();
    let secret = Secret::from_fragment(text(&vectors, "/inputs/secret_fragment")).unwrap();
    assert_eq!(
        secret.as_bytes().to_vec(),
        hex_at(&vectors, "/inputs/secret")
    );
    let share = Keys::for_share(&secret, None).unwrap();

    let short = hex_at(&vectors, "/content/short_sealed");
    assert_eq!(open(&share, &short), vectors::SHORT_INPUT);
    assert_eq!(
        open(&share, &hex_at(&vectors, "/content/empty_sealed")),
        b""
    );

    let sealed = text(&vectors, "/metadata/sealed");
    assert_eq!(
        share.open_metadata(sealed).unwrap(),
        vectors::METADATA.as_bytes()
    );
    assert_eq!(from_b64u(sealed).unwrap()[..12], vectors::METADATA_NONCE);

    let params = PasswordParams::with_salt(vectors::SALT);
    let password_share = Keys::for_share(&secret, Some((vectors::PASSWORD, &params))).unwrap();
    let password_sealed = text(&vectors, "/metadata/password_sealed");
    assert_eq!(
        password_share.open_metadata(password_sealed).unwrap(),
        vectors::METADATA.as_bytes()
    );
    assert_eq!(
        share.open_metadata(password_sealed),
        Err(once_seal::SealError::WrongKey)
    );

    // The requester derives the uploader's keys from its private key and E alone.
    let requester = RequestKeyPair::from_bytes(vectors::REQUEST_PRIVATE);
    let ephemeral: [u8; 32] = hex_at(&vectors, "/request/ephemeral_public_key")
        .try_into()
        .unwrap();
    let upload = requester.keys_for_upload(&ephemeral).unwrap();
    assert_eq!(
        upload.claim_key().to_vec(),
        hex_at(&vectors, "/request/keys/claim_key")
    );

    let two_records = vectors::seal_all(&share, &vectors::two_record_input());
    assert_eq!(open(&share, &two_records), vectors::two_record_input());
    assert_eq!(
        hex::encode(Sha256::digest(&two_records)),
        text(&vectors, "/content/two_records_sealed_sha256")
    );
}

fn open(keys: &Keys, sealed: &[u8]) -> Vec<u8> {
    let mut opener = StreamOpener::new(keys.clone(), sealed.len() as u64, 0).unwrap();
    let mut plaintext = Vec::new();
    opener.push(sealed, &mut plaintext).unwrap();
    opener.finish(&mut plaintext).unwrap();
    plaintext
}

fn leaves(value: &Value, path: String, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                leaves(value, format!("{path}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                leaves(value, format!("{path}/{index}"), found);
            }
        }
        Value::String(text) => found.push((path, text.clone())),
        other => found.push((path, other.to_string())),
    }
}

#[test]
fn docs_show_every_committed_vector() {
    let docs = docs();
    let section = docs
        .split_once("\n## Test vectors\n")
        .map(|(_, rest)| rest)
        .expect("docs/encryption.md has a \"## Test vectors\" section");
    let mut found = Vec::new();
    leaves(&committed(), String::new(), &mut found);
    let missing: Vec<_> = found
        .iter()
        .filter(|(_, value)| !section.contains(value.trim_end_matches('\n')))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/encryption.md's test vectors lack {missing:?}: {REGENERATE}"
    );
}
