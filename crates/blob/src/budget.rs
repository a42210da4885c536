//! A shared budget of bytes that unfinished uploads may hold at once (disk space of temporary
//! files, or memory of buffered parts), so many slow or stalled clients together cannot fill
//! the disk or exhaust memory. Each upload holds a [`Reservation`] that gives its bytes back
//! when dropped, on success, failure or an abandoned request alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{BlobError, BlobResult};

#[derive(Debug)]
pub(crate) struct SpaceBudget {
    limit: u64,
    held: AtomicU64,
}

impl SpaceBudget {
    pub(crate) fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicU64::new(0),
        })
    }

    /// What all reservations hold now.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `bytes` now, or refuses when the budget cannot spare them.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> BlobResult<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }

    fn take(&self, bytes: u64) -> BlobResult<()> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| BlobError::PendingSpaceExhausted { limit: self.limit })
    }
}

/// Bytes one upload holds of a [`SpaceBudget`].
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<SpaceBudget>,
    bytes: u64,
}

impl Reservation {
    /// Makes this reservation hold at least `total` bytes; never shrinks it.
    pub(crate) fn grow_to(&mut self, total: u64) -> BlobResult<()> {
        if total > self.bytes {
            self.budget.take(total - self.bytes)?;
            self.bytes = total;
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back_when_dropped() {
        let budget = SpaceBudget::new(100);
        let mut first = budget.reserve(60).unwrap();
        assert!(matches!(
            budget.reserve(41),
            Err(BlobError::PendingSpaceExhausted { limit: 100 })
        ));
        let second = budget.reserve(40).unwrap();
        assert_eq!(budget.held(), 100);
        assert!(first.grow_to(61).is_err());
        first.grow_to(50).unwrap();
        assert_eq!(budget.held(), 100, "a reservation never shrinks");
        drop(second);
        first.grow_to(100).unwrap();
        drop(first);
        assert_eq!(budget.held(), 0);
    }
}
