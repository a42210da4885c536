//! HMAC-signed API requests and API tokens: the `X-Once-*` header values as the server reads
//! them (timestamp as `i64`, signature as base64), `verify_request_signature`, and the
//! `KEYID.SECRET` token parsers. None may panic; what parses must print back as it was read.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use once_domain::signing::{
    REQUEST_SIGNATURE_WINDOW_SECS, request_signature, verify_request_signature,
};
use once_domain::{ApiToken, DomainError, KeyId, KeySecret};

#[derive(Debug, Arbitrary)]
struct Input {
    method: String,
    path_and_query: String,
    timestamp: String,
    body_sha256_hex: String,
    signature: String,
    now: i64,
    token: String,
}

fuzz_target!(|input: Input| {
    let secret = KeySecret::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    // `now` comes from the server clock, which `time` can always represent.
    let now =
        time::OffsetDateTime::from_unix_timestamp(input.now.rem_euclid(253_402_300_799)).unwrap();

    // The server refuses a timestamp header that is not an i64 before verifying anything.
    if let Ok(timestamp) = input.timestamp.parse::<i64>() {
        let verify = |signature: &str| {
            verify_request_signature(
                &secret,
                &input.method,
                &input.path_and_query,
                timestamp,
                &input.body_sha256_hex,
                signature,
                now,
            )
        };
        let _ = verify(&input.signature);
        let genuine = request_signature(
            &secret,
            &input.method,
            &input.path_and_query,
            timestamp,
            &input.body_sha256_hex,
        );
        let in_window = now.unix_timestamp().abs_diff(timestamp)
            <= REQUEST_SIGNATURE_WINDOW_SECS.unsigned_abs();
        let expected = if in_window {
            Ok(())
        } else {
            Err(DomainError::StaleTimestamp)
        };
        assert_eq!(verify(&genuine), expected);
        if in_window && input.signature != genuine {
            assert!(verify(&input.signature).is_err(), "{}", input.signature);
        }
    }

    if let Ok(token) = ApiToken::parse(&input.token) {
        assert_eq!(token.reveal(), input.token.trim());
        assert_eq!(ApiToken::parse(&token.reveal()), Ok(token));
    }
    if let Ok(id) = KeyId::parse(&input.token) {
        assert_eq!(id.as_str(), input.token);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
    if let Ok(secret) = KeySecret::parse(&input.token) {
        assert_eq!(secret.expose(), input.token);
        assert!(secret.matches_hash(&secret.hash()));
    }
});
