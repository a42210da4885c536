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

    /// Gives back bytes that a [`Reservation::keep`] left held (the staged parts of an upload
    /// that was completed or removed).
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    /// Counts bytes already on disk (staged parts found at start-up), even past the limit: they
    /// are there, and new uploads must wait until they go.
    pub(crate) fn account(&self, bytes: u64) {
        self.held.fetch_add(bytes, Ordering::AcqRel);
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

impl Reservation {
    /// Keeps the bytes held after this reservation goes (a part that is now staged on disk);
    /// [`SpaceBudget::release`] gives them back.
    pub(crate) fn keep(mut self) {
        self.bytes = 0;
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

    #[test]
    fn kept_bytes_stay_held_until_released() {
        let budget = SpaceBudget::new(100);
        budget.reserve(60).unwrap().keep();
        assert_eq!(budget.held(), 60);
        assert!(budget.reserve(41).is_err());
        budget.release(60);
        assert_eq!(budget.held(), 0);
        budget.account(150);
        assert!(
            budget.reserve(1).is_err(),
            "found bytes count past the limit"
        );
    }
}
