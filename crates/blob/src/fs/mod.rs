//! The embedded store: one file per blob under `<data dir>/blobs`, written through
//! `<data dir>/tmp` (write, fsync, rename, fsync the directory) so that a crash at any point
//! leaves either the whole blob or no blob, plus a stale temporary file the reaper removes.
//! A writer holds an exclusive advisory lock on its temporary file for as long as it writes,
//! so the sweep (in this process or in `once reap` from cron) never removes a live upload,
//! however long the client pauses. Unfinished uploads share a budget of disk space, and no
//! upload may eat into the free space kept for the metadata database (see [`FsLimits`]).

use std::io::SeekFrom;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use once_domain::{BlobKey, Instant};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::budget::SpaceBudget;
use crate::verify::Verifier;
use crate::{
    BlobError, BlobInfo, BlobRead, BlobResult, BlobStore, ByteStream, CompletedBlob, PutLimits,
    ReportedPart, StoredPart,
};

mod staging;

/// How much of the data volume uploads may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsLimits {
    /// Total bytes that unfinished uploads may hold at once, in temporary files and in the
    /// staged parts of multipart uploads; an upload that would pass it is refused (its
    /// declared size or part length up front, an undeclared one as its bytes arrive).
    pub max_pending_bytes: u64,
    /// Free space an upload may never take, so the metadata database always has room to
    /// commit claims. 0 turns the check off (the disk may then fill up, which uploads report
    /// as [`BlobError::StorageFull`]).
    pub min_free_bytes: u64,
}

impl Default for FsLimits {
    fn default() -> Self {
        Self {
            max_pending_bytes: 16 << 30,
            min_free_bytes: 128 << 20,
        }
    }
}

/// How often (in bytes written) a running upload checks the volume's free space again:
/// concurrent uploads and other programs use the same disk.
const FREE_SPACE_CHECK_INTERVAL: u64 = 1 << 20;

/// Blobs of a declared size up to this are gathered in memory and then written, synced and
/// renamed into place by one blocking task, and read back by one: for a small file, each
/// hand-off between the runtime and a blocking thread costs more than the I/O it carries.
const SMALL_BLOB: u64 = 64 * 1024;

pub struct FsBlobStore {
    blobs: PathBuf,
    temp: PathBuf,
    /// One directory per unfinished multipart upload (see `staging`).
    staging: PathBuf,
    pending: Arc<SpaceBudget>,
    min_free_bytes: u64,
}

/// Removes a temporary file when an upload is abandoned, including when the request future is
/// dropped because the client went away.
struct TempFileGuard {
    path: Option<PathBuf>,
}

impl TempFileGuard {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFileGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // A small synchronous unlink; the async runtime may already be gone here.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl FsBlobStore {
    /// Uses (and creates) `<data_dir>/blobs`, `<data_dir>/tmp` and `<data_dir>/staging`.
    pub async fn open(data_dir: &Path, limits: FsLimits) -> BlobResult<Self> {
        let blobs = data_dir.join("blobs");
        let temp = data_dir.join("tmp");
        let staging = data_dir.join("staging");
        tokio::fs::create_dir_all(&blobs).await?;
        tokio::fs::create_dir_all(&temp).await?;
        tokio::fs::create_dir_all(&staging).await?;
        let pending = SpaceBudget::new(limits.max_pending_bytes);
        // Parts staged before a restart still take their space.
        let scanned = staging.clone();
        let staged = tokio::task::spawn_blocking(move || Self::scan_staged_bytes(&scanned))
            .await
            .map_err(std::io::Error::other)??;
        pending.account(staged);
        Ok(Self {
            blobs,
            temp,
            staging,
            pending,
            min_free_bytes: limits.min_free_bytes,
        })
    }

    /// Refuses when writing `upcoming` more bytes would leave less than the reserve free.
    async fn ensure_free(&self, upcoming: u64) -> BlobResult<()> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        // Called right on the runtime's thread: statvfs answers from counters the kernel
        // keeps in memory, far quicker than handing it to a blocking thread and back.
        let stats = rustix::fs::statvfs(&self.temp).map_err(std::io::Error::from)?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        if available < self.min_free_bytes.saturating_add(upcoming) {
            return Err(BlobError::StorageFull);
        }
        Ok(())
    }

    /// The file of a blob. Blob keys are validated tokens, so the path stays inside `blobs`.
    pub fn path_of(&self, key: &BlobKey) -> PathBuf {
        self.blobs.join(key.as_str())
    }

    fn temp_path(&self, key: &BlobKey) -> PathBuf {
        let mut nonce = [0u8; 8];
        rand::rng().fill_bytes(&mut nonce);
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        self.temp.join(format!("{key}.{nonce}.part"))
    }

    async fn write_verified(
        &self,
        file: &mut tokio::fs::File,
        mut body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        let mut verifier = Verifier::new(limits);
        let limit = verifier.limit;
        // A declared size is held from the start, so a refusal comes before any byte.
        let mut reservation = self
            .pending
            .reserve(limits.expected_size.map_or(0, |_| limit))?;
        let upcoming = |written: u64| {
            let remaining = limit.saturating_sub(written);
            match limits.expected_size {
                Some(_) => remaining,
                None => remaining.min(FREE_SPACE_CHECK_INTERVAL),
            }
        };
        self.ensure_free(upcoming(0)).await?;
        let mut next_free_check = FREE_SPACE_CHECK_INTERVAL;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            let before = verifier.received();
            verifier.take(&chunk)?;
            reservation.grow_to(verifier.received())?;
            if verifier.received() >= next_free_check {
                self.ensure_free(upcoming(before)).await?;
                next_free_check = verifier.received() + FREE_SPACE_CHECK_INTERVAL;
            }
            file.write_all(&chunk).await?;
        }
        let info = verifier.finish()?;
        file.flush().await?;
        file.sync_all().await?;
        Ok(info)
    }
}

impl FsBlobStore {
    /// [`BlobStore::put`] of a small blob of declared size: the same checks and the same
    /// durable steps (write, fsync, rename, fsync the directory), with the bytes gathered
    /// first and the file work done in one blocking task.
    async fn put_small(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        let mut verifier = Verifier::new(limits);
        let limit = verifier.limit;
        let reservation = self.pending.reserve(limit)?;
        self.ensure_free(limit).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            verifier.take(&chunk)?;
            bytes.extend_from_slice(&chunk);
        }
        let info = verifier.finish()?;
        let temp = self.temp_path(key);
        let target = self.path_of(key);
        let blobs = self.blobs.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut guard = TempFileGuard {
                path: Some(temp.clone()),
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            // As for streamed uploads: the sweep leaves a locked temporary file alone.
            file.lock()?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &target)?;
            guard.disarm();
            drop(file);
            std::fs::File::open(&blobs)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)?;
        drop(reservation);
        written?;
        Ok(info)
    }

    /// The whole of a small blob, opened, measured and read in one blocking task; `None`
    /// when it is larger than [`SMALL_BLOB`] (then it is streamed).
    async fn read_small(&self, key: &BlobKey) -> BlobResult<Option<bytes::Bytes>> {
        let path = self.path_of(key);
        let read = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path)?;
            if file.metadata()?.len() > SMALL_BLOB {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok::<_, std::io::Error>(Some(bytes::Bytes::from(bytes)))
        })
        .await
        .map_err(std::io::Error::other)?;
        match read {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(error) => Err(error.into()),
        }
    }
}

fn modified_before(metadata: &std::fs::Metadata, before: Instant) -> bool {
    let cutoff = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(before.unix_timestamp()).unwrap_or(0));
    metadata.modified().is_ok_and(|modified| modified < cutoff)
}

/// Creates a temporary file and takes an exclusive advisory lock on it (`flock`), held until
/// the file is closed. Locks conflict between open files, also within one process, so the
/// sweep's own open of the file sees it as busy.
async fn create_locked(path: &Path) -> std::io::Result<tokio::fs::File> {
    let path = path.to_owned();
    let file = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

/// Removes a stale temporary file unless a writer still holds its lock. True when removed.
fn remove_unless_locked(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match file.try_lock() {
        // Holding the lock while unlinking: no writer can be using this file.
        Ok(()) => std::fs::remove_file(path).is_ok(),
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(error)) => {
            tracing::warn!(path = %path.display(), %error, "cannot lock a temporary file");
            false
        }
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    /// Ready when an upload could start now: both directories exist and a file can be
    /// written, synced and removed in the staging directory (a read-only or vanished `tmp/`
    /// fails every upload while a plain `stat` still succeeds).
    async fn ping(&self) -> BlobResult<()> {
        tokio::fs::metadata(&self.blobs).await?;
        let probe = self.temp.join(format!(".ready.{}", std::process::id()));
        let written = async {
            let mut file = tokio::fs::File::create(&probe).await?;
            file.write_all(b"ready").await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::remove_file(&probe).await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), written).await {
            Ok(result) => result.map_err(|error| {
                let _ = std::fs::remove_file(&probe);
                BlobError::from(error)
            }),
            Err(_) => Err(BlobError::Storage(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the staging directory did not take a write within 2 s",
            ))),
        }
    }

    fn pending_bytes(&self) -> u64 {
        self.pending.held()
    }

    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        limits: PutLimits,
    ) -> BlobResult<BlobInfo> {
        if limits.expected_size.is_some_and(|size| size <= SMALL_BLOB) {
            return self.put_small(key, body, limits).await;
        }
        let temp = self.temp_path(key);
        let mut file = create_locked(&temp).await?;
        let mut guard = TempFileGuard {
            path: Some(temp.clone()),
        };
        let info = self.write_verified(&mut file, body, limits).await?;
        // The lock goes with the file: keep it open until the rename, so a sweep cannot take
        // the temporary file between the last write and the rename.
        tokio::fs::rename(&temp, self.path_of(key)).await?;
        guard.disarm();
        drop(file);
        // Make the rename itself durable before the caller publishes the share.
        sync_dir(&self.blobs).await?;
        Ok(info)
    }

    /// Blobs here have a single version: `_version` is never set by a direct upload.
    async fn open(
        &self,
        key: &BlobKey,
        _version: Option<&str>,
        range: Option<RangeInclusive<u64>>,
    ) -> BlobResult<BlobRead> {
        if range.is_none()
            && let Some(bytes) = self.read_small(key).await?
        {
            let total_size = bytes.len() as u64;
            return Ok(BlobRead {
                total_size,
                range: None,
                body: Box::pin(futures::stream::iter(
                    (!bytes.is_empty()).then_some(Ok(bytes)),
                )),
            });
        }
        let mut file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound);
            }
            Err(error) => return Err(error.into()),
        };
        let total_size = file.metadata().await?.len();
        let body: ByteStream = match &range {
            None => Box::pin(ReaderStream::with_capacity(file, 64 * 1024)),
            Some(range) => {
                if range.start() > range.end() || *range.end() >= total_size {
                    return Err(BlobError::RangeNotSatisfiable { size: total_size });
                }
                file.seek(SeekFrom::Start(*range.start())).await?;
                let length = range.end() - range.start() + 1;
                Box::pin(ReaderStream::with_capacity(file.take(length), 64 * 1024))
            }
        };
        Ok(BlobRead {
            total_size,
            range,
            body,
        })
    }

    async fn size(&self, key: &BlobKey) -> BlobResult<Option<u64>> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn list_older_than(&self, before: Instant) -> BlobResult<Vec<BlobKey>> {
        let mut keys = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.blobs).await?;
        while let Some(entry) = entries.next_entry().await? {
            let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|name| BlobKey::parse(name).ok())
            else {
                continue;
            };
            if entry
                .metadata()
                .await
                .is_ok_and(|metadata| modified_before(&metadata, before))
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn start_multipart(&self, key: &BlobKey, _content_type: &str) -> BlobResult<String> {
        self.start_staging(key).await
    }

    async fn put_part(
        &self,
        key: &BlobKey,
        upload_id: &str,
        number: u16,
        length: u64,
        body: ByteStream,
    ) -> BlobResult<StoredPart> {
        self.store_part(key, upload_id, number, length, body).await
    }

    async fn list_parts(&self, key: &BlobKey, upload_id: &str) -> BlobResult<Vec<StoredPart>> {
        self.staged_parts(key, upload_id).await
    }

    /// Single uploads come through the server and are verified as they are written, so only
    /// a multipart upload has anything to complete.
    async fn complete_upload(
        &self,
        key: &BlobKey,
        upload_id: Option<&str>,
        parts: &[ReportedPart],
    ) -> BlobResult<CompletedBlob> {
        match upload_id {
            Some(upload_id) => self.assemble(key, upload_id, parts).await,
            None => Err(BlobError::NotFound),
        }
    }

    async fn abort_upload(&self, key: &BlobKey, upload_id: &str) -> BlobResult<()> {
        self.remove_staging(key, upload_id).await
    }

    async fn pending_uploads(&self, before: Instant) -> BlobResult<Vec<(BlobKey, String)>> {
        self.stale_staging(before).await
    }

    async fn remove_stale_uploads(&self, before: Instant) -> BlobResult<u64> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(&self.temp).await?;
        while let Some(entry) = entries.next_entry().await? {
            // The modification time only picks candidates: a live upload may pause for longer
            // than the grace, and its lock is what keeps it.
            if !entry
                .metadata()
                .await
                .is_ok_and(|metadata| modified_before(&metadata, before))
            {
                continue;
            }
            let path = entry.path();
            if tokio::task::spawn_blocking(move || remove_unless_locked(&path))
                .await
                .unwrap_or(false)
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
