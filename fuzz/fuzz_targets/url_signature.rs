//! Signed blob URLs (`/b/…`): `UrlSigner::verify` on any method, path and query never panics;
//! a query from `signed_query` always verifies (or is expired, by its own clock); and no change
//! to a signed query makes it verify.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use once_domain::signing::MasterSecret;
use once_domain::{DomainError, Instant};

#[derive(Debug, Arbitrary)]
struct Input {
    method: String,
    path: String,
    query: String,
    params: Vec<(String, String)>,
    expires_at: i64,
    now: i64,
    /// Where and what to change in a signed query.
    mutation: (usize, u8, bool),
}

/// Any i64 as an instant `time` can represent, so every input is used rather than skipped.
fn instant(seconds: i64) -> Instant {
    const MIN: i64 = -377_705_116_800; // -9999-01-01
    const MAX: i64 = 253_402_300_799; // 9999-12-31
    time::OffsetDateTime::from_unix_timestamp(seconds.clamp(MIN, MAX))
        .expect("clamped into the representable range")
}

fuzz_target!(|input: Input| {
    let signer = MasterSecret::parse(&"42".repeat(32)).unwrap().url_signer();
    let now = instant(input.now);
    let _ = signer.verify(&input.method, &input.path, &input.query, now);

    let params: Vec<(&str, &str)> = input
        .params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let expires_at = instant(input.expires_at);
    let signed = signer.signed_query(&input.method, &input.path, &params, expires_at);
    let expected = if now < expires_at {
        Ok(())
    } else {
        Err(DomainError::UrlExpired)
    };
    assert_eq!(
        signer.verify(&input.method, &input.path, &signed, now),
        expected,
        "{signed}"
    );

    let (at, byte, insert) = input.mutation;
    let mut mutated = signed.clone().into_bytes();
    let at = at % (mutated.len() + 1);
    if insert {
        mutated.insert(at, byte);
    } else if at < mutated.len() {
        mutated[at] = byte;
    } else {
        mutated.truncate(at.saturating_sub(1));
    }
    let mutated = String::from_utf8_lossy(&mutated);
    let verdict = signer.verify(&input.method, &input.path, &mutated, now);
    if mutated != signed {
        assert!(
            verdict.is_err(),
            "{signed} changed to {mutated} still verifies"
        );
    }
});
