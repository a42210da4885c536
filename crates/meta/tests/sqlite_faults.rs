//! The SQLite store on a small tmpfs that fills up in the middle of a storm of writes: every
//! write answered with success is recorded, every refused one is an error, and the store works
//! again by itself once space returns. Needs root to mount the tmpfs (see
//! `once_meta::testing::faults` for what happens without).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use once_meta::MetaStore;
use once_meta::sqlite::SqliteMetaStore;
use once_meta::testing::faults::SmallVolume;
use once_meta::testing::storms::{
    Acknowledgements, Fault, claim_storm, claim_storm_survived, publish_storm,
    publish_storm_survived, reap_storm, reap_storm_survived,
};

/// Room for the database and the fault's filler, nothing more.
///
/// The storms stay below SQLite's automatic checkpoint (1000 WAL pages): after one, the WAL is
/// rewritten from its start and a full disk no longer refuses anything.
const VOLUME_BYTES: u64 = 8 << 20;

async fn open(path: &Path) -> Arc<dyn MetaStore> {
    Arc::new(SqliteMetaStore::open(path).await.expect("open the store"))
}

/// A store on a fresh small volume, and the fault that fills that volume.
struct OnSmallVolume {
    volume: Arc<SmallVolume>,
    path: PathBuf,
    store: Arc<dyn MetaStore>,
}

impl OnSmallVolume {
    async fn new(test: &str) -> Option<Self> {
        let volume = Arc::new(SmallVolume::mount(test, VOLUME_BYTES)?);
        let path = volume.path().join("once.db");
        let store = open(&path).await;
        Some(Self {
            volume,
            path,
            store,
        })
    }

    fn filling(&self) -> Fault {
        let volume = Arc::clone(&self.volume);
        Box::new(move || {
            volume.fill();
        })
    }

    /// Frees the volume and opens the database a second time.
    async fn heal_and_reopen(&self) -> Arc<dyn MetaStore> {
        self.volume.free();
        open(&self.path).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_while_the_disk_fills_succeed_only_when_recorded() {
    let Some(setup) = OnSmallVolume::new("sqlite claims on a full disk").await else {
        return;
    };
    let storm = claim_storm(
        &setup.store,
        10,
        50,
        80,
        setup.filling(),
        Acknowledgements::Exact,
    )
    .await;
    assert!(
        storm.failed > 0,
        "the full disk refused no claim: {storm:?}"
    );
    let reopened = setup.heal_and_reopen().await;
    claim_storm_survived(&storm, &setup.store, &reopened).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_while_the_disk_fills_succeed_only_when_recorded() {
    let Some(setup) = OnSmallVolume::new("sqlite publishes on a full disk").await else {
        return;
    };
    let storm = publish_storm(
        &setup.store,
        40,
        20,
        setup.filling(),
        Acknowledgements::Exact,
    )
    .await;
    assert!(storm.failed > 0, "the full disk refused no publish");
    let reopened = setup.heal_and_reopen().await;
    publish_storm_survived(&storm, &setup.store, &reopened).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_batches_while_the_disk_fills_succeed_only_when_recorded() {
    let Some(setup) = OnSmallVolume::new("sqlite reaper on a full disk").await else {
        return;
    };
    let storm = reap_storm(
        &setup.store,
        200,
        60,
        5,
        setup.filling(),
        Acknowledgements::Exact,
    )
    .await;
    assert!(storm.failed > 0, "the full disk refused no batch");
    let reopened = setup.heal_and_reopen().await;
    reap_storm_survived(&storm, &setup.store, &reopened).await;
}
