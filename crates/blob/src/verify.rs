//! The rule every store applies to a write, in one place: never more than the declared size
//! (or the maximum), exactly the declared size in the end, and the declared SHA-256. Checked
//! while the bytes go by, before anything becomes visible.

use once_domain::Sha256Digest;
use sha2::{Digest, Sha256};

use crate::{BlobError, BlobInfo, BlobResult, PutLimits};

/// Enforces the limits of a write while its bytes go by.
pub(crate) struct Verifier {
    limits: PutLimits,
    /// The most bytes the write may have: the declared size, capped by the maximum.
    pub(crate) limit: u64,
    received: u64,
    hasher: Sha256,
}

impl Verifier {
    pub(crate) fn new(limits: PutLimits) -> Self {
        let limit = limits
            .expected_size
            .map_or(limits.max_size, |size| size.min(limits.max_size));
        Self {
            limits,
            limit,
            received: 0,
            hasher: Sha256::new(),
        }
    }

    /// Bytes taken so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Counts and hashes a chunk; refuses it when the write grows past its limit.
    pub(crate) fn take(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Checks the whole write against what was declared.
    pub(crate) fn finish(self) -> BlobResult<BlobInfo> {
        if let Some(expected) = self.limits.expected_size
            && self.received != expected
        {
            return Err(BlobError::SizeMismatch {
                expected,
                actual: self.received,
            });
        }
        let sha256 = Sha256Digest(self.hasher.finalize().into());
        if self
            .limits
            .sha256
            .is_some_and(|declared| declared != sha256)
        {
            return Err(BlobError::ChecksumMismatch);
        }
        Ok(BlobInfo {
            size: self.received,
            sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_enforces_declared_size_and_checksum() {
        let limits = PutLimits {
            expected_size: Some(3),
            max_size: 100,
            sha256: None,
        };
        let mut verifier = Verifier::new(limits);
        assert!(matches!(
            verifier.take(b"abcd"),
            Err(BlobError::TooLarge { limit: 3 })
        ));
        let mut verifier = Verifier::new(limits);
        verifier.take(b"ab").unwrap();
        assert!(matches!(
            verifier.finish(),
            Err(BlobError::SizeMismatch {
                expected: 3,
                actual: 2
            })
        ));
        let digest = Sha256Digest(Sha256::digest(b"abc").into());
        let mut verifier = Verifier::new(PutLimits {
            sha256: Some(digest),
            ..limits
        });
        verifier.take(b"abc").unwrap();
        assert_eq!(verifier.finish().unwrap().sha256, digest);
    }
}
