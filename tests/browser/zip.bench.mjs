// Throughput of zip.js's CRC pass in Node: crc32 alone on 256 MiB in memory, then planArchive
// over a 256 MiB file on disk (fs.openAsBlob, a file-backed Blob like a browser File).
//
//   node zip.bench.mjs

import { randomFillSync } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { crc32, planArchive } from '../../crates/server/src/http/web/assets/zip.js';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const CHUNK = 4 * MiB;

const bytes = new Uint8Array(TOTAL);
for (let offset = 0; offset < TOTAL; offset += 65536) randomFillSync(bytes, offset, 65536);
const expected = zlib.crc32(bytes) >>> 0;

for (let round = 1; round <= 3; round++) {
  const started = performance.now();
  let crc = 0;
  for (let offset = 0; offset < TOTAL; offset += CHUNK) {
    crc = crc32(bytes.subarray(offset, offset + CHUNK), crc);
  }
  const seconds = (performance.now() - started) / 1000;
  if (crc !== expected) throw new Error('crc32 disagrees with zlib');
  console.log(`crc32, 256 MiB in 4 MiB chunks, round ${round}: ${(TOTAL / 1e6 / seconds).toFixed(0)} MB/s`);
}

const work = await mkdtemp(path.join(tmpdir(), 'once-zipjs-bench-'));
try {
  const file = path.join(work, 'data.bin');
  await writeFile(file, bytes);
  const blob = await openAsBlob(file);
  const started = performance.now();
  const plan = await planArchive([{ path: 'data.bin', blob, modified: Date.now() }]);
  const seconds = (performance.now() - started) / 1000;
  console.log(`planArchive, one 256 MiB file on disk: ${(TOTAL / 1e6 / seconds).toFixed(0)} MB/s (archive ${plan.size} bytes)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
