// The web send page's archive writer (crates/server/src/http/web/assets/zip.js), run in Node: each
// archive is written by reading it in ranges of odd sizes in a shuffled order, as the page's
// parallel, retried part uploads do, then read back by Python's zipfile, by `unzip -t` and by
// a walk over its local records here.
//
//   node --test zip.test.mjs
//
// Needs python3; `unzip -t` is skipped (and the skip reported) when unzip is not installed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { crc32, planArchive } from '../../crates/server/src/http/web/assets/zip.js';

const MiB = 1024 * 1024;
const NON_ASCII_NAME = 'Résumé – 報告 ✓.txt';
const UNZIP_MISSING = spawnSync('unzip', ['-v']).error !== undefined;

// Python's view of an archive, as JSON. testzip() reads every entry and checks its CRC-32.
const PYTHON_VIEW = String.raw`
import hashlib, json, struct, sys, zipfile
archive = zipfile.ZipFile(sys.argv[1])
bad = archive.testzip()
assert bad is None, 'testzip found a bad entry: %r' % bad

def extended_mtime(extra):
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from('<HH', extra, at)
        if kind == 0x5455 and length >= 5 and extra[at + 4] & 1:
            return struct.unpack_from('<I', extra, at + 5)[0]
        at += 4 + length
    return None

entries = []
for info in archive.infolist():
    data = archive.read(info)
    entries.append({
        'name': info.filename,
        'is_dir': info.is_dir(),
        'size': info.file_size,
        'compressed_size': info.compress_size,
        'method': info.compress_type,
        'crc': info.CRC,
        'sha256': hashlib.sha256(data).hexdigest(),
        'date_time': list(info.date_time),
        'mtime': extended_mtime(info.extra),
        'mode': info.external_attr >> 16,
        'header_offset': info.header_offset,
        'flags': info.flag_bits,
        'extract_version': info.extract_version,
    })
print(json.dumps({'start_dir': archive.start_dir, 'entries': entries}))
`;

let work;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'once-zipjs-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A small seeded generator, so a failing shuffle can be replayed. */
function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Writes the plan's archive to `file` by reading ranges of `chunkSize` bytes in a shuffled
 * order, each written at its own offset: no read sees what another produced.
 */
async function writeShuffled(plan, file, chunkSize, seed = chunkSize) {
  const ranges = [];
  for (let start = 0; start < plan.size; start += chunkSize) {
    ranges.push([start, Math.min(start + chunkSize, plan.size)]);
  }
  const random = seededRandom(seed);
  for (let index = ranges.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [ranges[index], ranges[other]] = [ranges[other], ranges[index]];
  }
  const handle = await open(file, 'w');
  try {
    for (const [start, end] of ranges) {
      const bytes = await plan.read(start, end);
      assert.ok(bytes instanceof Uint8Array);
      assert.equal(bytes.length, end - start, `read(${start}, ${end})`);
      await handle.write(bytes, 0, bytes.length, start);
    }
  } finally {
    await handle.close();
  }
  const written = await readFile(file);
  assert.equal(written.length, plan.size, 'the archive is exactly plan.size bytes');
  return written;
}

function pythonView(file) {
  const output = execFileSync('python3', ['-c', PYTHON_VIEW, file], {
    encoding: 'utf8',
    maxBuffer: 256 * MiB,
  });
  return JSON.parse(output);
}

/** The MS-DOS date and time Python reports for a modification time, as the writer puts it (UTC). */
function expectedDateTime(milliseconds) {
  const seconds = Math.floor(milliseconds / 1000);
  const at = new Date(seconds * 1000);
  const year = at.getUTCFullYear();
  if (year < 1980) return [1980, 1, 1, 0, 0, 0];
  if (year > 2107) return [2107, 12, 31, 23, 59, 58];
  return [
    year,
    at.getUTCMonth() + 1,
    at.getUTCDate(),
    at.getUTCHours(),
    at.getUTCMinutes(),
    at.getUTCSeconds() & ~1,
  ];
}

/**
 * Walks the local records from the start, as a streaming reader would: each local header
 * names its entry, carries zeros where the data descriptor holds the CRC and sizes, and each
 * entry (header, data, descriptor) ends where the next begins, the last one at the central
 * directory.
 */
function checkLocalRecords(archive, view) {
  const data = new DataView(archive.buffer, archive.byteOffset, archive.byteLength);
  let at = 0;
  for (const entry of view.entries) {
    assert.equal(entry.header_offset, at, `${entry.name} starts where the previous entry ends`);
    assert.equal(data.getUint32(at, true), 0x04034b50, `${entry.name}: local header signature`);
    const flags = data.getUint16(at + 6, true);
    assert.equal(flags, entry.flags, `${entry.name}: local and central flags agree`);
    assert.equal(data.getUint16(at + 8, true), 0, `${entry.name}: stored`);
    assert.equal(data.getUint32(at + 14, true), 0, `${entry.name}: no CRC in the local header`);
    const nameLength = data.getUint16(at + 26, true);
    const extraLength = data.getUint16(at + 28, true);
    const name = Buffer.from(archive.subarray(at + 30, at + 30 + nameLength)).toString('utf8');
    assert.equal(name, entry.name, 'local and central names agree');
    const localZip64 = data.getUint32(at + 22, true) === 0xffffffff;
    at += 30 + nameLength + extraLength + entry.size;
    if (entry.is_dir) {
      assert.equal(flags & 8, 0, `${entry.name}: a directory has no data descriptor`);
      continue;
    }
    assert.equal(flags & 8, 8, `${entry.name}: a file has a data descriptor`);
    assert.equal(data.getUint32(at, true), 0x08074b50, `${entry.name}: descriptor signature`);
    assert.equal(data.getUint32(at + 4, true), entry.crc, `${entry.name}: descriptor CRC-32`);
    if (localZip64) {
      assert.equal(Number(data.getBigUint64(at + 8, true)), entry.size, `${entry.name}: size`);
      assert.equal(Number(data.getBigUint64(at + 16, true)), entry.size, `${entry.name}: size`);
      at += 24;
    } else {
      assert.equal(data.getUint32(at + 8, true), entry.size, `${entry.name}: descriptor size`);
      assert.equal(data.getUint32(at + 12, true), entry.size, `${entry.name}: descriptor size`);
      at += 16;
    }
  }
  assert.equal(at, view.start_dir, 'the central directory follows the last entry');
}

/**
 * Everything a reader sees in the archive matches what went in: names in archive order,
 * bytes, times (DOS in UTC, and the exact second in the extended timestamp), modes.
 */
function checkArchive(archive, view, expected) {
  assert.deepEqual(
    view.entries.map((entry) => entry.name),
    expected.map((entry) => entry.path),
  );
  for (const [index, entry] of view.entries.entries()) {
    const want = expected[index];
    const isDir = want.bytes === null;
    assert.equal(entry.is_dir, isDir, entry.name);
    assert.equal(entry.method, 0, `${entry.name} is stored`);
    assert.equal(entry.size, isDir ? 0 : want.bytes.length, entry.name);
    assert.equal(entry.compressed_size, entry.size, entry.name);
    assert.equal(entry.sha256, sha256(isDir ? new Uint8Array(0) : want.bytes), entry.name);
    assert.equal(entry.mode, isDir ? 0o040755 : 0o100644, entry.name);
    assert.equal(entry.flags & 0x800, 0x800, `${entry.name}: UTF-8 name flag`);
    assert.deepEqual(entry.date_time, expectedDateTime(want.modified), entry.name);
    const seconds = Math.floor(want.modified / 1000);
    const exact = seconds >= 0 && seconds <= 0x7fffffff ? seconds : null;
    assert.equal(entry.mtime, exact, `${entry.name}: extended timestamp`);
  }
  checkLocalRecords(archive, view);
}

function unzipTest(file) {
  const run = spawnSync('unzip', ['-t', file], { encoding: 'utf8', maxBuffer: 256 * MiB });
  assert.equal(run.status, 0, `unzip -t failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /No errors detected/);
}

/** The plan's entries (`bytes` null for directories) as planArchive takes them. */
function planEntries(expected) {
  return expected.map(({ path: entryPath, bytes, modified }) => ({
    path: entryPath,
    blob: bytes === null ? null : new Blob([bytes]),
    modified,
  }));
}

/**
 * Plans `expected` (given to planArchive in `order`), writes the archive in shuffled ranges of
 * each of `chunkSizes`, checks every write gives the same bytes as one read of the whole, and
 * that Python, unzip and the record walk agree with `expected`.
 */
async function roundTrip(t, name, expected, { chunkSizes, order = expected, options } = {}) {
  const plan = await planArchive(planEntries(order), options);
  const whole = await plan.read(0, plan.size);
  const file = path.join(work, `${name}.zip`);
  for (const chunkSize of chunkSizes) {
    const written = await writeShuffled(plan, file, chunkSize);
    const same = Buffer.from(whole).equals(written);
    assert.ok(same, `ranges of ${chunkSize} bytes give the same archive`);
  }
  const view = pythonView(file);
  checkArchive(whole, view, expected);
  await t.test('unzip -t', { skip: UNZIP_MISSING && 'the unzip binary is not installed' }, () =>
    unzipTest(file),
  );
  return { plan, view, file, whole };
}

const SOME_TIME = Date.UTC(2024, 1, 29, 13, 37, 59, 750);

// What the CLI's writer (Plan::scan in crates/cli/src/client/archive) made of the folder `top`
// below (modes 0755 and 0644, the same times), once as is and once with its ZIP64 threshold
// lowered to 100 bytes: zip.js must give the same bytes, so one reader serves both clients.
const CLI_ARCHIVE = Buffer.from(
  'UEsDBBQAAAgAAAEAIVAAAAAAAAAAAAAAAAAEAAkAdG9wL1VUBQABA+ELXlBLAwQUAAgIAAC9bF1YAAAAAAAAAAAAAAAACQAJ' +
  'AHRvcC9hLnR4dFVUBQABt4jgZWhlbGxvClBLBwggMDo2BgAAAAYAAABQSwMEFAAACAAA1A0pKwAAAAAAAAAAAAAAAAgACQB0' +
  'b3Avc3ViL1VUBQABAMqaO1BLAwQUAAgIAADUDSkrAAAAAAAAAAAAAAAACgAJAHRvcC/DqS50eHRVVAUAAQDKmjvDqXTDqQpQ' +
  'SwcIMsEtswYAAAAGAAAAUEsBAi0DFAAACAAAAQAhUAAAAAAAAAAAAAAAAAQACQAAAAAAAAAQAO1BAAAAAHRvcC9VVAUAAQPh' +
  'C15QSwECLQMUAAgIAAC9bF1YIDA6NgYAAAAGAAAACQAJAAAAAAAAAAAApIErAAAAdG9wL2EudHh0VVQFAAG3iOBlUEsBAi0D' +
  'FAAACAAA1A0pKwAAAAAAAAAAAAAAAAgACQAAAAAAAAAQAO1BcQAAAHRvcC9zdWIvVVQFAAEAypo7UEsBAi0DFAAICAAA1A0p' +
  'KzLBLbMGAAAABgAAAAoACQAAAAAAAAAAAKSBoAAAAHRvcC/DqS50eHRVVAUAAQDKmjtQSwUGAAAAAAQABAD7AAAA5wAAAAAA',
  'base64',
);
const CLI_ARCHIVE_FORCED_ZIP64 = Buffer.from(
  'UEsDBBQAAAgAAAEAIVAAAAAAAAAAAAAAAAAEAAkAdG9wL1VUBQABA+ELXlBLAwQUAAgIAAC9bF1YAAAAAAAAAAAAAAAACQAJ' +
  'AHRvcC9hLnR4dFVUBQABt4jgZWhlbGxvClBLBwggMDo2BgAAAAYAAABQSwMELQAACAAA1A0pKwAAAAAAAAAAAAAAAAgACQB0' +
  'b3Avc3ViL1VUBQABAMqaO1BLAwQtAAgIAADUDSkrAAAAAAAAAAAAAAAACgAJAHRvcC/DqS50eHRVVAUAAQDKmjvDqXTDqQpQ' +
  'SwcIMsEtswYAAAAGAAAAUEsBAi0DFAAACAAAAQAhUAAAAAAAAAAAAAAAAAQACQAAAAAAAAAQAO1BAAAAAHRvcC9VVAUAAQPh' +
  'C15QSwECLQMUAAgIAAC9bF1YIDA6NgYAAAAGAAAACQAJAAAAAAAAAAAApIErAAAAdG9wL2EudHh0VVQFAAG3iOBlUEsBAi0D' +
  'LQAACAAA1A0pKwAAAAAAAAAAAAAAAAgAFQAAAAAAAAAQAO1B/////3RvcC9zdWIvAQAIAHEAAAAAAAAAVVQFAAEAypo7UEsB' +
  'Ai0DLQAICAAA1A0pKzLBLbMGAAAABgAAAAoAFQAAAAAAAAAAAKSB/////3RvcC/DqS50eHQBAAgAoAAAAAAAAABVVAUAAQDK' +
  'mjtQSwYGLAAAAAAAAAAtAy0AAAAAAAAAAAAEAAAAAAAAAAQAAAAAAAAAEwEAAAAAAADnAAAAAAAAAFBLBgcAAAAA+gEAAAAA' +
  'AAABAAAAUEsFBgAAAAAEAAQA//////////8AAA==',
  'base64',
);
const CLI_INPUTS = [
  { path: 'top/', blob: null, modified: Date.UTC(2020, 0, 1, 0, 0, 3) },
  { path: 'top/a.txt', blob: new Blob(['hello\n']), modified: Date.UTC(2024, 1, 29, 13, 37, 59) },
  { path: 'top/sub/', blob: null, modified: 1_000_000_000_000 },
  { path: 'top/\u00e9.txt', blob: new Blob(['\u00e9t\u00e9\n']), modified: 1_000_000_000_000 },
];

describe('crc32', () => {
  it('matches zlib on every length and alignment, and continues from a previous CRC', () => {
    const bytes = randomBytes(MiB + 77);
    for (let start = 0; start < 8; start++) {
      for (let length = 0; length < 80; length++) {
        const slice = bytes.subarray(start, start + length);
        assert.equal(crc32(slice), zlib.crc32(slice) >>> 0, `start ${start}, length ${length}`);
      }
    }
    assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
    const whole = zlib.crc32(bytes) >>> 0;
    assert.equal(crc32(bytes), whole);
    assert.equal(crc32(bytes.subarray(333), crc32(bytes.subarray(0, 333))), whole);
  });
});

describe('planArchive', () => {
  it('writes small files, a directory and a non-ASCII name that Python and unzip read', async (t) => {
    const text = (value) => new TextEncoder().encode(value);
    const expected = [
      { path: NON_ASCII_NAME, bytes: text('naïve café\n'), modified: SOME_TIME },
      { path: 'a.txt', bytes: text('first file\n'), modified: SOME_TIME + 1000 },
      { path: 'b.bin', bytes: randomBytes(1000), modified: Date.UTC(1975, 5, 1) },
      // A directory before its contents, and `docs/…` before `docs.txt`, as the CLI orders.
      { path: 'docs/', bytes: null, modified: Date.UTC(2050, 0, 1, 0, 0, 1) },
      { path: 'docs/readme.md', bytes: text('# read me\n'), modified: SOME_TIME },
      { path: 'docs.txt', bytes: randomBytes(333), modified: Date.UTC(1960, 0, 1) },
    ];
    const shuffled = [expected[4], expected[5], expected[1], expected[3], expected[0], expected[2]];
    const { plan } = await roundTrip(t, 'small', expected, {
      chunkSizes: [7, 61, MiB + 7],
      order: shuffled,
    });
    assert.deepEqual(plan.contents, {
      entries: 6,
      total_size: expected.reduce((total, entry) => total + (entry.bytes?.length ?? 0), 0),
      listing: expected.map((entry) => ({
        path: entry.path,
        size: entry.bytes === null ? 0 : entry.bytes.length,
      })),
      truncated: false,
    });
  });

  it('writes an archive of one empty file', async (t) => {
    const expected = [{ path: 'empty.txt', bytes: new Uint8Array(0), modified: SOME_TIME }];
    const { plan } = await roundTrip(t, 'empty', expected, { chunkSizes: [1, 5, MiB + 7] });
    assert.deepEqual(plan.contents, {
      entries: 1,
      total_size: 0,
      listing: [{ path: 'empty.txt', size: 0 }],
      truncated: false,
    });
  });

  it('writes a file of 5 MiB + 3 bytes from disk, in ranges that cut it anywhere', async (t) => {
    const bytes = randomBytes(5 * MiB + 3);
    const source = path.join(work, 'big.bin');
    await writeFile(source, bytes);
    const plan = await planArchive([
      { path: 'big.bin', blob: await openAsBlob(source), modified: SOME_TIME },
    ]);
    const file = path.join(work, 'big.zip');
    const first = await writeShuffled(plan, file, MiB + 7);
    const second = await writeShuffled(plan, file, 65536 + 13);
    assert.ok(first.equals(second), 'two different cuts give the same archive');
    const expected = [{ path: 'big.bin', bytes, modified: SOME_TIME }];
    checkArchive(first, pythonView(file), expected);
    await t.test('unzip -t', { skip: UNZIP_MISSING && 'the unzip binary is not installed' }, () =>
      unzipTest(file),
    );
  });

  it('uses the ZIP64 end records for more than 65,535 entries', async (t) => {
    const empty = new Blob([]);
    const entries = [{ path: 'many/', blob: null, modified: SOME_TIME }];
    for (let index = 0; index < 70_000; index++) {
      const name = `many/${String(index).padStart(5, '0')}.txt`;
      entries.push({ path: name, blob: empty, modified: SOME_TIME });
    }
    const plan = await planArchive(entries);
    const file = path.join(work, 'many.zip');
    const archive = await writeShuffled(plan, file, MiB + 7);
    const tail = new DataView(archive.buffer, archive.byteOffset + archive.length - 98, 98);
    assert.equal(tail.getUint32(0, true), 0x06064b50, 'ZIP64 end of central directory record');
    assert.equal(Number(tail.getBigUint64(32, true)), 70_001, 'ZIP64 entry count');
    assert.equal(tail.getUint32(56, true), 0x07064b50, 'ZIP64 end locator');
    assert.equal(tail.getUint32(76, true), 0x06054b50, 'end of central directory record');
    assert.equal(tail.getUint16(84, true), 0xffff, 'the 16-bit count points to the ZIP64 record');

    const view = pythonView(file);
    assert.equal(view.entries.length, 70_001);
    checkArchive(
      archive,
      view,
      entries.map((entry) => ({
        path: entry.path,
        bytes: entry.blob === null ? null : new Uint8Array(0),
        modified: entry.modified,
      })),
    );
    assert.equal(plan.contents.entries, 70_001);
    assert.equal(plan.contents.total_size, 0);
    assert.equal(plan.contents.truncated, true);
    assert.equal(plan.contents.listing.length, 300, 'cut to 300 entries, as the CLI sends');
    assert.deepEqual(plan.contents.listing[0], { path: 'many/', size: 0 });
    assert.deepEqual(plan.contents.listing[299], { path: 'many/00298.txt', size: 0 });
    await t.test('unzip -t', { skip: UNZIP_MISSING && 'the unzip binary is not installed' }, () =>
      unzipTest(file),
    );
  });

  it('writes ZIP64 sizes, offsets and end records (forced) that Python and unzip read', async (t) => {
    const expected = [
      { path: 'big.bin', bytes: randomBytes(5000), modified: SOME_TIME },
      { path: 'dir/', bytes: null, modified: SOME_TIME },
      { path: 'dir/small.txt', bytes: new TextEncoder().encode('small\n'), modified: SOME_TIME },
      { path: 'later.bin', bytes: randomBytes(1200), modified: SOME_TIME },
    ];
    const { view, whole } = await roundTrip(t, 'forced-zip64', expected, {
      chunkSizes: [13, 1000 + 7],
      options: { zip64Threshold: 1000 },
    });
    assert.deepEqual(
      view.entries.map((entry) => entry.extract_version),
      [45, 45, 45, 45],
      'every entry has a ZIP64 size or offset',
    );
    const tail = new DataView(whole.buffer, whole.byteOffset + whole.length - 98, 98);
    assert.equal(tail.getUint32(0, true), 0x06064b50, 'ZIP64 end of central directory record');
  });

  it('gives the same bytes as the CLI for the same files, with and without ZIP64', async () => {
    const plain = await planArchive(CLI_INPUTS);
    assert.ok(Buffer.from(await plain.read(0, plain.size)).equals(CLI_ARCHIVE));
    const forced = await planArchive(CLI_INPUTS, { zip64Threshold: 100 });
    assert.ok(Buffer.from(await forced.read(0, forced.size)).equals(CLI_ARCHIVE_FORCED_ZIP64));
  });

  it('gives the same bytes whatever order the entries come in', async () => {
    const files = ['z.txt', 'a/b.txt', 'a/', 'a.txt', 'A.txt', 'a b.txt'].map((entryPath) => ({
      path: entryPath,
      blob: entryPath.endsWith('/') ? null : new Blob([entryPath]),
      modified: SOME_TIME,
    }));
    const forward = await planArchive(files);
    const backward = await planArchive([...files].reverse());
    assert.deepEqual(
      forward.contents.listing.map((entry) => entry.path),
      ['A.txt', 'a/', 'a/b.txt', 'a b.txt', 'a.txt', 'z.txt'],
    );
    assert.deepEqual(await forward.read(0, forward.size), await backward.read(0, backward.size));
  });

  it('reports progress over the bytes of all files', async () => {
    const sizes = [9 * MiB + 1, 0, 3];
    const calls = [];
    await planArchive(
      sizes.map((size, index) => ({
        path: `f${index}`,
        blob: new Blob([new Uint8Array(size)]),
        modified: 0,
      })),
      { onProgress: (done, total) => calls.push([done, total]) },
    );
    const total = 9 * MiB + 4;
    assert.deepEqual(calls[0], [0, total]);
    assert.deepEqual(calls.at(-1), [total, total]);
    assert.ok(calls.length >= 4, 'a 9 MiB file is read in more than one chunk');
    for (let index = 1; index < calls.length; index++) {
      assert.ok(calls[index][0] >= calls[index - 1][0], 'progress never goes back');
      assert.equal(calls[index][1], total);
    }
  });

  it('stops when its signal is aborted', async () => {
    const controller = new AbortController();
    const plan = planArchive(
      [{ path: 'f', blob: new Blob([new Uint8Array(9 * MiB)]), modified: 0 }],
      { signal: controller.signal, onProgress: (done) => done > 0 && controller.abort() },
    );
    await assert.rejects(plan, { name: 'AbortError' });
  });

  it('refuses duplicate, absolute, climbing and malformed paths, naming them', async () => {
    const file = (entryPath) => ({ path: entryPath, blob: new Blob(['x']), modified: 0 });
    const dir = (entryPath) => ({ path: entryPath, blob: null, modified: 0 });
    const refusals = [
      [[file('a.txt'), file('b.txt'), file('a.txt')], /"a\.txt" is given twice/],
      [[file('same'), dir('same/')], /"same" and "same\/" would both be "same"/],
      [[file('x'), file('x/y')], /"x\/y" lies below "x", which is a file/],
      [[file('/etc/passwd')], /"\/etc\/passwd" .*is absolute/],
      [[file('../up.txt')], /"\.\.\/up\.txt" .*has a "\.\." segment/],
      [[file('a/../../b')], /"a\/\.\.\/\.\.\/b" .*"\.\." segment/],
      [[dir('a/../')], /"\.\." segment/],
      [[file('a//b')], /empty or "\." segment/],
      [[file('./a')], /empty or "\." segment/],
      [[file('a\\b')], /backslash/],
      [[file('C:/x')], /drive letter/],
      [[file('nul\0byte')], /NUL/],
      [[file('')], /is empty/],
      [[file('bad\ud800')], /lone surrogate/],
      [[file('x'.repeat(65_536))], /more than ZIP allows/],
      [[{ path: 'dir', blob: null, modified: 0 }], /not a directory path ending in "\/"/],
      [[{ path: 'dir/', blob: new Blob(['x']), modified: 0 }], /ends in "\/", so it is a dir/],
      [[{ path: 'f', blob: 'text', modified: 0 }], /not a Blob or File/],
      [[{ path: 'f', blob: new Blob(['x']), modified: new Date(Number.NaN) }], /no valid mod/],
      [[{ path: 'f', blob: new Blob(['x']) }], /no valid modification time/],
      [[], /nothing to archive/],
    ];
    for (const [entries, message] of refusals) {
      await assert.rejects(planArchive(entries), message, `${entries.map((e) => e.path)}`);
    }
  });

  it('refuses ranges outside the archive', async () => {
    const plan = await planArchive([{ path: 'f', blob: new Blob(['abc']), modified: 0 }]);
    for (const [start, end] of [[-1, 1], [2, 1], [0, plan.size + 1], [0.5, 2], [0, Number.NaN]]) {
      await assert.rejects(plan.read(start, end), RangeError, `[${start}, ${end})`);
    }
    assert.equal((await plan.read(plan.size, plan.size)).length, 0);
  });

  it('fails a read, naming the file, when a file changed after it was planned', async () => {
    const source = path.join(work, 'changing.txt');
    await writeFile(source, 'before');
    const plan = await planArchive([
      { path: 'changing.txt', blob: await openAsBlob(source), modified: SOME_TIME },
    ]);
    await writeFile(source, 'after!');
    // Headers are still made; the file's own bytes can no longer be.
    assert.equal((await plan.read(0, 4)).length, 4);
    await assert.rejects(plan.read(0, plan.size), /cannot read "changing\.txt".*Choose it again/);
  });
});
