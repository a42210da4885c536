//! The ZIP records (PKWARE APPNOTE 6.3) of an archive whose entries are all stored, with sizes
//! known before any data is read and each file's CRC-32 in a data descriptor after its data.
//! Every function here is pure: the same entry, offset and CRC give the same bytes.

use std::time::{SystemTime, UNIX_EPOCH};

use super::Entry;

/// The smallest value a 32-bit field cannot hold: it is itself the "see the ZIP64 record"
/// marker, so a size or offset of exactly 0xFFFF_FFFF already needs ZIP64.
pub(super) const ZIP64_THRESHOLD: u64 = 0xFFFF_FFFF;
/// The same marker for the 16-bit entry counts of the end of central directory record.
const ENTRY_COUNT_LIMIT: u64 = 0xFFFF;

const LOCAL_FILE_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_DIRECTORY_HEADER: u32 = 0x0201_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_END_LOCATOR: u32 = 0x0706_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;

/// Bit 3: CRC-32 and sizes follow the data (the local header has zeros).
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// Bit 11: names are UTF-8.
const FLAG_UTF8_NAMES: u16 = 1 << 11;
const METHOD_STORED: u16 = 0;
/// Version 2.0 covers stored files and directories; 4.5 is the first with ZIP64.
const VERSION_NEEDED_DEFAULT: u16 = 20;
const VERSION_NEEDED_ZIP64: u16 = 45;
/// Upper byte 3: Unix, so readers take the mode from the external attributes.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_NEEDED_ZIP64;
const EXTRA_ZIP64: u16 = 0x0001;
/// Info-ZIP's extended timestamp: the exact mtime in seconds, in UTC.
const EXTRA_EXTENDED_TIMESTAMP: u16 = 0x5455;
const EXTENDED_TIMESTAMP_MODIFIED: u8 = 1;
/// MS-DOS "directory" attribute, for readers that ignore the Unix mode.
const DOS_DIRECTORY: u32 = 0x10;

const LOCAL_HEADER_FIXED_LEN: usize = 30;
const CENTRAL_HEADER_FIXED_LEN: usize = 46;
const ZIP64_END_RECORD_LEN: u64 = 56;

/// When a size, offset or count no longer fits its 32-bit (or 16-bit) field. Tests lower the
/// threshold to make small archives use every ZIP64 record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Zip64Threshold(pub(super) u64);

impl Zip64Threshold {
    fn exceeded_by(self, value: u64) -> bool {
        value >= self.0
    }

    fn count_exceeded_by(self, count: u64) -> bool {
        count >= self.0.min(ENTRY_COUNT_LIMIT)
    }

    fn sizes_need_zip64(self, entry: &Entry) -> bool {
        self.exceeded_by(entry.size)
    }

    fn entry_needs_zip64(self, entry: &Entry) -> bool {
        self.sizes_need_zip64(entry) || self.exceeded_by(entry.header_offset)
    }
}

/// The header before an entry's data. Files leave CRC-32 and sizes at zero (bit 3): the CRC
/// is only known once the data is read.
pub(super) fn local_header(entry: &Entry, zip64: Zip64Threshold) -> Vec<u8> {
    let name = entry.name.as_bytes();
    let sizes_zip64 = zip64.sizes_need_zip64(entry);
    let mut extra = Vec::new();
    if sizes_zip64 {
        // Both sizes, as zeros: the real ones are in the data descriptor.
        push_extra_header(&mut extra, EXTRA_ZIP64, 16);
        extra.extend_from_slice(&0u64.to_le_bytes());
        extra.extend_from_slice(&0u64.to_le_bytes());
    }
    push_extended_timestamp(&mut extra, entry.modified);

    let (date, time) = dos_date_time(entry.modified);
    let size_field = if sizes_zip64 { u32::MAX } else { 0 };
    let mut header = Vec::with_capacity(LOCAL_HEADER_FIXED_LEN + name.len() + extra.len());
    header.extend_from_slice(&LOCAL_FILE_HEADER.to_le_bytes());
    header.extend_from_slice(&version_needed(entry, zip64).to_le_bytes());
    header.extend_from_slice(&flags(entry).to_le_bytes());
    header.extend_from_slice(&METHOD_STORED.to_le_bytes());
    header.extend_from_slice(&time.to_le_bytes());
    header.extend_from_slice(&date.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&size_field.to_le_bytes());
    header.extend_from_slice(&size_field.to_le_bytes());
    header.extend_from_slice(&field_len(name.len()).to_le_bytes());
    header.extend_from_slice(&field_len(extra.len()).to_le_bytes());
    header.extend_from_slice(name);
    header.extend_from_slice(&extra);
    header
}

/// The record after a file's data; directories have none. Sizes are 8 bytes each exactly when
/// the local header carried a ZIP64 field, which is how readers tell the two forms apart.
pub(super) fn data_descriptor(entry: &Entry, zip64: Zip64Threshold, crc: u32) -> Vec<u8> {
    let mut descriptor = Vec::with_capacity(24);
    if entry.is_dir {
        return descriptor;
    }
    descriptor.extend_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
    descriptor.extend_from_slice(&crc.to_le_bytes());
    if zip64.sizes_need_zip64(entry) {
        descriptor.extend_from_slice(&entry.size.to_le_bytes());
        descriptor.extend_from_slice(&entry.size.to_le_bytes());
    } else {
        let size = u32::try_from(entry.size).expect("sizes below the ZIP64 threshold fit u32");
        descriptor.extend_from_slice(&size.to_le_bytes());
        descriptor.extend_from_slice(&size.to_le_bytes());
    }
    descriptor
}

pub(super) fn data_descriptor_len(entry: &Entry, zip64: Zip64Threshold) -> u64 {
    match (entry.is_dir, zip64.sizes_need_zip64(entry)) {
        (true, _) => 0,
        (false, false) => 16,
        (false, true) => 24,
    }
}

/// An entry's record in the central directory. Its length does not depend on `crc`, so the
/// layout can be computed before any file is read.
pub(super) fn central_header(entry: &Entry, zip64: Zip64Threshold, crc: u32) -> Vec<u8> {
    let name = entry.name.as_bytes();
    let sizes_zip64 = zip64.sizes_need_zip64(entry);
    let offset_zip64 = zip64.exceeded_by(entry.header_offset);
    let mut extra = Vec::new();
    // Only the fields whose 32-bit header field holds the marker, in this order.
    let zip64_len = 8 * (2 * u16::from(sizes_zip64) + u16::from(offset_zip64));
    if zip64_len > 0 {
        push_extra_header(&mut extra, EXTRA_ZIP64, zip64_len);
        if sizes_zip64 {
            extra.extend_from_slice(&entry.size.to_le_bytes());
            extra.extend_from_slice(&entry.size.to_le_bytes());
        }
        if offset_zip64 {
            extra.extend_from_slice(&entry.header_offset.to_le_bytes());
        }
    }
    push_extended_timestamp(&mut extra, entry.modified);

    let size_field = if sizes_zip64 {
        u32::MAX
    } else {
        u32::try_from(entry.size).expect("sizes below the ZIP64 threshold fit u32")
    };
    let offset_field = if offset_zip64 {
        u32::MAX
    } else {
        u32::try_from(entry.header_offset).expect("offsets below the ZIP64 threshold fit u32")
    };
    let directory_attribute = if entry.is_dir { DOS_DIRECTORY } else { 0 };
    let external_attributes = (entry.unix_mode << 16) | directory_attribute;
    let (date, time) = dos_date_time(entry.modified);

    let mut header = Vec::with_capacity(CENTRAL_HEADER_FIXED_LEN + name.len() + extra.len());
    header.extend_from_slice(&CENTRAL_DIRECTORY_HEADER.to_le_bytes());
    header.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
    header.extend_from_slice(&version_needed(entry, zip64).to_le_bytes());
    header.extend_from_slice(&flags(entry).to_le_bytes());
    header.extend_from_slice(&METHOD_STORED.to_le_bytes());
    header.extend_from_slice(&time.to_le_bytes());
    header.extend_from_slice(&date.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    header.extend_from_slice(&size_field.to_le_bytes());
    header.extend_from_slice(&size_field.to_le_bytes());
    header.extend_from_slice(&field_len(name.len()).to_le_bytes());
    header.extend_from_slice(&field_len(extra.len()).to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes()); // comment length
    header.extend_from_slice(&0u16.to_le_bytes()); // disk number start
    header.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    header.extend_from_slice(&external_attributes.to_le_bytes());
    header.extend_from_slice(&offset_field.to_le_bytes());
    header.extend_from_slice(name);
    header.extend_from_slice(&extra);
    header
}

/// The records after the central directory: the ZIP64 end record and its locator when a count,
/// size or offset overflows its field, then the classic end record with markers where needed.
pub(super) fn end_records(
    zip64: Zip64Threshold,
    entry_count: u64,
    central_directory_offset: u64,
    central_directory_size: u64,
) -> Vec<u8> {
    let count_zip64 = zip64.count_exceeded_by(entry_count);
    let size_zip64 = zip64.exceeded_by(central_directory_size);
    let offset_zip64 = zip64.exceeded_by(central_directory_offset);
    let mut records = Vec::with_capacity(ZIP64_END_RECORD_LEN as usize + 20 + 22);
    if count_zip64 || size_zip64 || offset_zip64 {
        let zip64_end_offset = central_directory_offset + central_directory_size;
        records.extend_from_slice(&ZIP64_END_OF_CENTRAL_DIRECTORY.to_le_bytes());
        // The record's size, not counting the signature and this field.
        records.extend_from_slice(&(ZIP64_END_RECORD_LEN - 12).to_le_bytes());
        records.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
        records.extend_from_slice(&VERSION_NEEDED_ZIP64.to_le_bytes());
        records.extend_from_slice(&0u32.to_le_bytes()); // this disk
        records.extend_from_slice(&0u32.to_le_bytes()); // disk with the central directory
        records.extend_from_slice(&entry_count.to_le_bytes()); // entries on this disk
        records.extend_from_slice(&entry_count.to_le_bytes());
        records.extend_from_slice(&central_directory_size.to_le_bytes());
        records.extend_from_slice(&central_directory_offset.to_le_bytes());

        records.extend_from_slice(&ZIP64_END_LOCATOR.to_le_bytes());
        records.extend_from_slice(&0u32.to_le_bytes()); // disk with the ZIP64 end record
        records.extend_from_slice(&zip64_end_offset.to_le_bytes());
        records.extend_from_slice(&1u32.to_le_bytes()); // total disks
    }
    let count_field = if count_zip64 {
        u16::MAX
    } else {
        u16::try_from(entry_count).expect("counts below the ZIP64 threshold fit u16")
    };
    let size_field = marker_or_u32(size_zip64, central_directory_size);
    let offset_field = marker_or_u32(offset_zip64, central_directory_offset);
    records.extend_from_slice(&END_OF_CENTRAL_DIRECTORY.to_le_bytes());
    records.extend_from_slice(&0u16.to_le_bytes()); // this disk
    records.extend_from_slice(&0u16.to_le_bytes()); // disk with the central directory
    records.extend_from_slice(&count_field.to_le_bytes());
    records.extend_from_slice(&count_field.to_le_bytes());
    records.extend_from_slice(&size_field.to_le_bytes());
    records.extend_from_slice(&offset_field.to_le_bytes());
    records.extend_from_slice(&0u16.to_le_bytes()); // comment length
    records
}

fn marker_or_u32(overflows: bool, value: u64) -> u32 {
    if overflows {
        u32::MAX
    } else {
        u32::try_from(value).expect("values below the ZIP64 threshold fit u32")
    }
}

fn version_needed(entry: &Entry, zip64: Zip64Threshold) -> u16 {
    if zip64.entry_needs_zip64(entry) {
        VERSION_NEEDED_ZIP64
    } else {
        VERSION_NEEDED_DEFAULT
    }
}

fn flags(entry: &Entry) -> u16 {
    if entry.is_dir {
        // A directory has no data, so its zero CRC and sizes are already final.
        FLAG_UTF8_NAMES
    } else {
        FLAG_UTF8_NAMES | FLAG_DATA_DESCRIPTOR
    }
}

/// Names are checked against `u16::MAX` when scanning; extra fields are at most 25 bytes.
fn field_len(len: usize) -> u16 {
    u16::try_from(len).expect("name and extra field lengths are checked when scanning")
}

fn push_extra_header(extra: &mut Vec<u8>, id: u16, len: u16) {
    extra.extend_from_slice(&id.to_le_bytes());
    extra.extend_from_slice(&len.to_le_bytes());
}

/// The extended timestamp holds a signed 32-bit count of seconds, read as unsigned by some
/// tools; it is written only between 1970 and 2038, where both readings agree. The MS-DOS time
/// still carries the date outside that range.
fn push_extended_timestamp(extra: &mut Vec<u8>, modified: SystemTime) {
    let Ok(seconds) = u32::try_from(unix_seconds(modified)) else {
        return;
    };
    if seconds > i32::MAX as u32 {
        return;
    }
    push_extra_header(extra, EXTRA_EXTENDED_TIMESTAMP, 5);
    extra.push(EXTENDED_TIMESTAMP_MODIFIED);
    extra.extend_from_slice(&seconds.to_le_bytes());
}

/// Whole seconds since 1970, rounded down (also before 1970).
pub(super) fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let seconds = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            let partial = i64::from(before.subsec_nanos() > 0);
            (-seconds).saturating_sub(partial)
        }
    }
}

/// The MS-DOS (date, time) of `modified`, in UTC rather than the local zone so the bytes do not
/// depend on where the archive is made. MS-DOS time counts two-second steps from 1980 to 2107;
/// times outside that range are clamped to its ends.
pub(super) fn dos_date_time(modified: SystemTime) -> (u16, u16) {
    const EARLIEST: (u16, u16) = ((1 << 5) | 1, 0); // 1980-01-01 00:00:00
    const LATEST: (u16, u16) = ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29);
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(unix_seconds(modified)) else {
        return if unix_seconds(modified) < 0 {
            EARLIEST
        } else {
            LATEST
        };
    };
    let years_since_1980 = match u16::try_from(at.year() - 1980) {
        Ok(years) if years <= 127 => years,
        Ok(_) => return LATEST,
        Err(_) => return EARLIEST,
    };
    let date =
        (years_since_1980 << 9) | (u16::from(u8::from(at.month())) << 5) | u16::from(at.day());
    let time =
        (u16::from(at.hour()) << 11) | (u16::from(at.minute()) << 5) | u16::from(at.second() / 2);
    (date, time)
}
