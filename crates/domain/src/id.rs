//! Identifiers. Share and request ids are capabilities (whoever knows one can use it), so they
//! carry 128 bits from the OS random generator and are validated once at the edge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::DomainError;

/// 16 random bytes as 22 URL-safe base64 characters.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn is_token(text: &str) -> bool {
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == 16)
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(random_token())
            }

            pub fn parse(text: &str) -> Result<Self, DomainError> {
                if is_token(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(DomainError::InvalidId)
                }
            }

            /// The first characters only, for logs: the whole id is a capability (anyone
            /// holding it can use the link), and logs are read by more people than links.
            pub fn log_label(&self) -> String {
                format!("{}…", &self.0[..6])
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

token_id!(
    /// The public id of a share, the capability in `/s/{id}`.
    ShareId
);
token_id!(
    /// The public id of an upload request, the capability in `/r/{id}`.
    RequestId
);
token_id!(
    /// Names one multipart upload in its part and completion URLs (the capability to send its
    /// bytes, which is not the capability to download them).
    UploadToken
);

/// Where a share's bytes live in the blob store: two random tokens, `{token}.{token}`. Never
/// derived from a user-supplied filename, so a key can never point outside the store; fresh
/// for every upload attempt, so concurrent attempts never write the same object; and unrelated
/// to the share id, so a download URL (which names the key) does not reveal the share's link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// A fresh key for one upload attempt.
    pub fn generate() -> Self {
        Self(format!("{}.{}", random_token(), random_token()))
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let Some((first, second)) = text.split_once('.') else {
            return Err(DomainError::InvalidId);
        };
        if is_token(first) && is_token(second) {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public half of an API key: 16 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::InvalidCredentials)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_differ() {
        let a = ShareId::generate();
        let b = ShareId::generate();
        assert_ne!(a, b);
        assert_eq!(ShareId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 22);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "short",
            "../../etc/passwd",
            "aaaaaaaaaaaaaaaaaaaaa/",
            "é",
        ] {
            assert_eq!(ShareId::parse(bad), Err(DomainError::InvalidId), "{bad}");
        }
    }

    #[test]
    fn blob_key_belongs_to_its_share_and_rejects_traversal() {
        let share = ShareId::generate();
        let key = BlobKey::generate();
        assert!(!key.as_str().contains(share.as_str()));
        let label = share.log_label();
        assert!(share.as_str().starts_with(label.trim_end_matches('…')));
        assert!(label.chars().count() < 10, "a log label is no usable link");
        assert_ne!(BlobKey::generate(), key);
        assert_eq!(BlobKey::parse(key.as_str()).unwrap(), key);
        assert!(BlobKey::parse("../x.y").is_err());
        assert!(BlobKey::parse(share.as_str()).is_err());
    }

    #[test]
    fn key_ids_are_sixteen_lowercase_hex() {
        let id = KeyId::generate();
        assert_eq!(id.as_str().len(), 16);
        assert!(KeyId::parse(id.as_str()).is_ok());
        assert!(KeyId::parse("ABCDEF0123456789").is_err());
        assert!(KeyId::parse("abc").is_err());
    }
}
