//! The rules of a multipart upload, the same on every store: the upload is cut into parts of
//! `part_size` bytes (the last one shorter), each sent on its own and retried on its own, then
//! completed by listing the parts in order. Which lengths a part may have, and whether a
//! reported list of parts makes a whole upload, is decided here; the stores only hold bytes.

use crate::DomainError;

/// S3's limit on the parts of one upload; the embedded store keeps the same so that a client
/// behaves the same against both.
pub const MAX_PARTS: u16 = 10_000;
/// The smallest part S3 accepts (all but the last part must be at least this long).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// How an upload is cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLayout {
    pub part_size: u64,
    /// The declared size, or None for an upload of unknown length (a pipe).
    pub size: Option<u64>,
    /// What the upload may never exceed (the declared size, or the server's limit).
    pub max_size: u64,
}

/// A part as the storage holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub number: u16,
    pub size: u64,
    /// The storage's tag of the part's bytes (S3: its ETag; embedded: hex SHA-256), unquoted;
    /// empty where the storage lists parts without their tags (some S3-compatible stores),
    /// which then check the tags themselves when the upload is completed.
    pub etag: String,
}

/// A part as the client reports it when it completes the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPart {
    pub number: u16,
    pub etag: String,
}

/// Compares ETags as S3 and browsers write them: quotes are not part of the tag.
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

impl PartLayout {
    /// The layout for an upload of `size` (or unknown) bytes of at most `max_size`, with parts
    /// of `preferred` bytes unless that many parts would not hold the upload: then the parts
    /// grow so that [`MAX_PARTS`] of them do.
    pub fn new(size: Option<u64>, max_size: u64, preferred: u64) -> Self {
        let bound = size.unwrap_or(max_size);
        let part_size = preferred
            .max(bound.div_ceil(u64::from(MAX_PARTS)))
            .clamp(1, MAX_PART_SIZE);
        Self {
            part_size,
            size,
            max_size: size.unwrap_or(max_size),
        }
    }

    /// Number of parts of a declared size (at least one, so an empty upload is one empty part).
    pub fn part_count(&self) -> Option<u16> {
        self.size
            .map(|size| u16::try_from(size.div_ceil(self.part_size).max(1)).unwrap_or(MAX_PARTS))
    }

    /// The byte offset where part `number` starts.
    pub fn offset_of(&self, number: u16) -> u64 {
        u64::from(number.saturating_sub(1)) * self.part_size
    }

    /// The exact length part `number` has in an upload of declared size.
    pub fn length_of(&self, number: u16) -> Result<u64, DomainError> {
        self.check_number(number)?;
        let size = self.size.ok_or_else(|| {
            DomainError::InvalidPart("an upload of unknown size needs each part's length".into())
        })?;
        let count = self.part_count().unwrap_or(1);
        if number > count {
            return Err(DomainError::PartBeyondSize { limit: size });
        }
        Ok(self.part_size.min(size - self.offset_of(number)))
    }

    fn check_number(&self, number: u16) -> Result<(), DomainError> {
        if number == 0 || number > MAX_PARTS {
            return Err(DomainError::InvalidPart(format!(
                "part numbers go from 1 to {MAX_PARTS}"
            )));
        }
        Ok(())
    }

    /// Whether a part `number` of `length` bytes fits the layout: as long as the layout says
    /// for a declared size; at most a part's size, and within the limit, for an unknown one.
    pub fn check_part(&self, number: u16, length: u64) -> Result<(), DomainError> {
        self.check_number(number)?;
        if self.size.is_some() {
            let expected = self.length_of(number)?;
            if length != expected {
                return Err(DomainError::InvalidPart(format!(
                    "part {number} must be {expected} bytes, not {length}"
                )));
            }
            return Ok(());
        }
        if length > self.part_size {
            return Err(DomainError::InvalidPart(format!(
                "a part is at most {} bytes",
                self.part_size
            )));
        }
        if self.offset_of(number).saturating_add(length) > self.max_size {
            return Err(DomainError::PartBeyondSize {
                limit: self.max_size,
            });
        }
        Ok(())
    }

    /// Checks a reported list of parts against what the storage holds and returns the total
    /// size: the parts must be listed in ascending order from 1 without gaps, each one stored
    /// with the reported tag, every part but the last a whole `part_size`, and the total the
    /// declared size (or within the limit).
    pub fn check_completion(
        &self,
        reported: &[ReportedPart],
        stored: &[StoredPart],
    ) -> Result<u64, DomainError> {
        check_numbering(reported)?;
        let mut total = 0u64;
        for (index, part) in reported.iter().enumerate() {
            let held = stored
                .iter()
                .find(|held| held.number == part.number)
                .ok_or(DomainError::PartMissing(part.number))?;
            if !held.etag.is_empty() && !same_etag(&held.etag, &part.etag) {
                return Err(DomainError::PartConflict(part.number));
            }
            let last = index + 1 == reported.len();
            if !last && held.size != self.part_size {
                return Err(DomainError::InvalidPart(format!(
                    "part {} has {} bytes; every part but the last has {}",
                    part.number, held.size, self.part_size
                )));
            }
            total = total.saturating_add(held.size);
        }
        match self.size {
            Some(expected) if total != expected => Err(DomainError::SizeMismatch {
                expected,
                actual: total,
            }),
            _ if total > self.max_size => Err(DomainError::TooLarge {
                limit: self.max_size,
            }),
            _ => Ok(total),
        }
    }
}

/// The reported parts are numbered 1..n in ascending order, each once.
pub fn check_numbering(reported: &[ReportedPart]) -> Result<(), DomainError> {
    if reported.is_empty() {
        return Err(DomainError::PartMissing(1));
    }
    if reported
        .windows(2)
        .any(|pair| pair[0].number >= pair[1].number)
    {
        return Err(DomainError::PartOutOfOrder);
    }
    for (index, part) in reported.iter().enumerate() {
        let expected = u16::try_from(index + 1).unwrap_or(u16::MAX);
        if part.number != expected {
            return Err(DomainError::PartMissing(expected));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn stored(parts: &[(u16, u64, &str)]) -> Vec<StoredPart> {
        parts
            .iter()
            .map(|(number, size, etag)| StoredPart {
                number: *number,
                size: *size,
                etag: (*etag).to_owned(),
            })
            .collect()
    }

    fn reported(parts: &[(u16, &str)]) -> Vec<ReportedPart> {
        parts
            .iter()
            .map(|(number, etag)| ReportedPart {
                number: *number,
                etag: (*etag).to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_declared_size_is_cut_into_whole_parts_and_a_shorter_last_one() {
        let layout = PartLayout::new(Some(150 * MIB), u64::MAX, 64 * MIB);
        assert_eq!(layout.part_count(), Some(3));
        assert_eq!(layout.length_of(1), Ok(64 * MIB));
        assert_eq!(layout.length_of(3), Ok(22 * MIB));
        assert_eq!(
            layout.length_of(4),
            Err(DomainError::PartBeyondSize { limit: 150 * MIB })
        );
        assert!(matches!(
            layout.length_of(0),
            Err(DomainError::InvalidPart(_))
        ));
        let empty = PartLayout::new(Some(0), u64::MAX, 64 * MIB);
        assert_eq!(empty.part_count(), Some(1));
        assert_eq!(empty.length_of(1), Ok(0));
    }

    #[test]
    fn parts_grow_only_when_ten_thousand_would_not_hold_the_upload() {
        let huge = 1u64 << 40;
        let layout = PartLayout::new(Some(huge), u64::MAX, 64 * MIB);
        assert!(layout.part_size > 64 * MIB);
        assert!(u64::from(layout.part_count().unwrap()) <= u64::from(MAX_PARTS));
        assert_eq!(
            PartLayout::new(Some(100 * MIB), u64::MAX, 64 * MIB).part_size,
            64 * MIB
        );
        // An unknown size is laid out for the limit it may reach.
        let piped = PartLayout::new(None, huge, 64 * MIB);
        assert!(piped.part_size * u64::from(MAX_PARTS) >= huge);
    }

    #[test]
    fn a_part_of_a_declared_size_must_have_its_exact_length() {
        let layout = PartLayout::new(Some(10), u64::MAX, 4);
        assert_eq!(layout.check_part(1, 4), Ok(()));
        assert_eq!(layout.check_part(3, 2), Ok(()));
        assert!(matches!(
            layout.check_part(3, 4),
            Err(DomainError::InvalidPart(_))
        ));
        assert_eq!(
            layout.check_part(4, 1),
            Err(DomainError::PartBeyondSize { limit: 10 })
        );
    }

    #[test]
    fn a_part_of_an_unknown_size_stays_within_a_part_and_the_limit() {
        let layout = PartLayout::new(None, 10, 4);
        assert_eq!(layout.check_part(1, 4), Ok(()));
        assert_eq!(layout.check_part(3, 2), Ok(()));
        assert!(matches!(
            layout.check_part(1, 5),
            Err(DomainError::InvalidPart(_))
        ));
        assert_eq!(
            layout.check_part(3, 3),
            Err(DomainError::PartBeyondSize { limit: 10 })
        );
    }

    #[test]
    fn completion_accepts_the_parts_in_order_with_their_tags() {
        let layout = PartLayout::new(Some(10), u64::MAX, 4);
        let held = stored(&[(2, 4, "b"), (1, 4, "a"), (3, 2, "c")]);
        let total = layout.check_completion(&reported(&[(1, "\"a\""), (2, "b"), (3, "c")]), &held);
        assert_eq!(total, Ok(10));
    }

    #[test]
    fn completion_refuses_each_fault_with_its_own_code() {
        let layout = PartLayout::new(Some(10), u64::MAX, 4);
        let held = stored(&[(1, 4, "a"), (2, 4, "b"), (3, 2, "c")]);
        let check = |parts: &[(u16, &str)]| layout.check_completion(&reported(parts), &held);
        assert_eq!(
            check(&[(2, "b"), (1, "a"), (3, "c")]),
            Err(DomainError::PartOutOfOrder)
        );
        assert_eq!(
            check(&[(1, "a"), (1, "a"), (3, "c")]),
            Err(DomainError::PartOutOfOrder)
        );
        assert_eq!(
            check(&[(1, "a"), (3, "c")]),
            Err(DomainError::PartMissing(2))
        );
        assert_eq!(check(&[]), Err(DomainError::PartMissing(1)));
        assert_eq!(
            check(&[(1, "a"), (2, "other"), (3, "c")]),
            Err(DomainError::PartConflict(2))
        );
        assert_eq!(
            check(&[(1, "a"), (2, "b")]),
            Err(DomainError::SizeMismatch {
                expected: 10,
                actual: 8
            })
        );
        // A store that lists no tags leaves them to its own completion.
        let untagged = stored(&[(1, 4, ""), (2, 4, ""), (3, 2, "")]);
        assert_eq!(
            layout.check_completion(&reported(&[(1, "a"), (2, "x"), (3, "c")]), &untagged),
            Ok(10)
        );
        let missing = stored(&[(1, 4, "a"), (3, 2, "c")]);
        assert_eq!(
            layout.check_completion(&reported(&[(1, "a"), (2, "b"), (3, "c")]), &missing),
            Err(DomainError::PartMissing(2))
        );
    }

    #[test]
    fn only_the_last_part_may_be_short() {
        let layout = PartLayout::new(None, 100, 4);
        let held = stored(&[(1, 3, "a"), (2, 4, "b")]);
        let refused = layout.check_completion(&reported(&[(1, "a"), (2, "b")]), &held);
        assert!(matches!(refused, Err(DomainError::InvalidPart(_))));
        let held = stored(&[(1, 4, "a"), (2, 1, "b")]);
        assert_eq!(
            layout.check_completion(&reported(&[(1, "a"), (2, "b")]), &held),
            Ok(5)
        );
    }
}
