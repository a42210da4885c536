//! The PostgreSQL store against a private throw-away cluster (initdb on a tmpfs, a port of its
//! own), so the shared test server is never disturbed: a claim storm meets a full disk or a
//! server restart, every claim answered with success is recorded, and the store reconnects by
//! itself. Needs root and the PostgreSQL server binaries (see `once_meta::testing::faults`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use once_meta::MetaStore;
use once_meta::postgres::PostgresMetaStore;
use once_meta::testing::faults::PrivateCluster;
use once_meta::testing::storms::{Acknowledgements, Fault, claim_storm, claim_storm_survived};

/// The cluster takes ~30 MiB; the rest is what the storm (and the filler) may use.
const VOLUME_BYTES: u64 = 64 << 20;

async fn open(cluster: &PrivateCluster) -> Arc<dyn MetaStore> {
    Arc::new(
        PostgresMetaStore::open(&cluster.url())
            .await
            .expect("open the store"),
    )
}

/// A storm of claims with `fault` in the middle, then the checks once `heal` ran. A server
/// killed between a commit and its answer loses the answer, not the claim, so the checks
/// allow a recorded claim that was answered with an error (never the reverse). Returns how
/// many claims failed, `None` if the cluster could not be set up.
async fn claims_survive(
    test: &str,
    fault: impl FnOnce(Arc<PrivateCluster>) -> Fault,
    heal: impl FnOnce(&PrivateCluster),
) -> Option<usize> {
    let cluster = PrivateCluster::start(test, VOLUME_BYTES)?;
    let cluster = Arc::new(cluster);
    let store = open(&cluster).await;
    let storm = claim_storm(
        &store,
        10,
        50,
        80,
        fault(Arc::clone(&cluster)),
        Acknowledgements::MayBeLost,
    )
    .await;
    heal(&cluster);
    let reopened = open(&cluster).await;
    claim_storm_survived(&storm, &store, &reopened).await;
    println!("{test}: {} claims failed during the fault", storm.failed);
    Some(storm.failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_while_the_database_disk_fills_succeed_only_when_recorded() {
    let refused = Arc::new(AtomicBool::new(false));
    let noted = Arc::clone(&refused);
    let ran = claims_survive(
        "postgres claims on a full disk",
        |cluster| {
            Box::new(move || {
                noted.store(cluster.fill(), Ordering::SeqCst);
            })
        },
        |cluster| {
            cluster.volume().free();
            // PostgreSQL stops itself when it cannot write its WAL; an operator (or its
            // supervisor) starts it again. The store, never restarted, must reconnect.
            if cluster.ensure_running() {
                println!("the private cluster had stopped on the full disk");
            }
        },
    )
    .await;
    if ran.is_some() {
        assert!(
            refused.load(Ordering::SeqCst),
            "the full disk refused no write"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_across_a_database_restart_succeed_only_when_recorded() {
    claims_survive(
        "postgres claims across a restart",
        |cluster| Box::new(move || cluster.restart("fast")),
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_across_a_database_crash_succeed_only_when_recorded() {
    claims_survive(
        "postgres claims across a crash",
        |cluster| Box::new(move || cluster.restart("immediate")),
        |_| {},
    )
    .await;
}
