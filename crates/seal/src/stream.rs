//! Sealing and opening whole streams record by record, for callers that read and write in
//! chunks of any size (HTTP bodies, files) and must never hold a whole file in memory.

use crate::{Keys, RECORD_SIZE, SEALED_RECORD_SIZE, SealError, layout};

/// Seals plaintext of unknown length. It keeps up to one record of plaintext back, so the
/// record that turns out to be the last gets `F = 1`. What it appends to `out` is exactly the
/// sealed stream. Takes [`Keys`] by value: they are cheap to clone.
pub struct StreamSealer {
    keys: Keys,
    next_record: u64,
    pending: Vec<u8>,
}

impl StreamSealer {
    pub fn new(keys: Keys) -> StreamSealer {
        StreamSealer {
            keys,
            next_record: 0,
            pending: Vec::with_capacity(RECORD_SIZE),
        }
    }

    /// Appends the records that `plaintext` completes (all but the held-back one) to `out`.
    pub fn push(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) {
        while !plaintext.is_empty() {
            // A full record is sealed only once more bytes arrive: it is then not the last.
            if self.pending.len() == RECORD_SIZE {
                self.keys
                    .seal_record_into(self.next_record, false, &self.pending, out);
                self.next_record += 1;
                self.pending.clear();
            }
            let take = (RECORD_SIZE - self.pending.len()).min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
        }
    }

    /// Seals the held-back bytes (possibly none) as the last record.
    pub fn finish(self, out: &mut Vec<u8>) {
        self.keys
            .seal_record_into(self.next_record, true, &self.pending, out);
    }
}

/// Opens a sealed stream of known total length, from record `first_record` on (a resumed
/// download starts at [`layout::sealed_offset`]`(first_record)`). Only authenticated plaintext
/// reaches `out`; after an error the stream is unusable and what was written must be discarded.
pub struct StreamOpener {
    keys: Keys,
    next_record: u64,
    last_record: u64,
    /// Sealed bytes of the last record.
    last_record_size: usize,
    pending: Vec<u8>,
    failed: Option<SealError>,
}

impl StreamOpener {
    pub fn new(keys: Keys, sealed_len: u64, first_record: u64) -> Result<StreamOpener, SealError> {
        let records = layout::record_count(layout::plain_len(sealed_len)?);
        if first_record >= records {
            return Err(SealError::InvalidLength);
        }
        let last_record = records - 1;
        let last_record_size = usize::try_from(sealed_len - layout::sealed_offset(last_record))
            .expect("a record is at most 64 KiB");
        Ok(StreamOpener {
            keys,
            next_record: first_record,
            last_record,
            last_record_size,
            pending: Vec::with_capacity(SEALED_RECORD_SIZE),
            failed: None,
        })
    }

    /// Appends the plaintext of every record `sealed` completes to `out`.
    pub fn push(&mut self, mut sealed: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        while !sealed.is_empty() {
            if self.next_record > self.last_record {
                // More bytes than the stream's length: whatever they are, they are not ours.
                return self.fail(SealError::InvalidLength);
            }
            let take = (self.expected_size() - self.pending.len()).min(sealed.len());
            self.pending.extend_from_slice(&sealed[..take]);
            sealed = &sealed[take..];
            if self.pending.len() == self.expected_size() {
                self.open_pending(out)?;
            }
        }
        Ok(())
    }

    /// Checks that the last record arrived and opened.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), SealError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        // An empty file's only record is a bare tag, so it may still be waiting here.
        if self.next_record == self.last_record && self.pending.len() == self.expected_size() {
            self.open_pending(out)?;
        }
        if self.next_record <= self.last_record {
            return Err(SealError::Truncated);
        }
        Ok(())
    }

    fn expected_size(&self) -> usize {
        if self.next_record == self.last_record {
            self.last_record_size
        } else {
            SEALED_RECORD_SIZE
        }
    }

    fn open_pending(&mut self, out: &mut Vec<u8>) -> Result<(), SealError> {
        let last = self.next_record == self.last_record;
        if let Err(error) = self
            .keys
            .open_record_into(self.next_record, last, &self.pending, out)
        {
            return self.fail(error);
        }
        self.next_record += 1;
        self.pending.clear();
        Ok(())
    }

    fn fail(&mut self, error: SealError) -> Result<(), SealError> {
        self.failed = Some(error.clone());
        Err(error)
    }
}
