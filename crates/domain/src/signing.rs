//! Signatures and sealing. Three jobs, all on RustCrypto primitives:
//! - [`UrlSigner`]: expiring capability URLs for blob upload/download on the embedded store
//!   (the role an S3 presigned URL plays);
//! - [`request_signature`]: the HMAC-signed API request of `docs/api.md`;
//! - [`SecretSealer`]: API key secrets at rest, because HMAC verification needs the secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::{DomainError, Instant, KeySecret};

type HmacSha256 = Hmac<Sha256>;

/// Seconds a signed API request's timestamp may differ from the server clock.
pub const REQUEST_SIGNATURE_WINDOW_SECS: i64 = 300;

/// The one secret an instance (or a fleet of instances) shares; everything else is derived.
#[derive(Clone)]
pub struct MasterSecret([u8; 32]);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

impl MasterSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses 64 hexadecimal characters.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| DomainError::InvalidMasterSecret)?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(purpose, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    pub fn url_signer(&self) -> UrlSigner {
        UrlSigner {
            key: self.derive(b"once/v1/url-signing"),
        }
    }

    pub fn session_signer(&self) -> crate::session::SessionSigner {
        crate::session::SessionSigner {
            session_key: self.derive(b"once/v1/browser-session"),
            csrf_key: self.derive(b"once/v1/browser-csrf"),
        }
    }

    /// Signs the claim challenges of encrypted shares (`docs/encryption.md`).
    pub fn challenge_signer(&self) -> crate::encryption::ChallengeSigner {
        crate::encryption::ChallengeSigner {
            key: self.derive(b"once/v1/claim-challenge"),
        }
    }

    pub fn sealer(&self) -> SecretSealer {
        SecretSealer {
            key: self.derive(b"once/v1/key-sealing"),
        }
    }
}

/// Signs `METHOD \n PATH \n QUERY` so that neither the path, the parameters nor the expiry of a
/// URL can be changed without invalidating it. Every URL also carries a fresh random nonce, so
/// two URLs for the same object and second (two claims of one share) are never the same URL.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl UrlSigner {
    fn mac(&self, method: &str, path: &str, query: &str) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(method.as_bytes());
        mac.update(b"\n");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(query.as_bytes());
        mac
    }

    /// Builds the query string for a signed URL: the given parameters (already URL-encoded
    /// values), the expiry as `expires=<unix seconds>`, a random `nonce`, and finally `sig`.
    pub fn signed_query(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        expires_at: Instant,
    ) -> String {
        let mut query = String::new();
        for (name, value) in params {
            query.push_str(name);
            query.push('=');
            query.push_str(value);
            query.push('&');
        }
        query.push_str(&format!(
            "expires={}&nonce={}",
            expires_at.unix_timestamp(),
            crate::id::random_token()
        ));
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(method, path, &query).finalize().into_bytes());
        format!("{query}&sig={signature}")
    }

    /// Checks a URL produced by [`Self::signed_query`]: signature first (403
    /// `bad_url_signature`), then expiry (403 `url_expired`).
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        now: Instant,
    ) -> Result<(), DomainError> {
        let (query, signature) = raw_query
            .rsplit_once("&sig=")
            .ok_or(DomainError::BadUrlSignature)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| DomainError::BadUrlSignature)?;
        self.mac(method, path, query)
            .verify_slice(&signature)
            .map_err(|_| DomainError::BadUrlSignature)?;
        let param = |name: &str| {
            query
                .rsplit('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        // A URL signed without a nonce was not made by `signed_query`; refuse it like a forgery.
        if !param("nonce").is_some_and(crate::id::is_token) {
            return Err(DomainError::BadUrlSignature);
        }
        let expires = param("expires")
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or(DomainError::BadUrlSignature)?;
        if now.unix_timestamp() >= expires {
            return Err(DomainError::UrlExpired);
        }
        Ok(())
    }
}

/// `base64(HMAC-SHA256(secret, METHOD "\n" PATH_AND_QUERY "\n" TIMESTAMP "\n" hex(SHA256(body))))`
/// with standard padded base64, exactly as `docs/api.md` specifies.
pub fn request_signature(
    secret: &KeySecret,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body_sha256_hex: &str,
) -> String {
    STANDARD.encode(
        request_mac(secret, method, path_and_query, timestamp, body_sha256_hex)
            .finalize()
            .into_bytes(),
    )
}

fn request_mac(
    secret: &KeySecret,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body_sha256_hex: &str,
) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{method}\n{path_and_query}\n{timestamp}\n{body_sha256_hex}").as_bytes());
    mac
}

/// Verifies a signed API request in constant time, after checking its timestamp window.
/// Replay protection (each signature accepted once) needs the store and is done by the caller.
pub fn verify_request_signature(
    secret: &KeySecret,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body_sha256_hex: &str,
    signature_b64: &str,
    now: Instant,
) -> Result<(), DomainError> {
    // `abs_diff` cannot overflow: the timestamp is the client's, any i64 at all.
    if now.unix_timestamp().abs_diff(timestamp) > REQUEST_SIGNATURE_WINDOW_SECS.unsigned_abs() {
        return Err(DomainError::StaleTimestamp);
    }
    let signature = STANDARD
        .decode(signature_b64)
        .map_err(|_| DomainError::BadRequestSignature)?;
    request_mac(secret, method, path_and_query, timestamp, body_sha256_hex)
        .verify_slice(&signature)
        .map_err(|_| DomainError::BadRequestSignature)
}

/// Authenticated encryption of key secrets at rest (ChaCha20-Poly1305, random nonce, the key id
/// as associated data so a sealed secret cannot be moved to another key's row).
#[derive(Clone)]
pub struct SecretSealer {
    key: [u8; 32],
}

impl SecretSealer {
    pub fn seal(&self, associated: &str, secret: &KeySecret) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: associated.as_bytes(),
        };
        let mut sealed = nonce.to_vec();
        sealed.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), payload)
                .expect("in-memory encryption cannot fail"),
        );
        sealed
    }

    /// None when the data was sealed under another master secret or tampered with.
    pub fn open(&self, associated: &str, sealed: &[u8]) -> Option<KeySecret> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated.as_bytes(),
                },
            )
            .ok()?;
        KeySecret::parse(std::str::from_utf8(&plain).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Instant {
        time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn signed_url_verifies_until_it_expires() {
        let signer = MasterSecret::generate().url_signer();
        let query = signer.signed_query("GET", "/b/x", &[("a", "1")], at(1000));
        assert!(query.starts_with("a=1&expires=1000&nonce="));
        assert!(query.contains("&sig="));
        assert_eq!(signer.verify("GET", "/b/x", &query, at(999)), Ok(()));
        assert_eq!(
            signer.verify("GET", "/b/x", &query, at(1000)),
            Err(DomainError::UrlExpired)
        );
    }

    #[test]
    fn tampered_urls_are_refused() {
        let signer = MasterSecret::generate().url_signer();
        let query = signer.signed_query("PUT", "/b/x", &[], at(1000));
        let bad = DomainError::BadUrlSignature;
        assert_eq!(
            signer.verify("PUT", "/b/y", &query, at(1)),
            Err(bad.clone())
        );
        assert_eq!(
            signer.verify("GET", "/b/x", &query, at(1)),
            Err(bad.clone())
        );
        let longer = query.replace("expires=1000", "expires=9999");
        assert_eq!(
            signer.verify("PUT", "/b/x", &longer, at(1)),
            Err(bad.clone())
        );
        assert_eq!(
            signer.verify("PUT", "/b/x", "expires=1000", at(1)),
            Err(bad.clone())
        );
        let other = MasterSecret::generate().url_signer();
        assert_eq!(other.verify("PUT", "/b/x", &query, at(1)), Err(bad));
    }

    #[test]
    fn two_urls_signed_for_the_same_object_and_second_differ_and_both_verify() {
        let signer = MasterSecret::generate().url_signer();
        let first = signer.signed_query("GET", "/b/x", &[("ct", "text%2Fplain")], at(1000));
        let second = signer.signed_query("GET", "/b/x", &[("ct", "text%2Fplain")], at(1000));
        assert_ne!(first, second);
        assert_eq!(signer.verify("GET", "/b/x", &first, at(999)), Ok(()));
        assert_eq!(signer.verify("GET", "/b/x", &second, at(999)), Ok(()));
    }

    #[test]
    fn the_nonce_is_covered_by_the_signature_and_required() {
        let signer = MasterSecret::generate().url_signer();
        let query = signer.signed_query("GET", "/b/x", &[], at(1000));
        let (_, nonce) = query.split_once("nonce=").unwrap();
        let nonce = &nonce[..22];
        let swapped = query.replace(nonce, &crate::id::random_token());
        assert_eq!(
            signer.verify("GET", "/b/x", &swapped, at(1)),
            Err(DomainError::BadUrlSignature)
        );
        // Correctly signed, but without the nonce `signed_query` always adds.
        for unsigned in ["expires=1000", "expires=1000&nonce=short"] {
            let signature =
                URL_SAFE_NO_PAD.encode(signer.mac("GET", "/b/x", unsigned).finalize().into_bytes());
            let without = format!("{unsigned}&sig={signature}");
            assert_eq!(
                signer.verify("GET", "/b/x", &without, at(1)),
                Err(DomainError::BadUrlSignature),
                "{unsigned}"
            );
        }
    }

    #[test]
    fn request_signature_matches_the_documented_recipe() {
        // Recomputed independently: the documented canonical string, HMAC-SHA256, base64.
        let secret = KeySecret::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let body_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let signature =
            request_signature(&secret, "GET", "/api/v1/shares/x", 1_700_000_000, body_hash);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes()).unwrap();
        mac.update(b"GET\n/api/v1/shares/x\n1700000000\n");
        mac.update(body_hash.as_bytes());
        assert_eq!(signature, STANDARD.encode(mac.finalize().into_bytes()));
        assert!(signature.ends_with('='));
        let now = at(1_700_000_100);
        assert_eq!(
            verify_request_signature(
                &secret,
                "GET",
                "/api/v1/shares/x",
                1_700_000_000,
                body_hash,
                &signature,
                now
            ),
            Ok(())
        );
        assert_eq!(
            verify_request_signature(
                &secret,
                "POST",
                "/api/v1/shares/x",
                1_700_000_000,
                body_hash,
                &signature,
                now
            ),
            Err(DomainError::BadRequestSignature)
        );
        assert_eq!(
            verify_request_signature(
                &secret,
                "GET",
                "/api/v1/shares/x",
                1_700_000_000,
                body_hash,
                &signature,
                at(1_700_000_301)
            ),
            Err(DomainError::StaleTimestamp)
        );
    }

    #[test]
    fn request_timestamps_are_accepted_within_300_seconds_either_way_and_never_overflow() {
        let secret = KeySecret::generate();
        let now = at(1_700_000_000);
        let check = |timestamp: i64| {
            let signature = request_signature(&secret, "GET", "/api/v1/shares", timestamp, "");
            verify_request_signature(
                &secret,
                "GET",
                "/api/v1/shares",
                timestamp,
                "",
                &signature,
                now,
            )
        };
        for accepted in [now.unix_timestamp() - 300, now.unix_timestamp() + 300] {
            assert_eq!(check(accepted), Ok(()), "{accepted}");
        }
        for stale in [
            now.unix_timestamp() - 301,
            now.unix_timestamp() + 301,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            assert_eq!(check(stale), Err(DomainError::StaleTimestamp), "{stale}");
        }
    }

    #[test]
    fn sealed_secret_opens_only_with_the_same_master_and_key_id() {
        let master = MasterSecret::generate();
        let secret = KeySecret::generate();
        let sealed = master.sealer().seal("0123456789abcdef", &secret);
        assert_eq!(
            master.sealer().open("0123456789abcdef", &sealed),
            Some(secret)
        );
        assert_eq!(master.sealer().open("fedcba9876543210", &sealed), None);
        assert_eq!(
            MasterSecret::generate()
                .sealer()
                .open("0123456789abcdef", &sealed),
            None
        );
    }
}
