//! Multipart uploads of the embedded store. Each upload has a staging directory
//! `<data dir>/staging/<blob key>.<upload id>/` holding its stored parts as `<number>.<sha256>`
//! (the name carries the part's tag, so listing needs no reads) and parts being written as
//! locked temporary files. A part is written and synced to a temporary file first, then, under
//! the directory's lock, renamed into place only if no other bytes hold that number yet.
//! Completion assembles the parts in order into a temporary blob file (hashing the whole), then
//! renames it into `blobs/` like any other write, and removes the staging directory.
//!
//! The directory's lock (`flock` on `.lock`, which holds across processes) serialises what
//! changes the set of parts: storing a part, assembling, and removal by abort or the reaper.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use once_domain::{BlobKey, Instant};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{FsBlobStore, TempFileGuard, create_locked, modified_before, sync_dir};
use crate::verify::Verifier;
use crate::{
    BlobError, BlobResult, ByteStream, CompletedBlob, PutLimits, ReportedPart, StoredPart,
};

const LOCK_FILE: &str = ".lock";

/// A stored part's file name: `<number>.<hex sha256>`.
fn part_file_name(number: u16, sha256_hex: &str) -> String {
    format!("{number}.{sha256_hex}")
}

fn parse_part_file_name(name: &str) -> Option<(u16, &str)> {
    let (number, tag) = name.split_once('.')?;
    let number = number.parse().ok()?;
    (tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some((number, tag))
}

/// Upload ids are random tokens of our own; anything else never names a directory.
fn valid_upload_id(upload_id: &str) -> bool {
    upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Holds a staging directory's lock for as long as it lives.
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Blocks until the lock is ours; NotFound when the directory is gone.
    fn acquire(dir: &Path) -> BlobResult<Self> {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .open(dir.join(LOCK_FILE))
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound);
            }
            Err(error) => return Err(error.into()),
        };
        file.lock()?;
        // Removal unlinks the lock file while holding the lock: if it went while we waited,
        // the upload is gone.
        if !dir.join(LOCK_FILE).exists() {
            return Err(BlobError::NotFound);
        }
        Ok(Self { _file: file })
    }

    fn try_acquire(dir: &Path) -> BlobResult<Option<Self>> {
        let file = match std::fs::File::open(dir.join(LOCK_FILE)) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> BlobResult<T> + Send + 'static,
) -> BlobResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| BlobError::Storage(std::io::Error::other(error)))?
}

/// The stored parts in a staging directory, by number.
fn read_parts(dir: &Path) -> BlobResult<Vec<StoredPart>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BlobError::NotFound);
        }
        Err(error) => return Err(error.into()),
    };
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((number, tag)) = name.to_str().and_then(parse_part_file_name) else {
            continue;
        };
        parts.push(StoredPart {
            number,
            size: entry.metadata()?.len(),
            etag: tag.to_owned(),
        });
    }
    parts.sort_by_key(|part| part.number);
    Ok(parts)
}

/// Removes a staging directory whose lock the caller holds; returns the bytes its parts held.
fn remove_dir_locked(dir: &Path) -> BlobResult<u64> {
    let staged: u64 = read_parts(dir)?.iter().map(|part| part.size).sum();
    // The lock file goes first, so a writer waiting for the lock sees the upload gone.
    std::fs::remove_file(dir.join(LOCK_FILE))?;
    std::fs::remove_dir_all(dir)?;
    Ok(staged)
}

impl FsBlobStore {
    fn staging_dir(&self, key: &BlobKey, upload_id: &str) -> BlobResult<PathBuf> {
        if !valid_upload_id(upload_id) {
            return Err(BlobError::NotFound);
        }
        Ok(self.staging.join(format!("{key}.{upload_id}")))
    }

    /// Bytes that staged parts hold on disk now (counted once at start-up).
    pub(super) fn scan_staged_bytes(staging: &Path) -> std::io::Result<u64> {
        let mut total = 0;
        for upload in std::fs::read_dir(staging)? {
            let upload = upload?;
            if !upload.file_type()?.is_dir() {
                continue;
            }
            for part in std::fs::read_dir(upload.path())? {
                let part = part?;
                if part
                    .file_name()
                    .to_str()
                    .and_then(parse_part_file_name)
                    .is_some()
                {
                    total += part.metadata()?.len();
                }
            }
        }
        Ok(total)
    }

    pub(super) async fn start_staging(&self, key: &BlobKey) -> BlobResult<String> {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        let upload_id = hex::encode(id);
        let dir = self.staging_dir(key, &upload_id)?;
        tokio::fs::create_dir(&dir).await?;
        let lock = tokio::fs::File::create(dir.join(LOCK_FILE)).await?;
        lock.sync_all().await?;
        sync_dir(&dir).await?;
        sync_dir(&self.staging).await?;
        Ok(upload_id)
    }

    pub(super) async fn store_part(
        &self,
        key: &BlobKey,
        upload_id: &str,
        number: u16,
        length: u64,
        mut body: ByteStream,
    ) -> BlobResult<StoredPart> {
        let dir = self.staging_dir(key, upload_id)?;
        if !tokio::fs::try_exists(dir.join(LOCK_FILE)).await? {
            return Err(BlobError::NotFound);
        }
        let mut reservation = self.pending.reserve(length)?;
        self.ensure_free(length).await?;
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let temp = dir.join(format!(".{number}.{}.tmp", hex::encode(nonce)));
        let mut file = create_locked(&temp).await?;
        let mut guard = TempFileGuard {
            path: Some(temp.clone()),
        };
        let mut verifier = Verifier::new(PutLimits {
            expected_size: Some(length),
            max_size: length,
            sha256: None,
        });
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            verifier.take(&chunk)?;
            file.write_all(&chunk).await?;
        }
        let info = verifier.finish()?;
        file.flush().await?;
        file.sync_all().await?;
        let tag = info.sha256.to_hex();
        let stored = StoredPart {
            number,
            size: info.size,
            etag: tag.clone(),
        };
        let placed = {
            let dir = dir.clone();
            let temp = temp.clone();
            let tag = tag.clone();
            blocking(move || {
                let _lock = DirLock::acquire(&dir)?;
                if let Some(held) = read_parts(&dir)?.into_iter().find(|p| p.number == number) {
                    return if held.etag == tag {
                        Ok(false)
                    } else {
                        Err(BlobError::PartConflict(number))
                    };
                }
                std::fs::rename(&temp, dir.join(part_file_name(number, &tag)))?;
                std::fs::File::open(&dir)?.sync_all()?;
                Ok(true)
            })
            .await
        };
        drop(file);
        match placed {
            Ok(true) => {
                guard.disarm();
                // The part now lives on disk until the upload completes or is removed.
                reservation.grow_to(info.size)?;
                reservation.keep();
                Ok(stored)
            }
            // The same bytes were already there: a retry.
            Ok(false) => Ok(stored),
            Err(error) => Err(error),
        }
    }

    pub(super) async fn staged_parts(
        &self,
        key: &BlobKey,
        upload_id: &str,
    ) -> BlobResult<Vec<StoredPart>> {
        let dir = self.staging_dir(key, upload_id)?;
        if !tokio::fs::try_exists(dir.join(LOCK_FILE)).await? {
            return Err(BlobError::NotFound);
        }
        blocking(move || read_parts(&dir)).await
    }

    /// Assembles the reported parts, in order, into the blob `key`. Under the directory's
    /// lock, so a concurrent completion waits and then finds the blob already assembled.
    pub(super) async fn assemble(
        &self,
        key: &BlobKey,
        upload_id: &str,
        reported: &[ReportedPart],
    ) -> BlobResult<CompletedBlob> {
        let dir = self.staging_dir(key, upload_id)?;
        let target = self.path_of(key);
        let temp = self.temp_path(key);
        let reported = reported.to_vec();
        let total: u64 = {
            let dir = dir.clone();
            blocking(move || Ok(read_parts(&dir).unwrap_or_default()))
                .await?
                .iter()
                .map(|part| part.size)
                .sum()
        };
        // The assembled copy needs room next to the parts until they go.
        self.ensure_free(total).await?;
        let pending = self.pending.clone();
        let blobs = self.blobs.clone();
        blocking(move || {
            let lock = match DirLock::acquire(&dir) {
                Ok(lock) => lock,
                // Gone: an earlier completion assembled it (or it was aborted).
                Err(BlobError::NotFound) => return describe_existing(&target),
                Err(error) => return Err(error),
            };
            let held = read_parts(&dir)?;
            let mut guard = TempFileGuard {
                path: Some(temp.clone()),
            };
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            out.lock()?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buffer = vec![0u8; 1 << 20];
            for part in &reported {
                let stored = held
                    .iter()
                    .find(|held| held.number == part.number)
                    .ok_or_else(|| {
                        BlobError::InvalidParts(format!("part {} is missing", part.number))
                    })?;
                if !once_domain::parts::same_etag(&stored.etag, &part.etag) {
                    return Err(BlobError::PartConflict(part.number));
                }
                let mut input =
                    std::fs::File::open(dir.join(part_file_name(stored.number, &stored.etag)))?;
                loop {
                    let n = input.read(&mut buffer)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buffer[..n]);
                    out.write_all(&buffer[..n])?;
                    size += n as u64;
                }
            }
            out.sync_all()?;
            std::fs::rename(&temp, &target)?;
            guard.disarm();
            drop(out);
            std::fs::File::open(&blobs)?.sync_all()?;
            pending.release(remove_dir_locked(&dir)?);
            drop(lock);
            Ok(CompletedBlob {
                size,
                sha256: Some(once_domain::Sha256Digest(hasher.finalize().into())),
                version: None,
            })
        })
        .await
    }

    pub(super) async fn remove_staging(&self, key: &BlobKey, upload_id: &str) -> BlobResult<()> {
        let Ok(dir) = self.staging_dir(key, upload_id) else {
            return Ok(());
        };
        let pending = self.pending.clone();
        blocking(move || {
            let _lock = match DirLock::acquire(&dir) {
                Ok(lock) => lock,
                Err(BlobError::NotFound) => return Ok(()),
                Err(error) => return Err(error),
            };
            pending.release(remove_dir_locked(&dir)?);
            Ok(())
        })
        .await
    }

    /// Staging directories untouched since `before` whose lock is free (no part is being
    /// stored and no completion runs), as (key, upload id).
    pub(super) async fn stale_staging(
        &self,
        before: Instant,
    ) -> BlobResult<Vec<(BlobKey, String)>> {
        let staging = self.staging.clone();
        blocking(move || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&staging)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some((key, upload_id)) = name.to_str().and_then(|name| name.rsplit_once('.'))
                else {
                    continue;
                };
                let (Ok(key), true) = (BlobKey::parse(key), valid_upload_id(upload_id)) else {
                    continue;
                };
                let dir = entry.path();
                let newest_is_old = std::fs::read_dir(&dir)?.all(|part| {
                    part.and_then(|part| part.metadata())
                        .is_ok_and(|metadata| modified_before(&metadata, before))
                });
                if newest_is_old
                    && entry
                        .metadata()
                        .is_ok_and(|metadata| modified_before(&metadata, before))
                    && DirLock::try_acquire(&dir)?.is_some()
                {
                    found.push((key, upload_id.to_owned()));
                }
            }
            Ok(found)
        })
        .await
    }
}

/// What an earlier completion left under `target`, hashed again (its share may not have been
/// published if the metadata store was briefly away).
fn describe_existing(target: &Path) -> BlobResult<CompletedBlob> {
    let mut file = match std::fs::File::open(target) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BlobError::NotFound);
        }
        Err(error) => return Err(error.into()),
    };
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut HashWriter(&mut hasher))?;
    Ok(CompletedBlob {
        size,
        sha256: Some(once_domain::Sha256Digest(hasher.finalize().into())),
        version: None,
    })
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_names_round_trip_and_nothing_else_parses() {
        let tag = "a".repeat(64);
        assert_eq!(
            parse_part_file_name(&part_file_name(7, &tag)),
            Some((7, tag.as_str()))
        );
        assert_eq!(parse_part_file_name(".lock"), None);
        assert_eq!(parse_part_file_name(".3.0011.tmp"), None);
        assert_eq!(parse_part_file_name("3.short"), None);
    }

    #[test]
    fn only_our_upload_ids_name_directories() {
        assert!(valid_upload_id(&"0f".repeat(16)));
        assert!(!valid_upload_id("../../etc"));
        assert!(!valid_upload_id(""));
    }
}
