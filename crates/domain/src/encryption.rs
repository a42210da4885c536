//! End-to-end encryption as the server sees it (`docs/encryption.md`): the checked public
//! parameters of an encrypted share, and the claim challenge and proof that gate its claims.
//! The server never holds a key that decrypts anything; the claim key only proves possession.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use once_seal::PasswordParams as ReaderLimits;

use crate::{DomainError, Instant};

type HmacSha256 = Hmac<Sha256>;

pub const SCHEME_V1: &str = once_seal::SCHEME;
/// Plaintext bytes per record in `once-v1`.
pub const RECORD_SIZE: u32 = once_seal::RECORD_SIZE as u32;
/// The longest `sealed_meta` text the server keeps.
pub const MAX_SEALED_META_CHARS: usize = 48 * 1024;
/// Nonce (12) and tag (16) of the sealed metadata: anything shorter cannot be a sealed value.
const MIN_SEALED_META_BYTES: usize = 28;
/// How long a claim challenge stays valid.
pub const CHALLENGE_LIFETIME_SECS: i64 = 600;

/// Argon2id parameters of a password-protected share, within the bounds readers accept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordParams {
    pub salt: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The checked encryption of a share. Binary values stay in their b64u text form: the server
/// only hands them back, except the claim key, which it also uses. Serializable so that a
/// store can keep it as one value (the metadata store reads it back through [`Self::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    pub scheme: String,
    pub claim_key: String,
    pub sealed_meta: String,
    pub password: Option<PasswordParams>,
    pub ephemeral_key: Option<String>,
    pub recipient_key: Option<String>,
}

fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, DomainError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| DomainError::InvalidEncryption(what))
}

fn key32(text: &str, what: &'static str) -> Result<[u8; 32], DomainError> {
    decode(text, what)?
        .try_into()
        .map_err(|_| DomainError::InvalidEncryption(what))
}

impl Encryption {
    /// Checks every field against `docs/encryption.md`; the message names the first wrong one.
    pub fn parse(
        scheme: &str,
        claim_key: &str,
        sealed_meta: &str,
        password: Option<PasswordParams>,
        ephemeral_key: Option<&str>,
        recipient_key: Option<&str>,
    ) -> Result<Self, DomainError> {
        if scheme != SCHEME_V1 {
            return Err(DomainError::InvalidEncryption("scheme must be \"once-v1\""));
        }
        key32(claim_key, "claim_key must be 32 bytes of URL-safe base64")?;
        if sealed_meta.len() > MAX_SEALED_META_CHARS {
            return Err(DomainError::InvalidEncryption(
                "sealed_meta must be at most 48 KiB",
            ));
        }
        const META: &str = "sealed_meta must be URL-safe base64 of at least 28 bytes";
        if decode(sealed_meta, META)?.len() < MIN_SEALED_META_BYTES {
            return Err(DomainError::InvalidEncryption(META));
        }
        if let Some(params) = &password {
            const SALT: &str = "password.salt must be 16 bytes of URL-safe base64";
            if decode(&params.salt, SALT)?.len() != 16 {
                return Err(DomainError::InvalidEncryption(SALT));
            }
            if !(1..=ReaderLimits::MAX_PARALLELISM).contains(&params.parallelism) {
                return Err(DomainError::InvalidEncryption(
                    "password.parallelism must be 1 to 4",
                ));
            }
            if !(1..=ReaderLimits::MAX_ITERATIONS).contains(&params.iterations) {
                return Err(DomainError::InvalidEncryption(
                    "password.iterations must be 1 to 10",
                ));
            }
            // Argon2 needs 8 KiB per lane; the upper bound keeps clients' memory bounded.
            if !(8 * params.parallelism..=ReaderLimits::MAX_MEMORY_KIB).contains(&params.memory_kib)
            {
                return Err(DomainError::InvalidEncryption(
                    "password.memory_kib must be 8·parallelism to 262144",
                ));
            }
        }
        match (ephemeral_key, recipient_key) {
            (None, None) => {}
            (Some(ephemeral), Some(recipient)) => {
                key32(
                    ephemeral,
                    "ephemeral_key must be 32 bytes of URL-safe base64",
                )?;
                key32(
                    recipient,
                    "recipient_key must be 32 bytes of URL-safe base64",
                )?;
            }
            _ => {
                return Err(DomainError::InvalidEncryption(
                    "ephemeral_key and recipient_key come together",
                ));
            }
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            claim_key: claim_key.to_owned(),
            sealed_meta: sealed_meta.to_owned(),
            password,
            ephemeral_key: ephemeral_key.map(str::to_owned),
            recipient_key: recipient_key.map(str::to_owned),
        })
    }

    /// Checks an already stored value again (as [`Self::parse`] checks a new one).
    pub fn recheck(self) -> Result<Self, DomainError> {
        Self::parse(
            &self.scheme,
            &self.claim_key,
            &self.sealed_meta,
            self.password.clone(),
            self.ephemeral_key.as_deref(),
            self.recipient_key.as_deref(),
        )
    }

    /// Made by an upload to an encrypted request (it carries both X25519 public keys).
    pub fn is_request_upload(&self) -> bool {
        self.ephemeral_key.is_some() && self.recipient_key.is_some()
    }

    /// Checks an `X-Once-Proof` header (`CHALLENGE.B64U_MAC`) for `share_id`: the challenge
    /// must be one of ours for this share and unexpired, and the MAC must verify with the
    /// claim key (in constant time).
    pub fn verify_proof(
        &self,
        signer: &ChallengeSigner,
        share_id: &str,
        proof: Option<&str>,
        now: Instant,
    ) -> Result<(), DomainError> {
        let proof = proof.ok_or(DomainError::KeyRequired)?;
        let (challenge, mac) = proof.rsplit_once('.').ok_or(DomainError::WrongKey)?;
        signer.check(challenge, share_id, now)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| DomainError::WrongKey)?;
        let key = key32(&self.claim_key, "claim_key").map_err(|_| DomainError::Internal)?;
        once_seal::claim_mac(&key, share_id, challenge)
            .verify_slice(&mac)
            .map_err(|_| DomainError::WrongKey)
    }
}

/// The proof a client sends for `challenge` (tests and reference for clients).
pub fn claim_proof(claim_key: &[u8; 32], share_id: &str, challenge: &str) -> String {
    let tag = once_seal::claim_mac(claim_key, share_id, challenge)
        .finalize()
        .into_bytes();
    format!("{challenge}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Stateless claim challenges: any instance sharing the master secret checks any instance's.
/// A challenge is b64u(expiry BE64 || 16 random bytes || HMAC(key, share_id || those 24
/// bytes)), so it holds no '.' and binds the share and its expiry.
#[derive(Clone)]
pub struct ChallengeSigner {
    pub(crate) key: [u8; 32],
}

impl ChallengeSigner {
    fn tag(&self, share_id: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(share_id.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        mac
    }

    /// A fresh challenge for `share_id` and the instant it expires.
    pub fn issue(&self, share_id: &str, now: Instant) -> (String, Instant) {
        let expires_at = now + time::Duration::seconds(CHALLENGE_LIFETIME_SECS);
        let mut body = [0u8; 24];
        body[..8].copy_from_slice(&expires_at.unix_timestamp().to_be_bytes());
        rand::rng().fill_bytes(&mut body[8..]);
        let tag = self.tag(share_id, &body).finalize().into_bytes();
        let mut token = body.to_vec();
        token.extend_from_slice(&tag);
        (URL_SAFE_NO_PAD.encode(token), expires_at)
    }

    /// Any challenge that is not ours, not for this share, or past its expiry is "expired":
    /// one answer, so a client's remedy (fetch a new one) is the same for all.
    pub fn check(&self, challenge: &str, share_id: &str, now: Instant) -> Result<(), DomainError> {
        let token = URL_SAFE_NO_PAD
            .decode(challenge)
            .map_err(|_| DomainError::ChallengeExpired)?;
        if token.len() != 24 + 32 {
            return Err(DomainError::ChallengeExpired);
        }
        let (body, tag) = token.split_at(24);
        self.tag(share_id, body)
            .verify_slice(tag)
            .map_err(|_| DomainError::ChallengeExpired)?;
        let expiry = i64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
        if now.unix_timestamp() >= expiry {
            return Err(DomainError::ChallengeExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterSecret;

    const SHARE: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn claim_key() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    fn sample(claim_key: &[u8; 32]) -> Encryption {
        Encryption::parse(
            SCHEME_V1,
            &URL_SAFE_NO_PAD.encode(claim_key),
            &URL_SAFE_NO_PAD.encode([7u8; 40]),
            None,
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn fixed_proof_vector_matches_python_hmac() {
        // python3: hmac.new(bytes(range(32)), b"once/v1 claim\nAAAAAAAAAAAAAAAAAAAAAA\nY2hhbGxlbmdl", sha256)
        assert_eq!(
            claim_proof(&claim_key(), SHARE, "Y2hhbGxlbmdl"),
            "Y2hhbGxlbmdl.mmnZb1F1IMPYrG2NLmMSl_WBonSwugiCifXstbXTl08"
        );
    }

    #[test]
    fn proof_checks() {
        let signer = MasterSecret::generate().challenge_signer();
        let now = crate::now();
        let encryption = sample(&claim_key());
        let (challenge, expires_at) = signer.issue(SHARE, now);
        assert!(!challenge.contains('.'));
        assert_eq!(expires_at, now + time::Duration::minutes(10));
        let good = claim_proof(&claim_key(), SHARE, &challenge);
        assert_eq!(
            encryption.verify_proof(&signer, SHARE, Some(&good), now),
            Ok(())
        );
        let check = |proof: Option<&str>, share: &str, at: Instant| {
            encryption.verify_proof(&signer, share, proof, at)
        };
        assert_eq!(check(None, SHARE, now), Err(DomainError::KeyRequired));
        let wrong = claim_proof(&[9u8; 32], SHARE, &challenge);
        assert_eq!(check(Some(&wrong), SHARE, now), Err(DomainError::WrongKey));
        assert_eq!(
            check(Some("garbage"), SHARE, now),
            Err(DomainError::WrongKey)
        );
        let later = expires_at;
        assert_eq!(
            check(Some(&good), SHARE, later),
            Err(DomainError::ChallengeExpired)
        );
        let other = "BBBBBBBBBBBBBBBBBBBBBB";
        let for_other = claim_proof(&claim_key(), other, &challenge);
        assert_eq!(
            check(Some(&for_other), other, now),
            Err(DomainError::ChallengeExpired)
        );
        let forged = claim_proof(&claim_key(), SHARE, "Y2hhbGxlbmdl");
        assert_eq!(
            check(Some(&forged), SHARE, now),
            Err(DomainError::ChallengeExpired)
        );
        let foreign = MasterSecret::generate().challenge_signer();
        assert_eq!(
            encryption.verify_proof(&foreign, SHARE, Some(&good), now),
            Err(DomainError::ChallengeExpired)
        );
    }

    #[test]
    fn parse_refuses_bad_fields() {
        let key = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let meta = URL_SAFE_NO_PAD.encode([2u8; 28]);
        let ok = |password, e: Option<&str>, r: Option<&str>| {
            Encryption::parse(SCHEME_V1, &key, &meta, password, e, r)
        };
        assert!(ok(None, None, None).is_ok());
        assert!(Encryption::parse("once-v2", &key, &meta, None, None, None).is_err());
        let short = URL_SAFE_NO_PAD.encode([1u8; 31]);
        assert!(Encryption::parse(SCHEME_V1, &short, &meta, None, None, None).is_err());
        let tiny = URL_SAFE_NO_PAD.encode([2u8; 27]);
        assert!(Encryption::parse(SCHEME_V1, &key, &tiny, None, None, None).is_err());
        let huge = "A".repeat(MAX_SEALED_META_CHARS + 1);
        assert!(Encryption::parse(SCHEME_V1, &key, &huge, None, None, None).is_err());
        assert!(Encryption::parse(SCHEME_V1, &key, "a+b/", None, None, None).is_err());
        let params = |salt: usize, m, t, p| PasswordParams {
            salt: URL_SAFE_NO_PAD.encode(vec![3u8; salt]),
            memory_kib: m,
            iterations: t,
            parallelism: p,
        };
        assert!(ok(Some(params(16, 19456, 2, 1)), None, None).is_ok());
        assert!(ok(Some(params(16, 262_144, 10, 4)), None, None).is_ok());
        assert!(ok(Some(params(15, 19456, 2, 1)), None, None).is_err());
        assert!(ok(Some(params(16, 262_145, 2, 1)), None, None).is_err());
        assert!(ok(Some(params(16, 31, 2, 4)), None, None).is_err());
        assert!(ok(Some(params(16, 19456, 0, 1)), None, None).is_err());
        assert!(ok(Some(params(16, 19456, 11, 1)), None, None).is_err());
        assert!(ok(Some(params(16, 19456, 2, 5)), None, None).is_err());
        assert!(ok(Some(params(16, 19456, 2, 0)), None, None).is_err());
        assert!(ok(None, Some(&key), Some(&key)).is_ok());
        assert!(ok(None, Some(&key), None).is_err());
        assert!(ok(None, None, Some(&key)).is_err());
        assert!(ok(None, Some(&short), Some(&key)).is_err());
        let error = ok(None, Some(&key), None).unwrap_err();
        assert_eq!(error.code(), "invalid_encryption");
    }
}
