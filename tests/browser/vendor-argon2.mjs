// Builds crates/server/src/http/web/assets/vendor/argon2.mjs: @noble/hashes' Argon2id (pure JS,
// so the page policy needs no wasm) bundled into one module by the pinned esbuild. Run it after
// bumping either package; vendor.test.mjs rebuilds it and compares the bytes.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARGON2_OUT = path.resolve(HERE, '../../crates/server/src/http/web/assets/vendor/argon2.mjs');

export async function bundleArgon2() {
  const result = await build({
    stdin: { contents: "export { argon2idAsync } from '@noble/hashes/argon2.js';", resolveDir: HERE, loader: 'js' },
    bundle: true,
    format: 'esm',
    target: 'es2022',
    legalComments: 'inline',
    write: false,
    logLevel: 'silent',
  });
  return Buffer.from(result.outputFiles[0].contents);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(ARGON2_OUT, await bundleArgon2());
}
