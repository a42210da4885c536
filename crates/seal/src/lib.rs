//! The `once-v1` end-to-end encryption format (docs/encryption.md): the key schedule, the
//! record layout of the content, the sealed metadata and the claim proof.
//!
//! Pure and synchronous (no I/O apart from drawing randomness), so the CLI, the server's tests
//! and any tool can use it unchanged; the browser implements the same format with WebCrypto and
//! checks itself against `tests/vectors.json`.

mod error;
mod keys;
pub mod layout;
mod request;
mod stream;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use error::SealError;
pub use keys::{Keys, PasswordParams, Secret, claim_mac};
#[doc(hidden)]
pub use request::seal_to_recipient_with;
pub use request::{RequestKeyPair, SealedToRecipient, seal_to_recipient};
pub use stream::{StreamOpener, StreamSealer};

/// The format name the server reports in `GET /s/{id}/seal`.
pub const SCHEME: &str = "once-v1";
/// Plaintext bytes per record.
pub const RECORD_SIZE: usize = 65_536;
/// AES-GCM tag bytes after each record's ciphertext.
pub const TAG_SIZE: usize = 16;
/// Bytes of one full record in the sealed stream.
pub const SEALED_RECORD_SIZE: usize = RECORD_SIZE + TAG_SIZE;

/// URL-safe base64 without padding, for every binary value on the wire and in links.
pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes [`b64u`] text; padding, the standard alphabet and stray trailing bits are refused,
/// so every value has exactly one spelling.
pub fn from_b64u(text: &str) -> Result<Vec<u8>, SealError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| SealError::InvalidKey)
}

/// Decodes a 32-byte key written as 43 [`b64u`] characters.
fn key_from_b64u(text: &str) -> Option<[u8; 32]> {
    if text.len() != 43 {
        return None;
    }
    from_b64u(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod b64u_tests {
    use super::*;

    #[test]
    fn b64u_round_trips_and_refuses_other_spellings() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(from_b64u(&b64u(&bytes)).unwrap(), bytes);
        }
        assert_eq!(b64u(&[0xfb, 0xff]), "-_8");
        assert_eq!(from_b64u("-_8="), Err(SealError::InvalidKey));
        assert_eq!(from_b64u("+/8"), Err(SealError::InvalidKey));
        // "-_9" decodes to the same bytes with non-zero trailing bits: not canonical.
        assert_eq!(from_b64u("-_9"), Err(SealError::InvalidKey));
    }
}

#[cfg(test)]
mod tests;
