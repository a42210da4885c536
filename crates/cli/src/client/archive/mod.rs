//! `once send A B DIR` sends one ZIP archive of its inputs, and `once get --extract` unpacks it.
//! The archive is streamed: entries are stored (not compressed), so its exact size is known from
//! file metadata alone, and the same unchanged inputs give the same bytes on every run, which is
//! what lets an interrupted upload resume by making the archive again.
//!
//! The writer is our own (`format`, `writer`) rather than the `zip` crate's: we need the exact
//! size before the first byte, a start at any offset, and no `Seek`, in constant memory. Reading
//! (`extract`) uses the `zip` crate.

mod extract;
mod format;
mod scan;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

pub(crate) use extract::extract;
use format::Zip64Threshold;
#[cfg(test)]
pub(crate) use writer::ArchiveReader;

/// One file or directory of the archive, as scanned.
#[derive(Clone, Debug)]
struct Entry {
    /// The path inside the archive, `/`-separated; directories end with `/`.
    name: String,
    source: PathBuf,
    is_dir: bool,
    /// Bytes of data; 0 for directories.
    size: u64,
    modified: SystemTime,
    /// `st_mode`: file type and permission bits, kept in the external attributes.
    unix_mode: u32,
    /// Where the entry's local header starts in the archive.
    header_offset: u64,
}

/// A file or directory of the archive, for the share's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedEntry {
    /// The path inside the archive, `/`-separated, without a trailing `/` for directories.
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) is_dir: bool,
}

/// What the archive of some inputs will hold and where each part of it goes, worked out from
/// metadata before any file is read. Cloning is cheap (the entries are shared).
///
/// Memory is proportional to the number of entries (their names and metadata, and when
/// streaming four bytes of CRC-32 each for the central directory), never to file sizes.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    entries: Arc<[Entry]>,
    zip64: Zip64Threshold,
    central_directory_offset: u64,
    central_directory_size: u64,
    archive_size: u64,
}

impl Plan {
    /// Plans the archive of `inputs`: each file under its own name, each directory as a folder
    /// of its own name holding everything below it (empty directories included), as `zip -r`
    /// does. Entries are sorted by path, component by component, so the order does not depend
    /// on the file system.
    ///
    /// Refused, with the path in the error: symbolic links (they are not followed, whether given
    /// or found inside a directory), special files (FIFOs, sockets, devices), names that are not
    /// UTF-8 or hold a backslash, unreadable files, and two inputs that would have the same path
    /// in the archive.
    pub(crate) fn scan(inputs: &[PathBuf]) -> Result<Plan> {
        let entries = scan::entries(inputs)?;
        Ok(Plan::lay_out(
            entries,
            Zip64Threshold(format::ZIP64_THRESHOLD),
        ))
    }

    /// The same plan with ZIP64 records for every size, offset or count of at least
    /// `threshold` (normally 0xFFFF_FFFF, where 32-bit fields run out), so small archives can
    /// exercise them.
    #[cfg(test)]
    pub(crate) fn with_zip64_threshold(&self, threshold: u64) -> Plan {
        Plan::lay_out(self.entries.to_vec(), Zip64Threshold(threshold))
    }

    fn lay_out(mut entries: Vec<Entry>, zip64: Zip64Threshold) -> Plan {
        let mut offset = 0;
        for entry in &mut entries {
            entry.header_offset = offset;
            offset += writer::entry_len(entry, zip64);
        }
        let central_directory_offset = offset;
        // A CRC-32 changes no lengths, so zero stands in for the ones not yet known.
        let central_directory_size: u64 = entries
            .iter()
            .map(|entry| format::central_header(entry, zip64, 0).len() as u64)
            .sum();
        let end_records_len = format::end_records(
            zip64,
            entries.len() as u64,
            central_directory_offset,
            central_directory_size,
        )
        .len() as u64;
        Plan {
            entries: entries.into(),
            zip64,
            central_directory_offset,
            central_directory_size,
            archive_size: central_directory_offset + central_directory_size + end_records_len,
        }
    }

    /// The exact number of bytes [`Plan::stream`] yields.
    pub(crate) fn archive_size(&self) -> u64 {
        self.archive_size
    }

    /// The entries in archive order.
    pub(crate) fn listing(&self) -> Vec<ListedEntry> {
        self.entries
            .iter()
            .map(|entry| ListedEntry {
                path: entry.name.trim_end_matches('/').to_owned(),
                size: entry.size,
                is_dir: entry.is_dir,
            })
            .collect()
    }

    /// A digest of every archive byte that does not come from file contents: names, sizes,
    /// times, modes and layout. A resumed upload compares it with the one recorded at the start
    /// to know the archive would come out the same (a file edited in place without changing
    /// size or mtime is the one change it cannot see; the CRC-32 check on extraction does).
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        for entry in self.entries.iter() {
            digest.update(format::local_header(entry, self.zip64));
            digest.update(format::central_header(entry, self.zip64, 0));
        }
        digest.update(format::end_records(
            self.zip64,
            self.entries.len() as u64,
            self.central_directory_offset,
            self.central_directory_size,
        ));
        digest.finalize().into()
    }

    /// The archive as a blocking `Read`, from byte `offset` on (see [`Plan::stream_from`]).
    #[cfg(test)]
    pub(crate) fn reader_from(&self, offset: u64) -> ArchiveReader {
        ArchiveReader::new(self.clone(), offset)
    }

    /// The archive's bytes, in chunks of at most 1 MiB, each file read once while its CRC-32 is
    /// computed. A file whose size or mtime differs from the plan, or that grows or shrinks
    /// while it is read, ends the stream with an error naming it: the headers already sent
    /// promised the planned size, so going on would make an archive that looks whole but is not.
    pub(crate) fn stream(&self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        self.stream_from(0)
    }

    /// The archive's bytes from `offset` on, byte for byte what [`Plan::stream`] yields there,
    /// for resuming an upload. The bytes before `offset` are made and dropped without leaving
    /// the process; files there are still read, because the central directory at the end needs
    /// every CRC-32. Resuming saves the upload, not the disk reads.
    pub(crate) fn stream_from(
        &self,
        offset: u64,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        writer::stream(self.clone(), offset)
    }
}
