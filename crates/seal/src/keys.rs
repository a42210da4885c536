//! The share secret, the password's Argon2id parameters, and the keys HKDF derives from them:
//! content records, metadata and the claim proof all use separate keys.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

use crate::{RECORD_SIZE, SEALED_RECORD_SIZE, SealError, TAG_SIZE, b64u, from_b64u, key_from_b64u};

const SHARE_SALT: &[u8] = b"once/v1";
pub(crate) const REQUEST_SALT: &[u8] = b"once/v1 request";
const CONTENT_KEY_INFO: &[u8] = b"once/v1 content key";
const CONTENT_NONCE_INFO: &[u8] = b"once/v1 content nonce";
const METADATA_KEY_INFO: &[u8] = b"once/v1 metadata key";
const CLAIM_KEY_INFO: &[u8] = b"once/v1 claim key";
const METADATA_AAD: &[u8] = b"once/v1 metadata";
const CLAIM_LABEL: &[u8] = b"once/v1 claim\n";
const NONCE_SIZE: usize = 12;

/// The 32 random bytes of a share link's fragment.
pub struct Secret([u8; 32]);

impl Secret {
    pub fn generate() -> Secret {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }

    /// Reads the fragment of a share link: 43 [`b64u`] characters, with or without the `#`.
    pub fn from_fragment(fragment: &str) -> Result<Secret, SealError> {
        let text = fragment.strip_prefix('#').unwrap_or(fragment);
        key_from_b64u(text)
            .map(Secret)
            .ok_or(SealError::InvalidFragment)
    }

    /// The link's fragment, without the `#`.
    pub fn to_fragment(&self) -> String {
        b64u(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Argon2id parameters of a password-protected share. The sender picks them; a reader refuses
/// values above its limits so a hostile server cannot make it spend unbounded memory or time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    pub salt: [u8; 16],
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordParams {
    /// What `once` uses: the OWASP minimum for Argon2id.
    pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
    pub const DEFAULT_ITERATIONS: u32 = 2;
    pub const DEFAULT_PARALLELISM: u32 = 1;
    /// The most a reader accepts.
    pub const MAX_MEMORY_KIB: u32 = 262_144;
    pub const MAX_ITERATIONS: u32 = 10;
    pub const MAX_PARALLELISM: u32 = 4;

    /// A random salt and the default parameters.
    pub fn generate() -> PasswordParams {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        PasswordParams::with_salt(salt)
    }

    /// The default parameters with a given salt.
    pub fn with_salt(salt: [u8; 16]) -> PasswordParams {
        PasswordParams {
            salt,
            memory_kib: Self::DEFAULT_MEMORY_KIB,
            iterations: Self::DEFAULT_ITERATIONS,
            parallelism: Self::DEFAULT_PARALLELISM,
        }
    }

    /// Refuses parameters above the reader limits or below Argon2's minimums.
    pub fn check(&self) -> Result<(), SealError> {
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<argon2::Params, SealError> {
        if self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(SealError::Password(format!(
                "memory {} KiB is over the limit of {} KiB",
                self.memory_kib,
                Self::MAX_MEMORY_KIB
            )));
        }
        if self.iterations > Self::MAX_ITERATIONS {
            return Err(SealError::Password(format!(
                "{} iterations are over the limit of {}",
                self.iterations,
                Self::MAX_ITERATIONS
            )));
        }
        if self.parallelism > Self::MAX_PARALLELISM {
            return Err(SealError::Password(format!(
                "parallelism {} is over the limit of {}",
                self.parallelism,
                Self::MAX_PARALLELISM
            )));
        }
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|error| SealError::Password(error.to_string()))
    }

    /// `W = Argon2id(NFC(password), salt, m, t, p, 32)`; public for the test vectors only.
    #[doc(hidden)]
    pub fn stretch(&self, password: &str) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let argon2 = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.argon2_params()?,
        );
        // NFC so that the same password typed on two systems (composed or decomposed accents)
        // gives the same key.
        let normalized = Zeroizing::new(password.nfc().collect::<String>());
        let mut stretched = Zeroizing::new([0u8; 32]);
        argon2
            .hash_password_into(normalized.as_bytes(), &self.salt, stretched.as_mut())
            .map_err(|error| SealError::Password(error.to_string()))?;
        Ok(stretched)
    }
}

/// The keys of one share. Cloning is cheap (one shared allocation) and the keys can be used
/// from several threads at once.
#[derive(Clone)]
pub struct Keys(Arc<KeysInner>);

struct KeysInner {
    content: Aes256Gcm,
    metadata: Aes256Gcm,
    nonce_base: [u8; NONCE_SIZE],
    content_key: Zeroizing<[u8; 32]>,
    metadata_key: Zeroizing<[u8; 32]>,
    claim_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// The keys of a share link: `IKM = S`, or `S || Argon2id(NFC(password))` with a password.
    pub fn for_share(
        secret: &Secret,
        password: Option<(&str, &PasswordParams)>,
    ) -> Result<Keys, SealError> {
        let mut ikm = Zeroizing::new(secret.0.to_vec());
        if let Some((password, params)) = password {
            ikm.extend_from_slice(params.stretch(password)?.as_ref());
        }
        Ok(Keys::derive(SHARE_SALT, &ikm))
    }

    /// HKDF-Extract with `salt`, then one HKDF-Expand per key.
    pub(crate) fn derive(salt: &[u8], ikm: &[u8]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
        let expand = |info: &[u8], out: &mut [u8]| {
            hkdf.expand(info, out)
                .expect("HKDF-SHA-256 can expand to 32 bytes");
        };
        let mut content_key = Zeroizing::new([0u8; 32]);
        let mut nonce_base = [0u8; NONCE_SIZE];
        let mut metadata_key = Zeroizing::new([0u8; 32]);
        let mut claim_key = Zeroizing::new([0u8; 32]);
        expand(CONTENT_KEY_INFO, content_key.as_mut());
        expand(CONTENT_NONCE_INFO, &mut nonce_base);
        expand(METADATA_KEY_INFO, metadata_key.as_mut());
        expand(CLAIM_KEY_INFO, claim_key.as_mut());
        Keys(Arc::new(KeysInner {
            content: Aes256Gcm::new(content_key.as_ref().into()),
            metadata: Aes256Gcm::new(metadata_key.as_ref().into()),
            nonce_base,
            content_key,
            metadata_key,
            claim_key,
        }))
    }

    /// `Ka`: the sender gives it to the server, which checks claim proofs with it.
    pub fn claim_key(&self) -> [u8; 32] {
        *self.0.claim_key
    }

    /// `Kc`, for the test vectors only.
    #[doc(hidden)]
    pub fn content_key(&self) -> [u8; 32] {
        *self.0.content_key
    }

    /// `Km`, for the test vectors only.
    #[doc(hidden)]
    pub fn metadata_key(&self) -> [u8; 32] {
        *self.0.metadata_key
    }

    /// `Nb`, for the test vectors only.
    #[doc(hidden)]
    pub fn nonce_base(&self) -> [u8; 12] {
        self.0.nonce_base
    }

    /// `nonce_i = Nb XOR (0x00 0x00 0x00 || BE64(i) || F)`.
    #[doc(hidden)]
    pub fn record_nonce(&self, index: u64, last: bool) -> [u8; 12] {
        let mut nonce = self.0.nonce_base;
        for (byte, counter) in nonce[3..11].iter_mut().zip(index.to_be_bytes()) {
            *byte ^= counter;
        }
        nonce[11] ^= u8::from(last);
        nonce
    }

    /// Seals one record: `plaintext` holds at most [`RECORD_SIZE`] bytes, exactly that many
    /// unless `last`. Returns ciphertext || tag.
    ///
    /// # Panics
    /// On a plaintext of the wrong size: that is a bug of the caller, not bad input.
    pub fn seal_record(&self, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(plaintext.len() + TAG_SIZE);
        self.seal_record_into(index, last, plaintext, &mut sealed);
        sealed
    }

    pub(crate) fn seal_record_into(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        assert!(
            plaintext.len() <= RECORD_SIZE && (last || plaintext.len() == RECORD_SIZE),
            "record {index} has {} bytes of plaintext",
            plaintext.len()
        );
        let start = out.len();
        out.extend_from_slice(plaintext);
        let nonce = self.record_nonce(index, last);
        let tag = self
            .0
            .content
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut out[start..])
            .expect("AES-GCM seals a record of at most 64 KiB");
        out.extend_from_slice(&tag);
    }

    /// Opens one record (ciphertext || tag) sealed by [`Keys::seal_record`]; any mismatch of
    /// bytes, index, finality or size is [`SealError::Tampered`].
    pub fn open_record(&self, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut plaintext = Vec::with_capacity(sealed.len().saturating_sub(TAG_SIZE));
        self.open_record_into(index, last, sealed, &mut plaintext)?;
        Ok(plaintext)
    }

    pub(crate) fn open_record_into(
        &self,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let tampered = SealError::Tampered { record: index };
        let size_fits = if last {
            (TAG_SIZE..=SEALED_RECORD_SIZE).contains(&sealed.len())
        } else {
            sealed.len() == SEALED_RECORD_SIZE
        };
        if !size_fits {
            return Err(tampered);
        }
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_SIZE);
        let start = out.len();
        out.extend_from_slice(ciphertext);
        let nonce = self.record_nonce(index, last);
        let opened = self.0.content.decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            b"",
            &mut out[start..],
            Tag::from_slice(tag),
        );
        if opened.is_err() {
            // Never hand out unauthenticated plaintext.
            out.truncate(start);
            return Err(tampered);
        }
        Ok(())
    }

    /// `b64u(nonce || AES-GCM(Km, nonce, plaintext, aad = "once/v1 metadata"))` with a random
    /// nonce.
    pub fn seal_metadata(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_SIZE];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_metadata_with_nonce(plaintext, nonce)
    }

    /// [`Keys::seal_metadata`] with a given nonce, for the test vectors only: a nonce must
    /// never be used twice with one key.
    #[doc(hidden)]
    pub fn seal_metadata_with_nonce(&self, plaintext: &[u8], nonce: [u8; 12]) -> String {
        let mut sealed = Vec::with_capacity(NONCE_SIZE + plaintext.len() + TAG_SIZE);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .0
            .metadata
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                METADATA_AAD,
                &mut sealed[NONCE_SIZE..],
            )
            .expect("AES-GCM seals metadata");
        sealed.extend_from_slice(&tag);
        b64u(&sealed)
    }

    /// Opens [`Keys::seal_metadata`]'s text. A failed tag means the key or the password is
    /// wrong ([`SealError::WrongKey`]); text that is not even shaped like sealed metadata is
    /// [`SealError::InvalidKey`].
    pub fn open_metadata(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut bytes = from_b64u(sealed)?;
        if bytes.len() < NONCE_SIZE + TAG_SIZE {
            return Err(SealError::InvalidKey);
        }
        let tag_start = bytes.len() - TAG_SIZE;
        let tag = *Tag::from_slice(&bytes[tag_start..]);
        let nonce = *Nonce::from_slice(&bytes[..NONCE_SIZE]);
        bytes.truncate(tag_start);
        let mut plaintext = bytes.split_off(NONCE_SIZE);
        self.0
            .metadata
            .decrypt_in_place_detached(&nonce, METADATA_AAD, &mut plaintext, &tag)
            .map_err(|_| SealError::WrongKey)?;
        Ok(plaintext)
    }

    /// The `X-Once-Proof` header value:
    /// `CHALLENGE.b64u(HMAC-SHA-256(Ka, "once/v1 claim\n" || id || "\n" || CHALLENGE))`.
    pub fn claim_proof(&self, share_id: &str, challenge: &str) -> String {
        let mac = claim_mac(self.0.claim_key.as_ref(), share_id, challenge);
        format!("{challenge}.{}", b64u(&mac.finalize().into_bytes()))
    }
}

/// The one definition of the claim proof's MAC, HMAC-SHA-256(Ka, "once/v1 claim\n" || id ||
/// "\n" || challenge): clients finalize it, the server verifies it (in constant time).
pub fn claim_mac(claim_key: &[u8], share_id: &str, challenge: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(claim_key).expect("HMAC takes a key of any length");
    mac.update(CLAIM_LABEL);
    mac.update(share_id.as_bytes());
    mac.update(b"\n");
    mac.update(challenge.as_bytes());
    mac
}
