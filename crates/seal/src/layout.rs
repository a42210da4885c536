//! Where records sit in the sealed stream, and which sealed lengths can exist: a reader checks
//! the length before it opens anything, and a resumed download starts at a record's offset.

use crate::{RECORD_SIZE, SEALED_RECORD_SIZE, SealError, TAG_SIZE};

const RS: u64 = RECORD_SIZE as u64;
const SRS: u64 = SEALED_RECORD_SIZE as u64;
const TAG: u64 = TAG_SIZE as u64;

/// Records of a plaintext of `plain_len` bytes: `max(1, ceil(p / RS))` (an empty file is one
/// empty final record).
pub fn record_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(RS).max(1)
}

/// `p + 16 · n`.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len + TAG * record_count(plain_len)
}

/// The plaintext length of a sealed stream of `sealed_len` bytes, or
/// [`SealError::InvalidLength`] when no plaintext seals to that length.
pub fn plain_len(sealed_len: u64) -> Result<u64, SealError> {
    if sealed_len < TAG {
        return Err(SealError::InvalidLength);
    }
    let records = sealed_len.div_ceil(SRS);
    let last_record = sealed_len - (records - 1) * SRS;
    // Only an empty file has a record of tag alone, and then it is the only one.
    if records > 1 && last_record <= TAG {
        return Err(SealError::InvalidLength);
    }
    Ok(sealed_len - TAG * records)
}

/// Offset of record `record` in the sealed stream.
pub fn sealed_offset(record: u64) -> u64 {
    record * SRS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interesting_lengths() -> Vec<u64> {
        let mut lengths = Vec::new();
        for records in 0..5u64 {
            for delta in 0..40u64 {
                lengths.push((records * RS + delta).saturating_sub(20));
            }
        }
        lengths.extend([RS - 1, RS, RS + 1, 5 * RS, 1 << 40, (1 << 40) + 17]);
        lengths
    }

    #[test]
    fn plain_len_inverts_sealed_len() {
        for p in interesting_lengths() {
            assert_eq!(plain_len(sealed_len(p)), Ok(p), "p = {p}");
        }
    }

    #[test]
    fn every_valid_sealed_length_comes_from_exactly_one_plain_length() {
        for c in interesting_lengths() {
            if let Ok(p) = plain_len(c) {
                assert_eq!(sealed_len(p), c, "c = {c}");
            }
        }
    }

    #[test]
    fn impossible_sealed_lengths_are_refused() {
        for c in [0, 1, 15, SRS + 1, SRS + 16, 2 * SRS + 16, 3 * SRS + 3] {
            assert_eq!(plain_len(c), Err(SealError::InvalidLength), "c = {c}");
        }
        assert_eq!(plain_len(16), Ok(0));
        assert_eq!(plain_len(SRS), Ok(RS));
        assert_eq!(plain_len(SRS + 17), Ok(RS + 1));
    }

    #[test]
    fn counts_and_offsets() {
        assert_eq!(record_count(0), 1);
        assert_eq!(record_count(1), 1);
        assert_eq!(record_count(RS), 1);
        assert_eq!(record_count(RS + 1), 2);
        assert_eq!(record_count(3 * RS), 3);
        assert_eq!(sealed_len(0), 16);
        assert_eq!(sealed_len(RS + 1), RS + 1 + 32);
        assert_eq!(sealed_offset(0), 0);
        assert_eq!(sealed_offset(3), 3 * SRS);
    }
}
