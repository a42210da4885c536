//! Browser sessions: what the sign-in page hands a browser instead of its API key.
//!
//! A session is a signed, expiring token naming the key it was opened with:
//! `v1.<key id>.<expires, unix seconds>.<nonce>.<HMAC>`, the HMAC under a key derived from the
//! master secret, so every instance sharing the secret accepts it and none needs a session
//! table. It is only as good as its key: the server checks on every request that the key is
//! still active, so revoking a key ends all of its sessions at once. The API key itself never
//! reaches the browser's storage; the token lives in an `HttpOnly` cookie page scripts cannot
//! read.
//!
//! Requests that change something must also carry the session's CSRF token (an HMAC of the
//! session token under another derived key), which only pages of this server can read; a
//! `SameSite=Strict` cookie already keeps other sites out, this is the second lock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{DomainError, Instant, KeyId};

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// What a valid session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub key_id: KeyId,
    pub expires_at: Instant,
}

/// Issues and checks session tokens and their CSRF tokens.
#[derive(Clone)]
pub struct SessionSigner {
    pub(crate) session_key: [u8; 32],
    pub(crate) csrf_key: [u8; 32],
}

impl SessionSigner {
    fn mac(key: &[u8; 32], text: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        mac
    }

    /// A new session for `key_id` that ends at `expires_at` (whole seconds).
    pub fn issue(&self, key_id: &KeyId, expires_at: Instant) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}",
            key_id.as_str(),
            expires_at.unix_timestamp(),
            crate::id::random_token()
        );
        let tag =
            URL_SAFE_NO_PAD.encode(Self::mac(&self.session_key, &body).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The session a token stands for: `session_invalid` for anything this server did not
    /// issue (checked first, in constant time), `session_expired` once its time is over.
    pub fn verify(&self, token: &str, now: Instant) -> Result<BrowserSession, DomainError> {
        let invalid = DomainError::SessionInvalid;
        let (body, tag) = token.rsplit_once('.').ok_or(invalid.clone())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid.clone())?;
        Self::mac(&self.session_key, body)
            .verify_slice(&tag)
            .map_err(|_| invalid.clone())?;
        let mut fields = body.split('.');
        let (Some(VERSION), Some(key_id), Some(expires), Some(_nonce), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(invalid);
        };
        let key_id = KeyId::parse(key_id).map_err(|_| invalid.clone())?;
        let expires_at = expires
            .parse::<i64>()
            .ok()
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or(invalid)?;
        if now >= expires_at {
            return Err(DomainError::SessionExpired);
        }
        Ok(BrowserSession { key_id, expires_at })
    }

    /// The CSRF token that goes with a session token.
    pub fn csrf_token(&self, session_token: &str) -> String {
        URL_SAFE_NO_PAD.encode(
            Self::mac(&self.csrf_key, session_token)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `csrf` is the CSRF token of `session_token` (constant time).
    pub fn check_csrf(&self, session_token: &str, csrf: &str) -> Result<(), DomainError> {
        let tag = URL_SAFE_NO_PAD
            .decode(csrf)
            .map_err(|_| DomainError::CsrfRejected)?;
        Self::mac(&self.csrf_key, session_token)
            .verify_slice(&tag)
            .map_err(|_| DomainError::CsrfRejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterSecret;

    fn at(seconds: i64) -> Instant {
        time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn key() -> KeyId {
        KeyId::parse("0123456789abcdef").unwrap()
    }

    #[test]
    fn a_session_names_its_key_until_it_expires() {
        let signer = MasterSecret::generate().session_signer();
        let token = signer.issue(&key(), at(1000));
        assert_eq!(
            signer.verify(&token, at(999)),
            Ok(BrowserSession {
                key_id: key(),
                expires_at: at(1000)
            })
        );
        assert_eq!(
            signer.verify(&token, at(1000)),
            Err(DomainError::SessionExpired)
        );
        // Two sessions of one key in one second are still different tokens.
        assert_ne!(token, signer.issue(&key(), at(1000)));
    }

    #[test]
    fn forged_or_foreign_sessions_are_invalid() {
        let secret = MasterSecret::generate();
        let signer = secret.session_signer();
        let token = signer.issue(&key(), at(1000));
        let invalid = Err(DomainError::SessionInvalid);
        let later = token.replace(".1000.", ".9999.");
        assert_eq!(signer.verify(&later, at(1)), invalid);
        let other_key = token.replace("0123456789abcdef", "fedcba9876543210");
        assert_eq!(signer.verify(&other_key, at(1)), invalid);
        assert_eq!(signer.verify("", at(1)), invalid);
        assert_eq!(signer.verify("v1.x.y", at(1)), invalid);
        let elsewhere = MasterSecret::generate().session_signer();
        assert_eq!(elsewhere.verify(&token, at(1)), invalid);
        // The URL signer's key is another key: its tags do not make sessions.
        assert_ne!(signer.session_key, signer.csrf_key);
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let signer = MasterSecret::generate().session_signer();
        let one = signer.issue(&key(), at(1000));
        let two = signer.issue(&key(), at(1000));
        let csrf = signer.csrf_token(&one);
        assert_eq!(signer.check_csrf(&one, &csrf), Ok(()));
        assert_eq!(
            signer.check_csrf(&two, &csrf),
            Err(DomainError::CsrfRejected)
        );
        assert_eq!(
            signer.check_csrf(&one, "not base64!"),
            Err(DomainError::CsrfRejected)
        );
        // A session token is not its own CSRF token.
        assert_eq!(
            signer.check_csrf(&one, &one),
            Err(DomainError::CsrfRejected)
        );
    }
}
