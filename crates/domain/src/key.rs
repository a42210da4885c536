//! API keys: one token `KEYID.SECRET`. The server keeps SHA-256(SECRET) for bearer checks
//! (compared in constant time) and, because HMAC-signed requests need the secret itself, a copy
//! sealed under the instance's master secret (see [`crate::SecretSealer`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{DomainError, Instant, KeyId};

/// 32 random bytes as 43 URL-safe base64 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

impl KeySecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| DomainError::InvalidCredentials)?;
        if text.len() == 43 && decoded.len() == 32 {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::InvalidCredentials)
        }
    }

    /// The secret text exactly as it appears in the token; this is also the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Constant-time comparison against a stored hash.
    pub fn matches_hash(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.hash().ct_eq(stored))
    }
}

/// A whole API token, `KEYID.SECRET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: KeyId,
    pub secret: KeySecret,
}

impl ApiToken {
    pub fn generate() -> Self {
        Self {
            id: KeyId::generate(),
            secret: KeySecret::generate(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let (id, secret) = text
            .trim()
            .split_once('.')
            .ok_or(DomainError::InvalidCredentials)?;
        Ok(Self {
            id: KeyId::parse(id)?,
            secret: KeySecret::parse(secret)?,
        })
    }

    /// The token as the user copies it. Only ever shown once, at creation.
    pub fn reveal(&self) -> String {
        format!("{}.{}", self.id, self.secret.expose())
    }
}

/// What the stores keep about a key, minus the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Instant,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<Instant>,
}

impl KeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Key names are labels for humans: printable, short.
pub fn validate_key_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::InvalidKeyName);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_the_documented_shape_and_round_trips() {
        let token = ApiToken::generate();
        let text = token.reveal();
        let (id, secret) = text.split_once('.').unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(secret.len(), 43);
        assert_eq!(ApiToken::parse(&text).unwrap(), token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "nodot",
            "0123456789abcdef.short",
            "XYZ.aaaa",
            "0123456789abcdef.",
        ] {
            assert_eq!(
                ApiToken::parse(bad),
                Err(DomainError::InvalidCredentials),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_matches_only_its_own_hash() {
        let secret = KeySecret::generate();
        assert!(secret.matches_hash(&secret.hash()));
        assert!(!secret.matches_hash(&KeySecret::generate().hash()));
        assert!(!secret.matches_hash(&[0u8; 5]));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = KeySecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
