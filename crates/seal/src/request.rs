//! Upload requests: the requester publishes an X25519 public key `R` in the request link; an
//! uploader seals to it with a fresh ephemeral key `E`, and only the requester's private key
//! can derive the same keys again.

use std::fmt;

use rand::RngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::keys::{Keys, REQUEST_SALT};
use crate::{SealError, b64u, key_from_b64u};

/// The requester's X25519 key pair.
pub struct RequestKeyPair(StaticSecret);

impl RequestKeyPair {
    pub fn generate() -> RequestKeyPair {
        RequestKeyPair(random_static_secret())
    }

    pub fn from_bytes(private: [u8; 32]) -> RequestKeyPair {
        RequestKeyPair(StaticSecret::from(private))
    }

    /// The private key, for the requester's key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// The request link's fragment: `b64u(R)`, 43 characters.
    pub fn public_fragment(&self) -> String {
        b64u(&self.public_key())
    }

    /// The requester's side: the keys of an upload sealed with ephemeral public key `E`.
    pub fn keys_for_upload(&self, ephemeral_public: &[u8; 32]) -> Result<Keys, SealError> {
        request_keys(
            &self.0,
            ephemeral_public,
            ephemeral_public,
            &self.public_key(),
        )
    }

    /// `Z = X25519(private, their_public)`, for the test vectors only.
    #[doc(hidden)]
    pub fn shared_secret(&self, their_public: &[u8; 32]) -> [u8; 32] {
        *self
            .0
            .diffie_hellman(&PublicKey::from(*their_public))
            .as_bytes()
    }
}

impl fmt::Debug for RequestKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestKeyPair({})", self.public_fragment())
    }
}

/// The uploader's side of a request upload: the keys, and `E` and `R` to give the server.
#[derive(Debug)]
pub struct SealedToRecipient {
    pub keys: Keys,
    pub ephemeral_public: [u8; 32],
    pub recipient_public: [u8; 32],
}

/// Seals to the requester whose public key is the request link's fragment (with or without
/// `#`), with a fresh ephemeral key.
pub fn seal_to_recipient(recipient_fragment: &str) -> Result<SealedToRecipient, SealError> {
    seal_to_recipient_from(recipient_fragment, random_static_secret())
}

/// [`seal_to_recipient`] with a given ephemeral private key, for the test vectors only.
#[doc(hidden)]
pub fn seal_to_recipient_with(
    recipient_fragment: &str,
    ephemeral_private: [u8; 32],
) -> Result<SealedToRecipient, SealError> {
    seal_to_recipient_from(recipient_fragment, StaticSecret::from(ephemeral_private))
}

fn seal_to_recipient_from(
    recipient_fragment: &str,
    ephemeral: StaticSecret,
) -> Result<SealedToRecipient, SealError> {
    let text = recipient_fragment
        .strip_prefix('#')
        .unwrap_or(recipient_fragment);
    let recipient_public = key_from_b64u(text).ok_or(SealError::InvalidFragment)?;
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let keys = request_keys(
        &ephemeral,
        &recipient_public,
        &ephemeral_public,
        &recipient_public,
    )?;
    Ok(SealedToRecipient {
        keys,
        ephemeral_public,
        recipient_public,
    })
}

/// `Z = X25519(own, their)`, refused when all zero (a small-order public key), then
/// `IKM = Z || E || R` under the request salt. Both sides get the same `Z`, and pass `E` and
/// `R` in that order whichever side they are.
fn request_keys(
    own_private: &StaticSecret,
    their_public: &[u8; 32],
    ephemeral_public: &[u8; 32],
    recipient_public: &[u8; 32],
) -> Result<Keys, SealError> {
    let shared = own_private.diffie_hellman(&PublicKey::from(*their_public));
    if !shared.was_contributory() {
        return Err(SealError::WeakKey);
    }
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(shared.as_bytes());
    ikm.extend_from_slice(ephemeral_public);
    ikm.extend_from_slice(recipient_public);
    Ok(Keys::derive(REQUEST_SALT, &ikm))
}

fn random_static_secret() -> StaticSecret {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut());
    StaticSecret::from(*bytes)
}
