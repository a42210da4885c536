// The third-party modules served to the pages (crates/server/src/http/web/assets/vendor/) are
// the packages' own files, byte for byte: an edit or a version drift fails here.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VENDOR = path.resolve(HERE, '../../crates/server/src/http/web/assets/vendor');

it('the vendored lean-qr is the npm package’s index.mjs', async () => {
  const vendored = await readFile(path.join(VENDOR, 'lean-qr.mjs'));
  const packaged = await readFile(path.join(HERE, 'node_modules/lean-qr/index.mjs'));
  assert.ok(vendored.equals(packaged), 'crates/server/src/http/web/assets/vendor/lean-qr.mjs differs from node_modules/lean-qr/index.mjs');
  const { version } = JSON.parse(await readFile(path.join(HERE, 'node_modules/lean-qr/package.json'), 'utf8'));
  const readme = await readFile(path.join(VENDOR, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`\\| \`lean-qr.mjs\` \\| .* \\| ${version.replace(/\./g, '\\.')} \\|`));
});

it('the QR module makes a symbol of the link with its three finder patterns', async () => {
  const { generate } = await import(path.join(VENDOR, 'lean-qr.mjs'));
  const code = generate('http://127.0.0.1:8080/s/OKDgVGP7waQUuPNv0JI9tg');
  // A version-3 symbol or larger: 29+ modules a side, finder patterns in three corners.
  assert.ok(code.size >= 25, `size ${code.size}`);
  for (const [x, y] of [[0, 0], [code.size - 7, 0], [0, code.size - 7]]) {
    assert.equal(code.get(x, y), true);
    assert.equal(code.get(x + 3, y + 3), true);
    assert.equal(code.get(x + 1, y + 1), false);
  }
});

it('the vendored Argon2id is @noble/hashes bundled by the pinned esbuild, byte for byte', async () => {
  const { bundleArgon2, ARGON2_OUT } = await import('./vendor-argon2.mjs');
  const vendored = await readFile(ARGON2_OUT);
  assert.ok(vendored.equals(await bundleArgon2()), 'vendor/argon2.mjs differs from a fresh build: run node vendor-argon2.mjs');
  const readme = await readFile(path.join(VENDOR, 'README.md'), 'utf8');
  for (const name of ['@noble/hashes', 'esbuild']) {
    const { version } = JSON.parse(await readFile(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8'));
    assert.ok(readme.includes(`| \`argon2.mjs\` |`) && readme.includes(version), `README.md lacks ${name} ${version}`);
  }
});
