//! Producing a plan's archive bytes: a blocking `Read` that walks the entries one record at a
//! time, and the async stream over it that the upload consumes.

use std::fs::File;
use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
use futures::Stream;

use super::format::{self, Zip64Threshold};
use super::{Entry, Plan};

/// The most bytes held at once: one chunk of the stream, or one read of a file.
pub(super) const CHUNK_LEN: usize = 1024 * 1024;

/// Where the archive is: which record comes next.
#[derive(Clone, Copy, Debug)]
enum Step {
    LocalHeader(usize),
    Data(usize),
    DataDescriptor(usize),
    CentralHeader(usize),
    EndRecords,
    Done,
}

/// The archive of a [`Plan`] as a `Read`. Headers are built when reached, file data is read
/// straight into the caller's buffer, and the central directory is built one record at a time
/// from the CRC-32s gathered on the way (four bytes per entry are all that accumulates).
pub(crate) struct ArchiveReader {
    plan: Plan,
    step: Step,
    /// The record being emitted and how much of it is out.
    record: Vec<u8>,
    record_sent: usize,
    file: Option<OpenFile>,
    crcs: Vec<u32>,
    /// Bytes still to produce and drop before the first byte the caller wants.
    skip: u64,
    /// Set by the first error, which every later read repeats: an archive that went on after a
    /// failure would look whole but be wrong.
    failure: Option<(io::ErrorKind, String)>,
}

struct OpenFile {
    file: File,
    read: u64,
    hasher: crc32fast::Hasher,
}

impl ArchiveReader {
    pub(super) fn new(plan: Plan, offset: u64) -> ArchiveReader {
        let crcs = Vec::with_capacity(plan.entries.len());
        ArchiveReader {
            plan,
            step: Step::LocalHeader(0),
            record: Vec::new(),
            record_sent: 0,
            file: None,
            crcs,
            skip: offset,
            failure: None,
        }
    }

    /// The next piece of the archive, at most [`CHUNK_LEN`] bytes; `None` at the end.
    pub(super) fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let mut chunk = BytesMut::zeroed(CHUNK_LEN);
        let mut filled = 0;
        while filled < chunk.len() {
            let read = self.read(&mut chunk[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Ok(None);
        }
        chunk.truncate(filled);
        Ok(Some(chunk.freeze()))
    }

    /// Produces and drops the bytes before the offset asked for. File data there must still be
    /// read: the central directory at the end needs every file's CRC-32.
    fn skip_to_offset(&mut self) -> io::Result<()> {
        if self.skip == 0 {
            return Ok(());
        }
        let mut scratch = vec![0; CHUNK_LEN];
        while self.skip > 0 {
            let wanted = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(CHUNK_LEN);
            let read = self.produce(&mut scratch[..wanted])?;
            if read == 0 {
                break;
            }
            self.skip -= read as u64;
        }
        Ok(())
    }

    fn produce(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.record_sent < self.record.len() {
                let pending = &self.record[self.record_sent..];
                let len = pending.len().min(out.len());
                out[..len].copy_from_slice(&pending[..len]);
                self.record_sent += len;
                return Ok(len);
            }
            let zip64 = self.plan.zip64;
            let entry_count = self.plan.entries.len();
            self.step = match self.step {
                Step::LocalHeader(index) if index == entry_count => Step::CentralHeader(0),
                Step::LocalHeader(index) => {
                    let entry = &self.plan.entries[index];
                    let is_dir = entry.is_dir;
                    let record = format::local_header(entry, zip64);
                    self.start_record(record);
                    if is_dir {
                        self.crcs.push(0);
                        Step::LocalHeader(index + 1)
                    } else {
                        Step::Data(index)
                    }
                }
                Step::Data(index) => {
                    let read = self.read_file(index, out)?;
                    if read > 0 {
                        return Ok(read);
                    }
                    Step::DataDescriptor(index)
                }
                Step::DataDescriptor(index) => {
                    let entry = &self.plan.entries[index];
                    let record = format::data_descriptor(entry, zip64, self.crcs[index]);
                    self.start_record(record);
                    Step::LocalHeader(index + 1)
                }
                Step::CentralHeader(index) if index == entry_count => Step::EndRecords,
                Step::CentralHeader(index) => {
                    let entry = &self.plan.entries[index];
                    let record = format::central_header(entry, zip64, self.crcs[index]);
                    self.start_record(record);
                    Step::CentralHeader(index + 1)
                }
                Step::EndRecords => {
                    let record = format::end_records(
                        zip64,
                        entry_count as u64,
                        self.plan.central_directory_offset,
                        self.plan.central_directory_size,
                    );
                    self.start_record(record);
                    Step::Done
                }
                Step::Done => return Ok(0),
            };
        }
    }

    fn start_record(&mut self, record: Vec<u8>) {
        self.record = record;
        self.record_sent = 0;
    }

    /// Reads the next bytes of entry `index` into `out`; 0 once all of it is read and checked,
    /// with its CRC-32 recorded.
    fn read_file(&mut self, index: usize, out: &mut [u8]) -> io::Result<usize> {
        let entry = &self.plan.entries[index];
        let open = match &mut self.file {
            Some(open) => open,
            None => self.file.insert(open_unchanged(entry)?),
        };
        let left = entry.size - open.read;
        if left == 0 {
            // One byte more tells a file that grew from one that is exactly as planned.
            let mut probe = [0; 1];
            if read_retrying(&mut open.file, &mut probe)? > 0 {
                return Err(changed(entry, "grew while it was being read"));
            }
            check_unchanged(entry, &open.file)?;
            let open = self.file.take().expect("the file is open");
            self.crcs.push(open.hasher.finalize());
            return Ok(0);
        }
        let wanted = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
        let read = read_retrying(&mut open.file, &mut out[..wanted])?;
        if read == 0 {
            return Err(changed(
                entry,
                &format!(
                    "shrank while it was being read (it ended after {} of {} bytes)",
                    open.read, entry.size
                ),
            ));
        }
        open.hasher.update(&out[..read]);
        open.read += read as u64;
        Ok(read)
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, message)) = &self.failure {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let result = self.skip_to_offset().and_then(|()| self.produce(out));
        if let Err(error) = &result {
            self.failure = Some((error.kind(), error.to_string()));
        }
        result
    }
}

/// The file as it was planned, or an error saying why not.
fn open_unchanged(entry: &Entry) -> io::Result<OpenFile> {
    let file = File::open(&entry.source).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot read {}: {error}", entry.source.display()),
        )
    })?;
    check_unchanged(entry, &file)?;
    Ok(OpenFile {
        file,
        read: 0,
        hasher: crc32fast::Hasher::new(),
    })
}

/// The headers already promise the planned size and mtime, so a file that no longer has them
/// cannot be archived as planned (and a resumed upload would not get the same bytes again).
fn check_unchanged(entry: &Entry, file: &File) -> io::Result<()> {
    let metadata = file.metadata().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot read {}: {error}", entry.source.display()),
        )
    })?;
    if !metadata.is_file() {
        return Err(changed(entry, "is no longer a regular file"));
    }
    if metadata.len() != entry.size {
        return Err(changed(
            entry,
            &format!(
                "changed size from {} to {} bytes",
                entry.size,
                metadata.len()
            ),
        ));
    }
    if metadata.modified().ok() != Some(entry.modified) {
        return Err(changed(entry, "was modified"));
    }
    Ok(())
}

fn changed(entry: &Entry, what: &str) -> io::Error {
    io::Error::other(format!(
        "{} {what} after the archive was planned; send again once it no longer changes",
        entry.source.display()
    ))
}

fn read_retrying(file: &mut File, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(out) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// The archive from `offset` on as a stream of chunks of at most [`CHUNK_LEN`] bytes. Each
/// chunk is made on tokio's blocking pool (file reads block), one at a time, so memory stays at
/// one chunk however large the archive. It ends after the first error.
pub(super) fn stream(
    plan: Plan,
    offset: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let reader = ArchiveReader::new(plan, offset);
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let made = tokio::task::spawn_blocking(move || {
            let chunk = reader.next_chunk();
            (reader, chunk)
        })
        .await;
        match made {
            Ok((reader, Ok(Some(chunk)))) => Some((Ok(chunk), Some(reader))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(error))) => Some((Err(error), None)),
            Err(join_error) => Some((Err(io::Error::other(join_error)), None)),
        }
    })
}

/// The bytes an entry takes before the central directory: local header, data, data descriptor.
pub(super) fn entry_len(entry: &Entry, zip64: Zip64Threshold) -> u64 {
    format::local_header(entry, zip64).len() as u64
        + entry.size
        + format::data_descriptor_len(entry, zip64)
}
