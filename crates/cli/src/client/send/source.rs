//! What `once send` sends: one file, an archive packed on the fly from several files or
//! folders, or standard input.

use std::path::PathBuf;
use std::pin::Pin;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use once_api::{ArchiveContents, ArchiveEntry};
use tokio_util::io::ReaderStream;

use crate::client::archive::Plan;

/// The archive listing kept with the share is cut to this many entries, so it fits in an API
/// request (the landing page shows the first entries and the total).
const LISTED_ENTRIES: usize = 300;

pub(super) type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub(super) enum Source {
    /// One regular file; its size and SHA-256 are known before the upload.
    File {
        path: PathBuf,
        size: u64,
        sha256: String,
    },
    /// Several inputs packed into one ZIP while it is sent; its size is known in advance,
    /// its SHA-256 only at the end.
    Archive { plan: Plan },
    /// Standard input: neither size nor checksum known until it ends.
    Stdin,
}

impl Source {
    pub(super) fn size(&self) -> Option<u64> {
        match self {
            Source::File { size, .. } => Some(*size),
            Source::Archive { plan } => Some(plan.archive_size()),
            Source::Stdin => None,
        }
    }

    /// The bytes from the start. Standard input can be read only once.
    pub(super) fn stream(&self) -> Result<ByteStream> {
        Ok(match self {
            Source::File { path, .. } => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Box::pin(ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    256 * 1024,
                ))
            }
            Source::Archive { plan } => Box::pin(plan.stream()),
            Source::Stdin => Box::pin(ReaderStream::with_capacity(tokio::io::stdin(), 256 * 1024)),
        })
    }

    /// The listing kept as the share's metadata, for an archive.
    pub(super) fn contents(&self) -> Option<ArchiveContents> {
        let Source::Archive { plan } = self else {
            return None;
        };
        let entries = plan.listing();
        Some(ArchiveContents {
            entries: entries.len() as u64,
            total_size: entries.iter().map(|entry| entry.size).sum(),
            truncated: entries.len() > LISTED_ENTRIES,
            listing: entries
                .iter()
                .take(LISTED_ENTRIES)
                .map(|entry| ArchiveEntry {
                    path: if entry.is_dir {
                        format!("{}/", entry.path)
                    } else {
                        entry.path.clone()
                    },
                    size: entry.size,
                })
                .collect(),
        })
    }

    /// What identifies this input across runs, for the resume record: a file by its path,
    /// size and SHA-256; an archive by what it will contain. None for standard input, which
    /// cannot be read again.
    pub(super) fn identity(&self) -> Option<String> {
        match self {
            Source::File { path, size, sha256 } => {
                let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                Some(format!("file\n{}\n{size}\n{sha256}", path.display()))
            }
            Source::Archive { plan } => {
                Some(format!("archive\n{}", hex::encode(plan.fingerprint())))
            }
            Source::Stdin => None,
        }
    }
}

/// Reads the start of standard input, up to `limit` bytes: a pipe that ends within it is sent
/// like a file of known size (one request, with its checksum); a longer one goes in parts.
pub(super) async fn read_head(stream: &mut ByteStream, limit: usize) -> Result<(Bytes, bool)> {
    let mut head = bytes::BytesMut::new();
    while head.len() < limit {
        match stream.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.context("cannot read standard input")?),
            None => return Ok((head.freeze(), true)),
        }
    }
    Ok((head.freeze(), false))
}

/// Checks the inputs of `once send` before anything is sent.
pub(super) fn check_inputs(inputs: &[PathBuf]) -> Result<()> {
    if inputs.is_empty() {
        bail!("name a file, folder or `-` (standard input) to send");
    }
    if inputs.len() > 1 && inputs.iter().any(|input| input.as_os_str() == "-") {
        bail!("`-` (standard input) cannot be sent together with files");
    }
    Ok(())
}
