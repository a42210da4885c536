//! Quotas: what one API key may hold, checked when a share of it is created (by the key, or by
//! an upload to one of its requests), before any byte is stored. Counted from the metadata
//! store, so they hold across instances (up to two creations racing past the same check).

use crate::DomainError;

/// The window of `shares_per_day`: the last 24 hours, not the calendar day.
pub const SHARES_WINDOW: time::Duration = time::Duration::hours(24);

/// What one key may hold; `None`: no quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Shares created in the last 24 hours.
    pub shares_per_day: Option<u32>,
    /// Bytes of its shares that are still on their way or downloadable.
    pub bytes_stored: Option<u64>,
}

/// What a key holds now, as the metadata store counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Shares created within [`SHARES_WINDOW`].
    pub shares_created: u64,
    /// Declared sizes of its shares still waiting for their upload (within their window) and
    /// of its published shares that can still be downloaded.
    pub bytes_held: u64,
}

impl Quotas {
    pub fn is_unlimited(&self) -> bool {
        self.shares_per_day.is_none() && self.bytes_stored.is_none()
    }

    /// Whether one more share of `size` bytes (None: not known yet) fits. A share of unknown
    /// size is admitted while any byte is left; its size counts once it is known.
    pub fn admit(&self, usage: &KeyUsage, size: Option<u64>) -> Result<(), DomainError> {
        if let Some(limit) = self.shares_per_day
            && usage.shares_created >= u64::from(limit)
        {
            return Err(DomainError::QuotaExceeded(format!(
                "this key created {limit} shares in the last 24 hours, its quota \
                 (key_shares_per_day); try again later"
            )));
        }
        if let Some(limit) = self.bytes_stored {
            let after = usage.bytes_held.saturating_add(size.unwrap_or(1));
            if after > limit {
                let left = limit.saturating_sub(usage.bytes_held);
                return Err(DomainError::QuotaExceeded(format!(
                    "this key may hold {limit} bytes (key_bytes_stored) and has {left} left; \
                     the file does not fit until shares are downloaded, expire or are revoked"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(shares_created: u64, bytes_held: u64) -> KeyUsage {
        KeyUsage {
            shares_created,
            bytes_held,
        }
    }

    #[test]
    fn no_quota_admits_anything() {
        let quotas = Quotas::default();
        assert!(quotas.is_unlimited());
        quotas
            .admit(&usage(u64::MAX, u64::MAX), Some(u64::MAX))
            .unwrap();
    }

    #[test]
    fn the_share_count_is_a_ceiling_of_the_last_day() {
        let quotas = Quotas {
            shares_per_day: Some(2),
            ..Quotas::default()
        };
        quotas.admit(&usage(1, 0), Some(10)).unwrap();
        let refused = quotas.admit(&usage(2, 0), Some(10)).unwrap_err();
        assert_eq!(refused.code(), "quota_exceeded");
        assert!(
            refused.to_string().contains("key_shares_per_day"),
            "{refused}"
        );
    }

    #[test]
    fn bytes_fit_up_to_the_quota_exactly_and_unknown_sizes_while_any_is_left() {
        let quotas = Quotas {
            bytes_stored: Some(100),
            ..Quotas::default()
        };
        quotas.admit(&usage(0, 60), Some(40)).unwrap();
        let refused = quotas.admit(&usage(0, 60), Some(41)).unwrap_err();
        assert!(refused.to_string().contains("has 40 left"), "{refused}");
        quotas.admit(&usage(0, 99), None).unwrap();
        assert!(quotas.admit(&usage(0, 100), None).is_err());
        // Over already (a stream of unknown size went past it): nothing more, no overflow.
        assert!(quotas.admit(&usage(0, u64::MAX), Some(u64::MAX)).is_err());
    }
}
