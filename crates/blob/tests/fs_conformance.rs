//! Runs the whole `BlobStore` conformance suite against the file-system store, plus the checks
//! that only make sense for files on disk.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use once_blob::conformance::{CHECKS, PENDING_BUDGET, PENDING_CHECKS, controlled_body, run};
use once_blob::fs::{FsBlobStore, FsLimits};
use once_blob::{BlobError, BlobStore, PutLimits};
use once_domain::BlobKey;

#[tokio::test]
async fn fs_store_passes_the_conformance_suite() {
    for check in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path(), FsLimits::default())
            .await
            .unwrap();
        println!("fs: {check}");
        run(check, Arc::new(store)).await;
    }
}

#[tokio::test]
async fn fs_store_passes_the_pending_space_checks() {
    for check in PENDING_CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let limits = FsLimits {
            max_pending_bytes: PENDING_BUDGET,
            ..FsLimits::default()
        };
        let store = FsBlobStore::open(dir.path(), limits).await.unwrap();
        println!("fs: {check}");
        run(check, Arc::new(store)).await;
        assert_eq!(count_files(&dir.path().join("tmp")), 0);
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn failed_and_dropped_uploads_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path(), FsLimits::default())
        .await
        .unwrap();
    let key = BlobKey::generate();
    let limits = PutLimits {
        expected_size: Some(3),
        max_size: 3,
        sha256: None,
    };
    let body = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(
        b"toolong",
    ))]));
    assert!(store.put(&key, body, limits).await.is_err());
    assert_eq!(count_files(&dir.path().join("tmp")), 0);

    // A request future dropped mid-body (the client went away) must clean up too.
    let first: Vec<std::io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"ab"))];
    let never_ending = Box::pin(futures::stream::iter(first).chain(futures::stream::pending()));
    let upload = store.put(
        &key,
        never_ending,
        PutLimits {
            expected_size: Some(10),
            max_size: 10,
            sha256: None,
        },
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), upload)
            .await
            .is_err()
    );
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("blobs")), 0);
}

#[tokio::test]
async fn stale_temporary_files_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path(), FsLimits::default())
        .await
        .unwrap();
    std::fs::write(dir.path().join("tmp").join("left-by-a-crash.part"), b"half").unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        store
            .remove_stale_uploads(now - time::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    let later = now + time::Duration::seconds(2);
    assert_eq!(store.remove_stale_uploads(later).await.unwrap(), 1);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

/// Waits until the one temporary file in `temp` holds `size` bytes (the writer caught up).
async fn temp_file_reaches(temp: &std::path::Path, size: u64) {
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(temp)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .collect();
        if sizes == [size] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Bytes after the first 11 of a paused upload: enough that the whole is larger than what
/// the store gathers in memory (64 KiB), so it streams into a temporary file.
fn second_half(len: usize) -> Vec<u8> {
    let mut bytes = b" second half".to_vec();
    bytes.resize(len, b'.');
    bytes
}

async fn paused_upload_survives_a_stale_upload_sweep(
    second: Vec<u8>,
    temp_files_while_paused: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FsBlobStore::open(dir.path(), FsLimits::default())
            .await
            .unwrap(),
    );
    let key = BlobKey::generate();
    let (sender, body) = controlled_body();
    sender.send(Ok(Bytes::from_static(b"first half,"))).unwrap();
    let size = 11 + second.len() as u64;
    let upload = tokio::spawn({
        let store = store.clone();
        let key = key.clone();
        async move {
            let limits = PutLimits {
                expected_size: Some(size),
                max_size: size,
                sha256: None,
            };
            store.put(&key, body, limits).await
        }
    });
    let temp = dir.path().join("tmp");
    if temp_files_while_paused == 1 {
        temp_file_reaches(&temp, 11).await;
    } else {
        // A small upload gathers its bytes in memory: there is nothing on disk to sweep.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A cutoff after the last write is what a pause longer than the grace looks like.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(store.remove_stale_uploads(later).await.unwrap(), 0);
    assert_eq!(count_files(&temp), temp_files_while_paused);

    sender.send(Ok(Bytes::from(second.clone()))).unwrap();
    drop(sender);
    let info = upload.await.unwrap().unwrap();
    assert_eq!(info.size, size);
    let mut read = store.open(&key, None, None).await.unwrap().body;
    let mut stored = Vec::new();
    while let Some(chunk) = read.next().await {
        stored.extend_from_slice(&chunk.unwrap());
    }
    let mut expected = b"first half,".to_vec();
    expected.extend_from_slice(&second);
    assert!(stored == expected, "the stored bytes differ");
    assert_eq!(count_files(&temp), 0);
}

#[tokio::test]
async fn upload_paused_past_the_grace_survives_a_stale_upload_sweep_and_completes() {
    paused_upload_survives_a_stale_upload_sweep(second_half(64 * 1024), 1).await;
}

#[tokio::test]
async fn small_upload_paused_past_the_grace_leaves_nothing_to_sweep_and_completes() {
    paused_upload_survives_a_stale_upload_sweep(second_half(12), 0).await;
}

fn undeclared() -> PutLimits {
    PutLimits {
        expected_size: None,
        max_size: u64::MAX,
        sha256: None,
    }
}

fn body_of_zeros(size: usize) -> once_blob::ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..size / 65_536)
        .map(|_| Ok(Bytes::from(vec![0u8; 65_536])))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

#[tokio::test]
async fn upload_is_refused_before_writing_when_the_free_space_reserve_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let limits = FsLimits {
        min_free_bytes: u64::MAX,
        ..FsLimits::default()
    };
    let store = FsBlobStore::open(dir.path(), limits).await.unwrap();
    let key = BlobKey::generate();
    assert_storage_full(store.put(&key, body_of_zeros(65_536), undeclared()).await);
    assert_eq!(store.pending_bytes(), 0);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("blobs")), 0);
}

/// A small tmpfs, unmounted when dropped, so a test can fill a disk for real.
struct SmallVolume {
    dir: tempfile::TempDir,
}

impl SmallVolume {
    /// None (after saying why) when mounting is impossible here, unless faults are required.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match mounted {
            Ok(output) if output.status.success() => return Some(Self { dir }),
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            Err(error) => error.to_string(),
        };
        let required = std::env::var_os("CI").is_some()
            || std::env::var("ONCE_REQUIRE_FAULTS").is_ok_and(|value| value == "1");
        assert!(!required, "cannot mount a tmpfs: {why}");
        eprintln!("fs full-disk test did NOT run: cannot mount a tmpfs: {why}");
        None
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A store on a fresh 8 MiB volume that keeps `min_free_bytes` free.
async fn store_on_small_volume(min_free_bytes: u64) -> Option<(SmallVolume, FsBlobStore)> {
    let volume = SmallVolume::mount("8m")?;
    let limits = FsLimits {
        max_pending_bytes: u64::MAX,
        min_free_bytes,
    };
    let store = FsBlobStore::open(volume.path(), limits).await.unwrap();
    Some((volume, store))
}

fn assert_storage_full(result: once_blob::BlobResult<once_blob::BlobInfo>) {
    let error = result.unwrap_err();
    assert!(matches!(error, BlobError::StorageFull), "{error:?}");
}

#[tokio::test]
async fn full_disk_is_storage_full_and_leaves_no_partial_file() {
    let Some((volume, store)) = store_on_small_volume(0).await else {
        return;
    };
    let key = BlobKey::generate();
    assert_storage_full(store.put(&key, body_of_zeros(16 << 20), undeclared()).await);
    assert_eq!(count_files(&volume.path().join("tmp")), 0);
    assert_eq!(store.size(&key).await.unwrap(), None);
    assert_eq!(store.pending_bytes(), 0);

    // The space came back: a small upload still fits.
    let small = BlobKey::generate();
    store
        .put(&small, body_of_zeros(65_536), undeclared())
        .await
        .unwrap();
}

#[tokio::test]
async fn upload_stops_before_eating_into_the_free_space_reserve() {
    let Some((volume, store)) = store_on_small_volume(4 << 20).await else {
        return;
    };

    // A declared size that would not leave the reserve is refused before any byte.
    let key = BlobKey::generate();
    let declared = PutLimits {
        expected_size: Some(6 << 20),
        max_size: u64::MAX,
        sha256: None,
    };
    assert_storage_full(store.put(&key, body_of_zeros(6 << 20), declared).await);

    // An undeclared one is stopped while it writes, with the reserve still free.
    assert_storage_full(store.put(&key, body_of_zeros(6 << 20), undeclared()).await);
    assert_eq!(count_files(&volume.path().join("tmp")), 0);
    assert_eq!(store.size(&key).await.unwrap(), None);
    let stats = free_bytes(volume.path());
    assert!(stats >= 4 << 20, "only {stats} bytes free");
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let output = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_completed_or_aborted_multipart_upload_leaves_no_staging_area() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path(), FsLimits::default())
        .await
        .unwrap();
    let staging = dir.path().join("staging");
    for complete in [true, false] {
        let key = once_domain::BlobKey::generate();
        let upload_id = store.start_multipart(&key, "text/plain").await.unwrap();
        let part = store
            .put_part(
                &key,
                &upload_id,
                1,
                5,
                Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(
                    b"hello",
                ))])),
            )
            .await
            .unwrap();
        assert_eq!(count_files(&staging), 1);
        assert!(
            store.pending_bytes() >= 5,
            "staged parts count against the budget"
        );
        if complete {
            let reported = [once_blob::ReportedPart {
                number: 1,
                etag: part.etag,
            }];
            store
                .complete_upload(&key, Some(&upload_id), &reported)
                .await
                .unwrap();
        } else {
            store.abort_upload(&key, &upload_id).await.unwrap();
        }
        assert_eq!(count_files(&staging), 0, "complete={complete}");
        assert_eq!(store.pending_bytes(), 0, "complete={complete}");
        assert!(matches!(
            store.list_parts(&key, &upload_id).await,
            Err(once_blob::BlobError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_part_with_other_bytes_than_the_stored_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path(), FsLimits::default())
        .await
        .unwrap();
    let key = once_domain::BlobKey::generate();
    let upload_id = store.start_multipart(&key, "text/plain").await.unwrap();
    let body = |bytes: &'static [u8]| -> once_blob::ByteStream {
        Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(
            bytes,
        ))]))
    };
    store
        .put_part(&key, &upload_id, 1, 5, body(b"first"))
        .await
        .unwrap();
    assert!(matches!(
        store.put_part(&key, &upload_id, 1, 5, body(b"other")).await,
        Err(once_blob::BlobError::PartConflict(1))
    ));
    assert!(matches!(
        store.put_part(&key, &upload_id, 2, 5, body(b"shrt")).await,
        Err(once_blob::BlobError::SizeMismatch { .. })
    ));
    let listed = store.list_parts(&key, &upload_id).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}
