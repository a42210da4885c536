// One ZIP archive of several files or a folder, for the web send page, in the format the CLI
// writes (crates/cli/src/client/archive/format.rs), so `once get --extract` and any unzip read
// both the same way.
//
// Why this format:
// - Stored, not deflated: the archive's exact size follows from names and file sizes alone, so
//   the share can be created (and its parts numbered) before a byte is sent, and any byte range
//   is a plain copy of headers and file bytes. Deflate would give neither, and most of what
//   people send (photos, video, archives) does not shrink anyway.
// - Data descriptors (flag bit 3), CRC-32 and sizes after each file's data: the layout is the
//   CLI's, byte for byte for the same names, sizes, times and modes, so there is one format to
//   read and test. The CLI needs them because it streams and learns a CRC only after the data.
// - CRC first: the browser uploads parts out of order, three at a time, retries them and
//   resumes by sending only some again, so every part must be made on its own. The central
//   directory at the end holds every file's CRC-32, and the part that carries it may go first.
//   One sequential read of every file before the upload (`planArchive`) gets them all; after
//   that `read(start, end)` makes any range from headers and `blob.slice()`, in memory
//   proportional to the range.
// - ZIP64 only where a size, offset or entry count no longer fits its 32- or 16-bit field;
//   UTF-8 names (bit 11); Info-ZIP extended timestamps for the exact mtime; Unix modes 0644 and
//   0755, since a browser does not know the real ones.

const ZIP64_THRESHOLD = 0xffff_ffff;
const ENTRY_COUNT_LIMIT = 0xffff;
const LONGEST_NAME = 0xffff;
/** The listing kept with the share is cut to this many entries, as the CLI does. */
const LISTED_ENTRIES = 300;
/** How much of a file is read at once, when computing CRCs and when making a range. */
const CHUNK_BYTES = 4 * 1024 * 1024;

const LOCAL_FILE_HEADER = 0x0403_4b50;
const DATA_DESCRIPTOR = 0x0807_4b50;
const CENTRAL_DIRECTORY_HEADER = 0x0201_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY = 0x0606_4b50;
const ZIP64_END_LOCATOR = 0x0706_4b50;
const END_OF_CENTRAL_DIRECTORY = 0x0605_4b50;

const FLAG_DATA_DESCRIPTOR = 1 << 3;
const FLAG_UTF8_NAMES = 1 << 11;
const METHOD_STORED = 0;
const VERSION_NEEDED_DEFAULT = 20;
const VERSION_NEEDED_ZIP64 = 45;
/** Upper byte 3: Unix, so readers take the mode from the external attributes. */
const VERSION_MADE_BY = (3 << 8) | VERSION_NEEDED_ZIP64;
const EXTRA_ZIP64 = 0x0001;
const EXTRA_EXTENDED_TIMESTAMP = 0x5455;
const EXTENDED_TIMESTAMP_MODIFIED = 1;
/** MS-DOS "directory" attribute, for readers that ignore the Unix mode. */
const DOS_DIRECTORY = 0x10;
const FILE_MODE = 0o100644;
const DIRECTORY_MODE = 0o040755;

const LOCAL_HEADER_FIXED_LEN = 30;
const CENTRAL_HEADER_FIXED_LEN = 46;
const ZIP64_END_RECORD_LEN = 56;
const ZIP64_END_LOCATOR_LEN = 20;
const END_RECORD_LEN = 22;

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE, as ZIP and zlib use it), sixteen bytes a step ("slicing by 16"): table k holds
// the CRC of a byte followed by k zero bytes, so sixteen lookups advance the CRC sixteen bytes.

const CRC_TABLES = (() => {
  const tables = new Int32Array(16 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb8_8320 : crc >>> 1;
    tables[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    for (let table = 1; table < 16; table++) {
      const previous = tables[(table - 1) * 256 + byte];
      tables[table * 256 + byte] = (previous >>> 8) ^ tables[previous & 0xff];
    }
  }
  return tables;
})();

/**
 * The CRC-32 of `bytes` (a Uint8Array), continuing from `previous` (the CRC-32 of the bytes
 * before them, 0 at the start).
 */
export function crc32(bytes, previous = 0) {
  const t = CRC_TABLES;
  const length = bytes.length;
  // A DataView reads little-endian words whatever the platform and the alignment, and V8
  // makes it the fastest of the ways tried (about twice the speed of one byte a step).
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let crc = ~previous;
  let index = 0;
  for (const stop = length - 15; index < stop; index += 16) {
    const a = crc ^ view.getInt32(index, true);
    const b = view.getInt32(index + 4, true);
    const c = view.getInt32(index + 8, true);
    const d = view.getInt32(index + 12, true);
    crc =
      t[0xf00 | (a & 0xff)] ^ t[0xe00 | ((a >>> 8) & 0xff)] ^
      t[0xd00 | ((a >>> 16) & 0xff)] ^ t[0xc00 | (a >>> 24)] ^
      t[0xb00 | (b & 0xff)] ^ t[0xa00 | ((b >>> 8) & 0xff)] ^
      t[0x900 | ((b >>> 16) & 0xff)] ^ t[0x800 | (b >>> 24)] ^
      t[0x700 | (c & 0xff)] ^ t[0x600 | ((c >>> 8) & 0xff)] ^
      t[0x500 | ((c >>> 16) & 0xff)] ^ t[0x400 | (c >>> 24)] ^
      t[0x300 | (d & 0xff)] ^ t[0x200 | ((d >>> 8) & 0xff)] ^
      t[0x100 | ((d >>> 16) & 0xff)] ^ t[d >>> 24];
  }
  for (; index < length; index++) crc = (crc >>> 8) ^ t[(crc ^ bytes[index]) & 0xff];
  return ~crc >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Checking and ordering the entries.

const utf8 = new TextEncoder();

/** Why `path` cannot be a name in the archive, or null if it can. */
function pathProblem(path) {
  if (path === '' || path === '/') return 'is empty';
  if (path.includes('\0')) return 'holds a NUL character';
  if (path.includes('\\')) {
    return 'holds a backslash, which unpacks as a folder separator on Windows; rename it';
  }
  if (path.startsWith('/')) {
    return 'is absolute; paths in an archive are relative, like "folder/file.txt"';
  }
  if (/^[A-Za-z]:/.test(path)) {
    return 'starts with a drive letter; paths in an archive are relative';
  }
  const parts = (path.endsWith('/') ? path.slice(0, -1) : path).split('/');
  if (parts.includes('..')) {
    return 'has a ".." segment, which would unpack outside the target folder';
  }
  if (parts.some((part) => part === '' || part === '.')) {
    return 'has an empty or "." segment (a doubled or leading "/", or "./")';
  }
  if (!isWellFormedUnicode(path)) return 'is not valid Unicode (it holds a lone surrogate)';
  return null;
}

function isWellFormedUnicode(text) {
  if (typeof text.isWellFormed === 'function') return text.isWellFormed();
  return !/\p{Surrogate}/u.test(text);
}

/** Unix seconds (rounded down, also before 1970) of a Date or a number of milliseconds. */
function modifiedSeconds(modified, path) {
  const milliseconds = modified instanceof Date ? modified.getTime() : modified;
  if (typeof milliseconds !== 'number' || !Number.isFinite(milliseconds)) {
    throw new Error(
      `"${path}" has no valid modification time (give a Date or milliseconds since 1970)`,
    );
  }
  return Math.floor(milliseconds / 1000);
}

/** The entry as the layout needs it, or an Error saying what is wrong with it. */
function checkedEntry(entry, index) {
  if (entry === null || typeof entry !== 'object') {
    throw new Error(`entry ${index} is not an object like { path, blob, modified }`);
  }
  const { path, blob } = entry;
  if (typeof path !== 'string') throw new Error(`entry ${index} has no path`);
  const problem = pathProblem(path);
  if (problem) throw new Error(`"${path}" cannot go into the archive: it ${problem}`);
  const isDir = blob === null || blob === undefined;
  if (isDir && !path.endsWith('/')) {
    throw new Error(
      `"${path}" has no file (blob is null) but is not a directory path ending in "/"`,
    );
  }
  if (!isDir && path.endsWith('/')) {
    throw new Error(`"${path}" ends in "/", so it is a directory, but it has a file (blob)`);
  }
  if (!isDir && !(blob instanceof Blob)) {
    throw new Error(`"${path}" has a blob that is not a Blob or File`);
  }
  const name = utf8.encode(path);
  if (name.length > LONGEST_NAME) {
    throw new Error(
      `"${path}" is ${name.length} bytes long in UTF-8, more than ZIP allows (${LONGEST_NAME})`,
    );
  }
  return {
    path,
    name,
    blob: isDir ? null : blob,
    isDir,
    size: isDir ? 0 : blob.size,
    seconds: modifiedSeconds(entry.modified, path),
    crc: 0,
    headerOffset: 0,
    localHeaderLength: 0,
    centralOffset: 0,
    centralHeaderLength: 0,
  };
}

/**
 * Component by component, on UTF-8 bytes, as the CLI sorts: `a/` and everything in it come
 * before `a.txt`. Comparing bytes with "/" counted below every other byte is the same order.
 */
function archiveOrder(a, b) {
  const aLength = a.name.length - (a.isDir ? 1 : 0);
  const bLength = b.name.length - (b.isDir ? 1 : 0);
  const common = Math.min(aLength, bLength);
  for (let index = 0; index < common; index++) {
    const aByte = a.name[index] === 0x2f ? -1 : a.name[index];
    const bByte = b.name[index] === 0x2f ? -1 : b.name[index];
    if (aByte !== bByte) return aByte - bByte;
  }
  return aLength - bLength;
}

/** True when `inner` lies below `outer` (a file, here) in the tree of names. */
function isBelow(inner, outer) {
  const length = outer.name.length;
  if (inner.name.length <= length || inner.name[length] !== 0x2f) return false;
  for (let index = 0; index < length; index++) {
    if (inner.name[index] !== outer.name[index]) return false;
  }
  return true;
}

/** The entries, checked and in archive order; throws on the first one that cannot go in. */
function orderedEntries(entries) {
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new Error('nothing to archive: no files or directories were given');
  }
  const ordered = entries.map(checkedEntry).sort(archiveOrder);
  for (let index = 1; index < ordered.length; index++) {
    const before = ordered[index - 1];
    const entry = ordered[index];
    if (archiveOrder(before, entry) === 0) {
      const both = entry.path.replace(/\/$/, '');
      throw new Error(
        before.path === entry.path
          ? `"${entry.path}" is given twice; each path goes into the archive once`
          : `"${before.path}" and "${entry.path}" would both be "${both}" in the archive`,
      );
    }
    // Sorted, whatever lies below a name comes right after it.
    if (!before.isDir && isBelow(entry, before)) {
      throw new Error(
        `"${entry.path}" lies below "${before.path}", which is a file, not a directory`,
      );
    }
  }
  return ordered;
}

// ---------------------------------------------------------------------------------------------
// The records. Every function here is pure: the same entry, offset and CRC give the same bytes.

/** Little-endian fields into a buffer of the exact length, checked at the end. */
class RecordWriter {
  constructor(length) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
    this.at = 0;
  }

  u8(value) {
    this.view.setUint8(this.at, value);
    this.at += 1;
  }

  u16(value) {
    this.view.setUint16(this.at, value, true);
    this.at += 2;
  }

  u32(value) {
    this.view.setUint32(this.at, value, true);
    this.at += 4;
  }

  u64(value) {
    this.view.setBigUint64(this.at, BigInt(value), true);
    this.at += 8;
  }

  raw(bytes) {
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
  }

  done() {
    if (this.at !== this.bytes.length) {
      throw new Error('zip.js: a record came out the wrong length');
    }
    return this.bytes;
  }
}

function sizesNeedZip64(entry, threshold) {
  return entry.size >= threshold;
}

function entryNeedsZip64(entry, threshold) {
  return sizesNeedZip64(entry, threshold) || entry.headerOffset >= threshold;
}

function versionNeeded(entry, threshold) {
  return entryNeedsZip64(entry, threshold) ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED_DEFAULT;
}

function flags(entry) {
  // A directory has no data, so its zero CRC and sizes are already final.
  return entry.isDir ? FLAG_UTF8_NAMES : FLAG_UTF8_NAMES | FLAG_DATA_DESCRIPTOR;
}

/**
 * The extended timestamp holds a signed 32-bit count of seconds, read as unsigned by some
 * tools; it is written only between 1970 and 2038, where both readings agree. The MS-DOS time
 * still carries the date outside that range.
 */
function hasExtendedTimestamp(entry) {
  return entry.seconds >= 0 && entry.seconds <= 0x7fff_ffff;
}

function writeExtendedTimestamp(writer, entry) {
  if (!hasExtendedTimestamp(entry)) return;
  writer.u16(EXTRA_EXTENDED_TIMESTAMP);
  writer.u16(5);
  writer.u8(EXTENDED_TIMESTAMP_MODIFIED);
  writer.u32(entry.seconds);
}

const EARLIEST_DOS_TIME = { date: (1 << 5) | 1, time: 0 }; // 1980-01-01 00:00:00
const LATEST_DOS_TIME = { date: (127 << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29 };

/**
 * The MS-DOS date and time, in UTC rather than the local zone so the bytes do not depend on
 * where the archive is made. MS-DOS time counts two-second steps from 1980 to 2107; times
 * outside that range are clamped to its ends.
 */
function dosDateTime(seconds) {
  const at = new Date(seconds * 1000);
  if (Number.isNaN(at.getTime())) return seconds < 0 ? EARLIEST_DOS_TIME : LATEST_DOS_TIME;
  const years = at.getUTCFullYear() - 1980;
  if (years < 0) return EARLIEST_DOS_TIME;
  if (years > 127) return LATEST_DOS_TIME;
  return {
    date: (years << 9) | ((at.getUTCMonth() + 1) << 5) | at.getUTCDate(),
    time: (at.getUTCHours() << 11) | (at.getUTCMinutes() << 5) | (at.getUTCSeconds() >> 1),
  };
}

function localHeaderLength(entry, threshold) {
  return (
    LOCAL_HEADER_FIXED_LEN +
    entry.name.length +
    (sizesNeedZip64(entry, threshold) ? 20 : 0) +
    (hasExtendedTimestamp(entry) ? 9 : 0)
  );
}

/** The run of fields local and central headers have in common, after their first ones. */
function writeSharedFields(writer, entry, threshold) {
  const { date, time } = dosDateTime(entry.seconds);
  writer.u16(versionNeeded(entry, threshold));
  writer.u16(flags(entry));
  writer.u16(METHOD_STORED);
  writer.u16(time);
  writer.u16(date);
}

/** The header before an entry's data; CRC-32 and sizes are zero for files (bit 3). */
function localHeader(entry, threshold) {
  const sizesZip64 = sizesNeedZip64(entry, threshold);
  const length = localHeaderLength(entry, threshold);
  const extraLength = length - LOCAL_HEADER_FIXED_LEN - entry.name.length;
  const writer = new RecordWriter(length);
  writer.u32(LOCAL_FILE_HEADER);
  writeSharedFields(writer, entry, threshold);
  writer.u32(0);
  writer.u32(sizesZip64 ? ZIP64_THRESHOLD : 0);
  writer.u32(sizesZip64 ? ZIP64_THRESHOLD : 0);
  writer.u16(entry.name.length);
  writer.u16(extraLength);
  writer.raw(entry.name);
  if (sizesZip64) {
    // Both sizes, as zeros: the real ones are in the data descriptor.
    writer.u16(EXTRA_ZIP64);
    writer.u16(16);
    writer.u64(0);
    writer.u64(0);
  }
  writeExtendedTimestamp(writer, entry);
  return writer.done();
}

/** Sizes are 8 bytes each exactly when the local header carried a ZIP64 field. */
function dataDescriptorLength(entry, threshold) {
  if (entry.isDir) return 0;
  return sizesNeedZip64(entry, threshold) ? 24 : 16;
}

function dataDescriptor(entry, threshold) {
  const writer = new RecordWriter(dataDescriptorLength(entry, threshold));
  if (entry.isDir) return writer.done();
  writer.u32(DATA_DESCRIPTOR);
  writer.u32(entry.crc);
  if (sizesNeedZip64(entry, threshold)) {
    writer.u64(entry.size);
    writer.u64(entry.size);
  } else {
    writer.u32(entry.size);
    writer.u32(entry.size);
  }
  return writer.done();
}

function centralZip64Length(entry, threshold) {
  const sizes = sizesNeedZip64(entry, threshold) ? 16 : 0;
  const offset = entry.headerOffset >= threshold ? 8 : 0;
  return sizes + offset;
}

function centralHeaderLength(entry, threshold) {
  const zip64Length = centralZip64Length(entry, threshold);
  return (
    CENTRAL_HEADER_FIXED_LEN +
    entry.name.length +
    (zip64Length > 0 ? 4 + zip64Length : 0) +
    (hasExtendedTimestamp(entry) ? 9 : 0)
  );
}

/** An entry's record in the central directory. */
function centralHeader(entry, threshold) {
  const sizesZip64 = sizesNeedZip64(entry, threshold);
  const offsetZip64 = entry.headerOffset >= threshold;
  const zip64Length = centralZip64Length(entry, threshold);
  const length = centralHeaderLength(entry, threshold);
  const mode = entry.isDir ? DIRECTORY_MODE : FILE_MODE;
  const writer = new RecordWriter(length);
  writer.u32(CENTRAL_DIRECTORY_HEADER);
  writer.u16(VERSION_MADE_BY);
  writeSharedFields(writer, entry, threshold);
  writer.u32(entry.crc);
  writer.u32(sizesZip64 ? ZIP64_THRESHOLD : entry.size);
  writer.u32(sizesZip64 ? ZIP64_THRESHOLD : entry.size);
  writer.u16(entry.name.length);
  writer.u16(length - CENTRAL_HEADER_FIXED_LEN - entry.name.length);
  writer.u16(0); // comment length
  writer.u16(0); // disk number start
  writer.u16(0); // internal attributes
  writer.u32(mode * 0x1_0000 + (entry.isDir ? DOS_DIRECTORY : 0));
  writer.u32(offsetZip64 ? ZIP64_THRESHOLD : entry.headerOffset);
  writer.raw(entry.name);
  if (zip64Length > 0) {
    // Only the fields whose 32-bit header field holds the marker, in this order.
    writer.u16(EXTRA_ZIP64);
    writer.u16(zip64Length);
    if (sizesZip64) {
      writer.u64(entry.size);
      writer.u64(entry.size);
    }
    if (offsetZip64) writer.u64(entry.headerOffset);
  }
  writeExtendedTimestamp(writer, entry);
  return writer.done();
}

/**
 * The records after the central directory: the ZIP64 end record and its locator when a count,
 * size or offset overflows its field, then the classic end record with markers where needed.
 */
function endRecords(threshold, entryCount, directoryOffset, directorySize) {
  const countZip64 = entryCount >= Math.min(threshold, ENTRY_COUNT_LIMIT);
  const sizeZip64 = directorySize >= threshold;
  const offsetZip64 = directoryOffset >= threshold;
  const zip64 = countZip64 || sizeZip64 || offsetZip64;
  const writer = new RecordWriter(
    (zip64 ? ZIP64_END_RECORD_LEN + ZIP64_END_LOCATOR_LEN : 0) + END_RECORD_LEN,
  );
  if (zip64) {
    writer.u32(ZIP64_END_OF_CENTRAL_DIRECTORY);
    // The record's size, not counting the signature and this field.
    writer.u64(ZIP64_END_RECORD_LEN - 12);
    writer.u16(VERSION_MADE_BY);
    writer.u16(VERSION_NEEDED_ZIP64);
    writer.u32(0); // this disk
    writer.u32(0); // disk with the central directory
    writer.u64(entryCount); // entries on this disk
    writer.u64(entryCount);
    writer.u64(directorySize);
    writer.u64(directoryOffset);

    writer.u32(ZIP64_END_LOCATOR);
    writer.u32(0); // disk with the ZIP64 end record
    writer.u64(directoryOffset + directorySize);
    writer.u32(1); // total disks
  }
  writer.u32(END_OF_CENTRAL_DIRECTORY);
  writer.u16(0); // this disk
  writer.u16(0); // disk with the central directory
  writer.u16(countZip64 ? ENTRY_COUNT_LIMIT : entryCount);
  writer.u16(countZip64 ? ENTRY_COUNT_LIMIT : entryCount);
  writer.u32(sizeZip64 ? ZIP64_THRESHOLD : directorySize);
  writer.u32(offsetZip64 ? ZIP64_THRESHOLD : directoryOffset);
  writer.u16(0); // comment length
  return writer.done();
}

// ---------------------------------------------------------------------------------------------
// Reading files.

function unreadable(entry, error) {
  const reason = error && error.message ? error.message : String(error);
  return new Error(
    `cannot read "${entry.path}" (${reason}); was it changed, moved or deleted after it was ` +
      'chosen? Choose it again to send it',
    { cause: error },
  );
}

/** Bytes [start, end) of an entry's file, or an Error naming the file. */
async function readFileRange(entry, start, end) {
  let bytes;
  try {
    bytes = new Uint8Array(await entry.blob.slice(start, end).arrayBuffer());
  } catch (error) {
    throw unreadable(entry, error);
  }
  if (bytes.length !== end - start) {
    const short = `got ${bytes.length} bytes where ${end - start} were expected`;
    throw unreadable(entry, new Error(short));
  }
  return bytes;
}

/**
 * Reads the entry's file once, in order, into its CRC-32. The next chunk is asked for before
 * the current one is summed, so reading and summing overlap.
 */
async function computeCrc(entry, signal, onBytes) {
  let crc = 0;
  let offset = 0;
  const request = (from) => readFileRange(entry, from, Math.min(from + CHUNK_BYTES, entry.size));
  let pending = entry.size > 0 ? request(0) : null;
  try {
    while (pending) {
      const chunk = await pending;
      offset += chunk.length;
      pending = offset < entry.size ? request(offset) : null;
      crc = crc32(chunk, crc);
      onBytes(chunk.length);
      signal?.throwIfAborted();
    }
  } catch (error) {
    // Nobody will wait for it now; its failure must not surface as an unhandled rejection.
    pending?.catch(() => {});
    throw error;
  }
  return crc;
}

// ---------------------------------------------------------------------------------------------
// The plan.

/** The index of the last entry whose `key` is at most `offset` (entries sorted by it). */
function lastEntryAtOrBefore(entries, key, offset) {
  let low = 0;
  let high = entries.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if (entries[middle][key] <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** The bytes [start, stop) of the archive being filled in, `at` the first one not yet there. */
class RangeBuffer {
  constructor(start, stop) {
    this.bytes = new Uint8Array(stop - start);
    this.start = start;
    this.stop = stop;
    this.at = start;
  }

  get full() {
    return this.at >= this.stop;
  }

  /** Copies in what falls in the range of the record at `offset` (made by `build` if so). */
  record(offset, length, build) {
    const recordEnd = offset + length;
    if (this.full || this.at >= recordEnd || length === 0) return;
    const from = this.at - offset;
    const count = Math.min(recordEnd, this.stop) - this.at;
    this.bytes.set(build().subarray(from, from + count), this.at - this.start);
    this.at += count;
  }

  /** Copies in what falls in the range of the entry's file data, at `offset`. */
  async fileData(entry, offset) {
    const dataEnd = offset + entry.size;
    while (!this.full && this.at < dataEnd) {
      const count = Math.min(this.stop, dataEnd, this.at + CHUNK_BYTES) - this.at;
      const from = this.at - offset;
      this.bytes.set(await readFileRange(entry, from, from + count), this.at - this.start);
      this.at += count;
    }
  }
}

/** The `contents` of NewShare: `api::ArchiveContents`, as the CLI fills it. */
function listing(entries) {
  return {
    entries: entries.length,
    total_size: entries.reduce((total, entry) => total + entry.size, 0),
    listing: entries
      .slice(0, LISTED_ENTRIES)
      .map((entry) => ({ path: entry.path, size: entry.size })),
    truncated: entries.length > LISTED_ENTRIES,
  };
}

/**
 * Plans one ZIP archive of `entries` and reads every file once, in order, for its CRC-32.
 *
 * `entries`: `{ path, blob, modified }` each; `path` is `/`-separated and relative, directories
 * end in `/` and have `blob: null`; `modified` is a Date or milliseconds since 1970 (whole
 * seconds are kept). Entries are put in the CLI's order (by path, component by component), so
 * the same files give the same archive whatever order they come in.
 *
 * Refused with an Error naming the path: duplicate paths (`a` and `a/` count as the same), a
 * path below a file, absolute paths, `..`, `.` or empty segments, backslashes, NUL, drive
 * letters, names over 65,535 UTF-8 bytes, and a file that cannot be read.
 *
 * Options: `onProgress(bytesDone, bytesTotal)` during the CRC pass; `signal`, an AbortSignal
 * that stops it; `zip64Threshold`, for tests only: sizes, offsets and counts from this value up
 * get ZIP64 records (normally 0xFFFFFFFF, where 32-bit fields run out).
 *
 * Returns `{ size, contents, read }`: the archive's exact length in bytes, the listing for
 * NewShare's `contents`, and `read(start, end)`, which resolves to a Uint8Array of the archive's
 * bytes [start, end), for any range in any order, as often as asked, holding no more than the
 * range and one 4 MiB piece of a file at a time.
 */
export async function planArchive(
  entries,
  { onProgress, signal, zip64Threshold = ZIP64_THRESHOLD } = {},
) {
  const threshold = zip64Threshold;
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > ZIP64_THRESHOLD) {
    throw new RangeError(`zip64Threshold must be an integer from 1 to ${ZIP64_THRESHOLD}`);
  }
  const ordered = orderedEntries(entries);

  let offset = 0;
  for (const entry of ordered) {
    entry.headerOffset = offset;
    entry.localHeaderLength = localHeaderLength(entry, threshold);
    offset += entry.localHeaderLength + entry.size + dataDescriptorLength(entry, threshold);
  }
  const directoryOffset = offset;
  for (const entry of ordered) {
    entry.centralOffset = offset;
    entry.centralHeaderLength = centralHeaderLength(entry, threshold);
    offset += entry.centralHeaderLength;
  }
  const directorySize = offset - directoryOffset;
  const endOffset = offset;
  const end = endRecords(threshold, ordered.length, directoryOffset, directorySize);
  const size = endOffset + end.length;
  if (size > Number.MAX_SAFE_INTEGER) throw new Error('the archive would be too large');

  const bytesTotal = ordered.reduce((total, entry) => total + entry.size, 0);
  let bytesDone = 0;
  signal?.throwIfAborted();
  onProgress?.(0, bytesTotal);
  for (const entry of ordered) {
    if (entry.isDir) continue;
    entry.crc = await computeCrc(entry, signal, (count) => {
      bytesDone += count;
      onProgress?.(bytesDone, bytesTotal);
    });
  }

  async function read(start, stop) {
    const valid = Number.isSafeInteger(start) && Number.isSafeInteger(stop);
    if (!valid || start < 0 || start > stop || stop > size) {
      throw new RangeError(`cannot read [${start}, ${stop}) of an archive of ${size} bytes`);
    }
    const range = new RangeBuffer(start, stop);
    if (range.at < directoryOffset) {
      const first = lastEntryAtOrBefore(ordered, 'headerOffset', range.at);
      for (let index = first; index < ordered.length && !range.full; index++) {
        const entry = ordered[index];
        const dataOffset = entry.headerOffset + entry.localHeaderLength;
        range.record(entry.headerOffset, entry.localHeaderLength, () =>
          localHeader(entry, threshold),
        );
        await range.fileData(entry, dataOffset);
        range.record(dataOffset + entry.size, dataDescriptorLength(entry, threshold), () =>
          dataDescriptor(entry, threshold),
        );
      }
    }
    if (range.at < endOffset && !range.full) {
      const first = lastEntryAtOrBefore(ordered, 'centralOffset', range.at);
      for (let index = first; index < ordered.length && !range.full; index++) {
        const entry = ordered[index];
        range.record(entry.centralOffset, entry.centralHeaderLength, () =>
          centralHeader(entry, threshold),
        );
      }
    }
    range.record(endOffset, end.length, () => end);
    if (!range.full) throw new Error('zip.js: a range came out short');
    return range.bytes;
  }

  return Object.freeze({ size, contents: listing(ordered), read });
}
