// seal.js and the vendored Argon2id as the pages load them: from their hashed asset names, in
// real Chromium, under the pages' strict policy (script-src 'self', no wasm). A round trip with a
// password and one to a request key, and no policy violation or script error on the way.
//
//   ONCE_BIN=/path/to/once node --test seal.browser.test.mjs
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertClean, launchBrowser, openPage, startOnce } from './harness.mjs';

describe('seal.js in Chromium', { timeout: 60_000 }, () => {
  let server;
  let browser;

  before(async () => {
    [server, browser] = await Promise.all([startOnce({ name: 'seal' }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.stop?.();
  });

  it('seals and opens with a password and to a request key under the page policy', async () => {
    const { context, page } = await openPage(browser);
    const response = await page.goto(`${server.base}/`);
    assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(response.headers()['content-security-policy'], /wasm-unsafe-eval|unsafe-eval/);
    const result = await page.evaluate(async () => {
      const { assets } = JSON.parse(document.getElementById('once-config').textContent);
      const seal = await import(assets.seal);
      const { argon2idAsync } = await import(assets.argon2);
      const argon2id = (password, salt, p) =>
        argon2idAsync(password, salt, { m: p.memory_kib, t: p.iterations, p: p.parallelism, dkLen: 32 });
      const plain = crypto.getRandomValues(new Uint8Array(seal.RECORD_SIZE + 1));
      const read = async (offset, length) => plain.subarray(offset, offset + length);
      const secret = seal.newSecret();
      const params = seal.newPasswordParams();
      const keys = await seal.shareKeys(secret, { password: 'pässword', params, argon2id });
      const sealed = await seal.sealedRange(keys, plain.length, read, 0, seal.sealedSize(plain.length));
      const meta = await seal.sealMeta(keys, { name: 'a.bin', type: 'application/octet-stream', size: plain.length });
      const again = await seal.shareKeys(secret, { password: 'pa\u0308ssword', params, argon2id });
      const opened = new Uint8Array(await new Response(new Blob([sealed]).stream().pipeThrough(seal.openingStream(again, sealed.length))).arrayBuffer());
      const wrong = await seal.shareKeys(secret, { password: 'password', params, argon2id });
      const wrongSays = await seal.openMeta(wrong, meta).then(() => 'opened', (error) => error.code);
      const requester = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
      const recipient = new Uint8Array(await crypto.subtle.exportKey('raw', requester.publicKey));
      const upload = await seal.requestUploadKeys(recipient);
      const theirs = await seal.requestOpenKeys(requester.privateKey, upload.ephemeral, recipient);
      const requestMeta = await seal.openMeta(theirs, await seal.sealMeta(upload.keys, { name: 'r' }));
      return {
        same: opened.length === plain.length && opened.every((byte, i) => byte === plain[i]),
        name: (await seal.openMeta(again, meta)).name,
        wrongSays,
        requestName: requestMeta.name,
      };
    });
    assert.deepEqual(result, { same: true, name: 'a.bin', wrongSays: 'wrong_key', requestName: 'r' });
    assertClean(page);
    await context.close();
  });
});
