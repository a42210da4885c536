//! Storms of concurrent writes with a fault injected in the middle (see [`super::faults`]),
//! for any [`MetaStore`]. Each storm returns what the callers were told; the `*_survived`
//! checks then compare that with what a freshly opened store finds once the fault is healed,
//! and drive the original store to the end to show it recovered by itself.
//!
//! The promise checked: an answer of success means the write is durably recorded, and a
//! failure is an error (never a silent "nothing matched").

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use once_domain::share::add;
use once_domain::{BlobKey, Share, ShareId, ShareState};

use crate::conformance::{completed, pending_share, ready_share, secs, t0};
use crate::{MetaResult, MetaStore, PublishOutcome, ReapCandidate};

/// A blocking action (fill a disk, restart a server), run once a quarter of the storm is done.
pub type Fault = Box<dyn FnOnce() + Send + 'static>;

/// Whether an error may hide a write that was in fact committed: a server killed between its
/// commit and its answer loses the acknowledgement, not the write. A full disk refuses the
/// write itself, so there every error means "not recorded".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgements {
    /// Every error means nothing was written.
    Exact,
    /// An error may follow a committed write.
    MayBeLost,
}

/// Runs `operations` on the runtime: the first half at once, with `fault` run on a blocking
/// thread once a quarter of them have finished (so it races the rest of that half), and the
/// second half once the fault is in place (so they surely meet it). Returns their results in
/// order.
async fn storm<T: Send + 'static>(operations: Vec<BoxFuture<'static, T>>, fault: Fault) -> Vec<T> {
    let total = operations.len();
    let finished = Arc::new(AtomicUsize::new(0));
    let (fault_done, fault_in_place) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = operations
        .into_iter()
        .enumerate()
        .map(|(index, operation)| {
            let finished = Arc::clone(&finished);
            let mut fault_in_place = fault_in_place.clone();
            tokio::spawn(async move {
                if index >= total / 2 {
                    let _ = fault_in_place.wait_for(|done| *done).await;
                }
                let result = operation.await;
                finished.fetch_add(1, Ordering::SeqCst);
                result
            })
        })
        .collect();
    let injector = {
        let finished = Arc::clone(&finished);
        tokio::spawn(async move {
            while finished.load(Ordering::SeqCst) < total / 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let done = tokio::task::spawn_blocking(fault).await;
            let _ = fault_done.send(true);
            done
        })
    };
    let mut results = Vec::with_capacity(total);
    for task in tasks {
        results.push(task.await.expect("a storm operation panicked"));
    }
    injector
        .await
        .expect("the fault injector panicked")
        .expect("the fault panicked");
    results
}

/// What the claimers of a claim storm were told.
#[derive(Debug)]
pub struct ClaimStorm {
    pub max_downloads: u32,
    /// Per share: how many claims were answered with success.
    pub claimed: Vec<(ShareId, u32)>,
    /// Claims answered with an error.
    pub failed: usize,
    pub acknowledgements: Acknowledgements,
}

/// `shares` ready shares of `max_downloads` each, claimed by `claimers` concurrent claims each,
/// with `fault` injected during the storm. Panics if any share was claimed more than
/// `max_downloads` times.
pub async fn claim_storm(
    store: &Arc<dyn MetaStore>,
    shares: usize,
    max_downloads: u32,
    claimers: usize,
    fault: Fault,
    acknowledgements: Acknowledgements,
) -> ClaimStorm {
    let mut ids = Vec::with_capacity(shares);
    for _ in 0..shares {
        ids.push(ready_share(store.as_ref(), max_downloads).await.id);
    }
    let lease = add(t0(), secs(60));
    // Share after share, so that the fault finds most shares still to be claimed.
    let operations: Vec<BoxFuture<'static, (ShareId, MetaResult<Option<Share>>)>> = ids
        .iter()
        .flat_map(|id| std::iter::repeat_n(id.clone(), claimers))
        .map(|id| {
            let store = Arc::clone(store);
            async move {
                let result = store.claim_share(&id, t0(), lease).await;
                (id, result)
            }
            .boxed()
        })
        .collect();
    let mut claimed: HashMap<ShareId, u32> = ids.iter().map(|id| (id.clone(), 0)).collect();
    let mut failed = 0;
    for (id, result) in storm(operations, fault).await {
        match result {
            Ok(Some(share)) => {
                *claimed.get_mut(&id).expect("a share of the storm") += 1;
                assert!(share.downloads_left < max_downloads);
            }
            Ok(None) => {}
            Err(_) => failed += 1,
        }
    }
    let claimed: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let count = claimed[&id];
            (id, count)
        })
        .collect();
    for (id, count) in &claimed {
        assert!(
            *count <= max_downloads,
            "share {id} was claimed {count} times, more than its {max_downloads}"
        );
    }
    ClaimStorm {
        max_downloads,
        claimed,
        failed,
        acknowledgements,
    }
}

/// After the fault is healed: a freshly opened store (`reopened`) records every claim that was
/// answered with success (exactly those, where acknowledgements are exact), and the original
/// `store`, never restarted, serves the rest: every share ends with exactly `max_downloads`
/// claims recorded.
pub async fn claim_storm_survived(
    storm: &ClaimStorm,
    store: &Arc<dyn MetaStore>,
    reopened: &Arc<dyn MetaStore>,
) {
    let lease = add(t0(), secs(60));
    for (id, answered) in &storm.claimed {
        let recorded = storm.max_downloads
            - reopened
                .get_share(id)
                .await
                .expect("the reopened store reads")
                .expect("the share is still there")
                .downloads_left;
        match storm.acknowledgements {
            Acknowledgements::Exact => assert_eq!(
                recorded, *answered,
                "share {id}: {answered} claims answered with success, {recorded} recorded"
            ),
            Acknowledgements::MayBeLost => assert!(
                recorded >= *answered,
                "share {id}: {answered} claims answered with success, only {recorded} recorded"
            ),
        }
        let mut later = 0;
        while store
            .claim_share(id, t0(), lease)
            .await
            .expect("the original store claims again once the fault is healed")
            .is_some()
        {
            later += 1;
        }
        assert_eq!(
            recorded + later,
            storm.max_downloads,
            "share {id}: {recorded} claims recorded in the storm, {later} after it"
        );
        let left = reopened
            .get_share(id)
            .await
            .unwrap()
            .unwrap()
            .downloads_left;
        assert_eq!(left, 0, "share {id}: the later claims are recorded too");
    }
}

/// What the uploaders of a publish storm were told.
#[derive(Debug)]
pub struct PublishStorm {
    /// Per share: the blob key whose publish was answered `Published`, if any.
    pub published: Vec<(ShareId, Option<BlobKey>)>,
    pub failed: usize,
    pub acknowledgements: Acknowledgements,
}

/// `shares` pending shares, each raced by `uploaders` concurrent publishes of distinct blobs,
/// with `fault` injected during the storm. Panics if a share was published twice.
pub async fn publish_storm(
    store: &Arc<dyn MetaStore>,
    shares: usize,
    uploaders: usize,
    fault: Fault,
    acknowledgements: Acknowledgements,
) -> PublishStorm {
    let mut ids = Vec::with_capacity(shares);
    for _ in 0..shares {
        let share = pending_share(1);
        store.insert_share(&share).await.expect("insert a share");
        ids.push(share.id);
    }
    let operations: Vec<BoxFuture<'static, (ShareId, BlobKey, MetaResult<PublishOutcome>)>> = ids
        .iter()
        .flat_map(|id| std::iter::repeat_n(id.clone(), uploaders))
        .map(|id| {
            let store = Arc::clone(store);
            async move {
                let key = BlobKey::generate();
                let result = store
                    .publish_share(&id, &completed(key.clone(), 5, 1), t0())
                    .await;
                (id, key, result)
            }
            .boxed()
        })
        .collect();
    let mut published: HashMap<ShareId, Option<BlobKey>> =
        ids.iter().map(|id| (id.clone(), None)).collect();
    let mut failed = 0;
    for (id, key, result) in storm(operations, fault).await {
        match result {
            Ok(PublishOutcome::Published(share)) => {
                assert_eq!(share.blob_key.as_ref(), Some(&key));
                let winner = published.get_mut(&id).expect("a share of the storm");
                assert!(winner.is_none(), "share {id} was published twice");
                *winner = Some(key);
            }
            Ok(PublishOutcome::SlotUsed) => {}
            Ok(other) => panic!("share {id}: unexpected publish outcome {other:?}"),
            Err(_) => failed += 1,
        }
    }
    PublishStorm {
        published: ids
            .into_iter()
            .map(|id| {
                let winner = published[&id].clone();
                (id, winner)
            })
            .collect(),
        failed,
        acknowledgements,
    }
}

/// After the fault is healed: a freshly opened store serves every share whose publish was
/// answered `Published` with that blob, shares nobody was told about are still pending (where
/// acknowledgements are exact), and the original store publishes those now.
pub async fn publish_storm_survived(
    storm: &PublishStorm,
    store: &Arc<dyn MetaStore>,
    reopened: &Arc<dyn MetaStore>,
) {
    for (id, winner) in &storm.published {
        let recorded = reopened
            .get_share(id)
            .await
            .expect("the reopened store reads")
            .expect("the share is still there");
        match winner {
            Some(key) => {
                assert_eq!(recorded.state, ShareState::Ready, "share {id}");
                assert_eq!(recorded.blob_key.as_ref(), Some(key), "share {id}");
            }
            None if recorded.state == ShareState::Pending => {
                let key = BlobKey::generate();
                let outcome = store
                    .publish_share(id, &completed(key, 5, 1), t0())
                    .await
                    .expect("the original store publishes again once the fault is healed");
                assert!(
                    matches!(outcome, PublishOutcome::Published(_)),
                    "share {id}: {outcome:?}"
                );
            }
            None => assert_eq!(
                storm.acknowledgements,
                Acknowledgements::MayBeLost,
                "share {id} is {:?} though no publish was answered with success",
                recorded.state
            ),
        }
    }
}

/// What the reapers of a reap storm were told.
#[derive(Debug)]
pub struct ReapStorm {
    pub shares: HashSet<ShareId>,
    /// Every share handed out by a batch answered with success.
    pub taken: Vec<ShareId>,
    pub failed: usize,
    pub acknowledgements: Acknowledgements,
}

/// Abandoned long ago as far as the reaper can tell: every pending share is due.
fn abandoned_before() -> once_domain::Instant {
    add(t0(), secs(24 * 3600))
}

/// How long a reaper holds what it took: longer than any test.
fn hold_until() -> once_domain::Instant {
    add(t0(), secs(3600))
}

/// `shares` abandoned pending shares, taken by `calls` concurrent reaper batches of up to
/// `batch` shares each, with `fault` injected during the storm. Panics if a share was handed
/// out twice.
pub async fn reap_storm(
    store: &Arc<dyn MetaStore>,
    shares: usize,
    calls: usize,
    batch: u32,
    fault: Fault,
    acknowledgements: Acknowledgements,
) -> ReapStorm {
    let mut ids = HashSet::with_capacity(shares);
    for _ in 0..shares {
        let share = pending_share(1);
        store.insert_share(&share).await.expect("insert a share");
        ids.insert(share.id);
    }
    let operations: Vec<BoxFuture<'static, MetaResult<Vec<ReapCandidate>>>> = (0..calls)
        .map(|_| {
            let store = Arc::clone(store);
            async move {
                store
                    .take_reap_batch(t0(), abandoned_before(), hold_until(), batch)
                    .await
            }
            .boxed()
        })
        .collect();
    let mut taken = Vec::new();
    let mut failed = 0;
    for result in storm(operations, fault).await {
        match result {
            Ok(candidates) => taken.extend(candidates.into_iter().map(|c| c.share_id)),
            Err(_) => failed += 1,
        }
    }
    let distinct: HashSet<_> = taken.iter().collect();
    assert_eq!(distinct.len(), taken.len(), "a share was handed out twice");
    ReapStorm {
        shares: ids,
        taken,
        failed,
        acknowledgements,
    }
}

/// After the fault is healed: the original store hands out exactly the shares no batch
/// answered with success handed out (those are held, so recorded), and afterwards a freshly
/// opened store finds nothing left to take.
pub async fn reap_storm_survived(
    storm: &ReapStorm,
    store: &Arc<dyn MetaStore>,
    reopened: &Arc<dyn MetaStore>,
) {
    let mut later = Vec::new();
    loop {
        let candidates = store
            .take_reap_batch(t0(), abandoned_before(), hold_until(), 50)
            .await
            .expect("the original store reaps again once the fault is healed");
        if candidates.is_empty() {
            break;
        }
        later.extend(candidates.into_iter().map(|c| c.share_id));
    }
    let taken: HashSet<_> = storm.taken.iter().cloned().collect();
    for id in &later {
        assert!(
            !taken.contains(id),
            "share {id} was handed out in the storm, yet not recorded as taken"
        );
    }
    let all: HashSet<_> = taken.iter().chain(later.iter()).cloned().collect();
    if storm.acknowledgements == Acknowledgements::Exact {
        assert_eq!(all, storm.shares, "every share is handed out exactly once");
    } else {
        assert!(all.is_subset(&storm.shares));
    }
    let left = reopened
        .take_reap_batch(t0(), abandoned_before(), hold_until(), 50)
        .await
        .expect("the reopened store reads");
    assert!(
        left.is_empty(),
        "the later batches are recorded too: {left:?}"
    );
}
