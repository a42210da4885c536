//! The once-v1 test vectors, computed from fixed inputs. Shared by `examples/make_vectors.rs`
//! (which writes `tests/vectors.json`) and `tests/vectors.rs` (which recomputes and compares),
//! so the generator and the check can never disagree about what a vector means.

use once_seal::{Keys, PasswordParams, RequestKeyPair, Secret, StreamSealer, b64u};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SECRET: [u8; 32] = bytes_from(0x00);
pub const PASSWORD: &str = "correct horse";
pub const SALT: [u8; 16] = {
    let mut salt = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        salt[i] = 0xA0 + i as u8;
        i += 1;
    }
    salt
};
pub const REQUEST_PRIVATE: [u8; 32] = bytes_from(0x40);
pub const EPHEMERAL_PRIVATE: [u8; 32] = bytes_from(0x60);
pub const METADATA_NONCE: [u8; 12] = [
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B,
];
pub const METADATA: &str = r#"{"name":"hello.txt","type":"text/plain","size":12}"#;
pub const SHARE_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";
pub const CHALLENGE: &str = "Y2hhbGxlbmdl";
pub const SHORT_INPUT: &[u8] = b"hello, once\n";
pub const TWO_RECORD_LEN: usize = 65_537;

const fn bytes_from(first: u8) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        bytes[i] = first + i as u8;
        i += 1;
    }
    bytes
}

/// Byte `i` is `i mod 251`, so no record repeats another's plaintext.
pub fn two_record_input() -> Vec<u8> {
    (0..TWO_RECORD_LEN).map(|i| (i % 251) as u8).collect()
}

pub fn seal_all(keys: &Keys, plaintext: &[u8]) -> Vec<u8> {
    let mut sealer = StreamSealer::new(keys.clone());
    let mut sealed = Vec::new();
    sealer.push(plaintext, &mut sealed);
    sealer.finish(&mut sealed);
    sealed
}

fn key_schedule(keys: &Keys) -> Value {
    json!({
        "content_key": hex::encode(keys.content_key()),
        "content_nonce_base": hex::encode(keys.nonce_base()),
        "metadata_key": hex::encode(keys.metadata_key()),
        "claim_key": hex::encode(keys.claim_key()),
        "claim_key_b64u": b64u(&keys.claim_key()),
    })
}

pub fn compute() -> Value {
    let secret = Secret::from_bytes(SECRET);
    let params = PasswordParams::with_salt(SALT);
    let share = Keys::for_share(&secret, None).expect("no password");
    let password_share =
        Keys::for_share(&secret, Some((PASSWORD, &params))).expect("default parameters");
    let stretched = params.stretch(PASSWORD).expect("default parameters");

    let requester = RequestKeyPair::from_bytes(REQUEST_PRIVATE);
    let upload = once_seal::seal_to_recipient_with(&requester.public_fragment(), EPHEMERAL_PRIVATE)
        .expect("a valid public key");
    let shared = requester.shared_secret(&upload.ephemeral_public);

    let two_records = seal_all(&share, &two_record_input());
    let tags: Vec<String> = two_records
        .chunks(once_seal::SEALED_RECORD_SIZE)
        .map(|record| hex::encode(&record[record.len() - once_seal::TAG_SIZE..]))
        .collect();

    json!({
        "scheme": once_seal::SCHEME,
        "record_size": once_seal::RECORD_SIZE,
        "inputs": {
            "secret": hex::encode(SECRET),
            "secret_fragment": secret.to_fragment(),
            "password": PASSWORD,
            "password_salt": hex::encode(SALT),
            "password_salt_b64u": b64u(&SALT),
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "parallelism": params.parallelism,
            "request_private_key": hex::encode(REQUEST_PRIVATE),
            "ephemeral_private_key": hex::encode(EPHEMERAL_PRIVATE),
            "metadata_nonce": hex::encode(METADATA_NONCE),
            "metadata": METADATA,
            "share_id": SHARE_ID,
            "challenge": CHALLENGE,
        },
        "share": key_schedule(&share),
        "password_share": {
            "argon2id_output": hex::encode(stretched.as_ref()),
            "keys": key_schedule(&password_share),
        },
        "request": {
            "recipient_public_key": hex::encode(upload.recipient_public),
            "recipient_fragment": requester.public_fragment(),
            "ephemeral_public_key": hex::encode(upload.ephemeral_public),
            "ephemeral_public_key_b64u": b64u(&upload.ephemeral_public),
            "shared_secret": hex::encode(shared),
            "keys": key_schedule(&upload.keys),
        },
        "record_nonces": {
            "record_0_not_last": hex::encode(share.record_nonce(0, false)),
            "record_1_not_last": hex::encode(share.record_nonce(1, false)),
            "record_1_last": hex::encode(share.record_nonce(1, true)),
        },
        "content": {
            "short_input": String::from_utf8(SHORT_INPUT.to_vec()).expect("ASCII"),
            "short_sealed": hex::encode(seal_all(&share, SHORT_INPUT)),
            "empty_sealed": hex::encode(seal_all(&share, b"")),
            "two_records_plain_len": TWO_RECORD_LEN,
            "two_records_sealed_len": two_records.len(),
            "two_records_sealed_sha256": hex::encode(Sha256::digest(&two_records)),
            "two_records_tags": tags,
        },
        "metadata": {
            "sealed": share.seal_metadata_with_nonce(METADATA.as_bytes(), METADATA_NONCE),
            "password_sealed": password_share
                .seal_metadata_with_nonce(METADATA.as_bytes(), METADATA_NONCE),
        },
        "claim": {
            "proof": share.claim_proof(SHARE_ID, CHALLENGE),
            "password_proof": password_share.claim_proof(SHARE_ID, CHALLENGE),
        },
    })
}
