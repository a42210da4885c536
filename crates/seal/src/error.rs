//! Everything that can go wrong while deriving keys or opening sealed data. The texts are shown
//! to users as they are, so they say what happened in words a recipient understands.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("the link's key is not valid: it must be the 43 characters after '#'")]
    InvalidFragment,
    #[error("a key or sealed value is malformed (not the expected URL-safe base64 bytes)")]
    InvalidKey,
    #[error("the encrypted size is not a valid once-v1 length")]
    InvalidLength,
    #[error("record {record} failed authentication: the file was damaged or tampered with")]
    Tampered { record: u64 },
    #[error("the encrypted file ended early: it was cut short")]
    Truncated,
    #[error("the link's key or the password is wrong")]
    WrongKey,
    #[error("password parameters refused: {0}")]
    Password(String),
    #[error("the public key is weak (it gives an all-zero shared secret) and is refused")]
    WeakKey,
}
