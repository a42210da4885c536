// The landing page of an end-to-end encrypted share in a real browser: the key in the link's
// fragment opens the sealed name, the page proves the key, claims, downloads the ciphertext and
// saves the decrypted file; a missing key or a wrong password claims nothing; a changed
// ciphertext saves nothing. Shares are sealed here in Node with the same seal.js the page loads.
//
//   npm ci && ONCE_BIN=/path/to/once node --test

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  PAGE_BUDGET,
  REPO,
  STRINGS,
  assertClean,
  fill,
  launchBrowser,
  openPage,
  pageWeight,
  startOnce,
  waitForStatus,
} from './harness.mjs';

const ASSETS = path.join(REPO, 'crates/server/src/http/web/assets');
const seal = await import(path.join(ASSETS, 'seal.js'));
const { argon2idAsync } = await import(path.join(ASSETS, 'vendor/argon2.mjs'));
const argon2id = (password, salt, params) =>
  argon2idAsync(password, salt, { m: params.memory_kib, t: params.iterations, p: params.parallelism, dkLen: 32 });
// Argon2id's smallest allowed parameters keep the test quick; the page reads them from the seal.
const QUICK_PASSWORD = { memory_kib: 8, iterations: 1, parallelism: 1 };

/** Seals `plain` named `name` and makes a share of it; returns the link with its key. */
async function encryptedShare(server, name, plain, { password, corrupt = false } = {}) {
  const secret = seal.newSecret();
  const params = password ? { ...seal.newPasswordParams(), ...QUICK_PASSWORD } : undefined;
  const keys = await seal.shareKeys(secret, { password, params, argon2id });
  const sealedSize = seal.sealedSize(plain.length);
  const ciphertext = await seal.sealedRange(
    keys,
    plain.length,
    async (offset, length) => plain.subarray(offset, offset + length),
    0,
    sealedSize,
  );
  const sealedMeta = await seal.sealMeta(keys, { name, type: 'text/plain', size: plain.length });
  const encryption = seal.newEncryption(keys, sealedMeta, params ? { password: params } : {});
  if (corrupt) ciphertext[Math.floor(ciphertext.length / 2)] ^= 1;
  const share = await server.apiJson('POST', '/shares', {
    filename: '',
    size: sealedSize,
    sha256: createHash('sha256').update(ciphertext).digest('hex'),
    encryption,
  });
  const upload = await fetch(share.upload.url, { method: 'PUT', headers: share.upload.headers, body: ciphertext });
  assert.ok(upload.ok, `upload answered ${upload.status}`);
  if (share.upload.complete_url) {
    const done = await fetch(share.upload.complete_url, { method: 'POST' });
    assert.ok(done.ok, `complete answered ${done.status}`);
  }
  return { link: `${share.url}#${seal.b64u(secret)}`, bare: share.url, id: share.id };
}

/** Downloads the share still allows, from the owner's view. */
async function downloadsLeft(server, id) {
  return (await server.apiJson('GET', `/shares/${id}`)).downloads_left;
}

describe('encrypted shares in a real browser', { timeout: 180_000 }, () => {
  let server;
  let browser;

  before(async () => {
    [server, browser] = await Promise.all([startOnce({ name: 'encrypted' }), launchBrowser()]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const bytes of [0, 65_537]) {
    it(`decrypts a ${bytes}-byte file and saves it under its sealed name; the link is used after`, async () => {
      const plain = Buffer.alloc(bytes);
      for (let i = 0; i < bytes; i += 1) plain[i] = (i * 31 + 7) % 251;
      const share = await encryptedShare(server, 'quarterly secret.txt', plain);
      const { context, page } = await openPage(browser);
      try {
        await page.goto(share.link);
        // The sealed name replaces the placeholder the server knows.
        await page.waitForFunction(() => document.querySelector('h1.filename').textContent === 'quarterly secret.txt');
        const weight = (await pageWeight(page)).bytes;
        assert.ok(weight < PAGE_BUDGET, `the encrypted landing page weighs ${weight} bytes`);
        assert.equal(await downloadsLeft(server, share.id), 1, 'opening the page claimed the share');
        const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
        assert.equal(download.suggestedFilename(), 'quarterly secret.txt');
        // Streamed to disk by the download worker, not assembled in memory.
        assert.match(download.url(), /\/dl\/[0-9a-f]{32}$/);
        const saved = await readFile(await download.path());
        assert.ok(saved.equals(plain), `saved ${saved.length} bytes, not the ${bytes} sent`);
        await page.waitForFunction(
          (text) => document.getElementById('claimed-text').textContent === text,
          STRINGS.download_started,
        );
        assertClean(page);
      } finally {
        await context.close();
      }
      assert.equal(await downloadsLeft(server, share.id), 0);
    });
  }

  it('a link without its key says so and claims nothing', async () => {
    const share = await encryptedShare(server, 'a.txt', Buffer.from('hello'));
    const { context, page } = await openPage(browser);
    try {
      await page.goto(share.bare);
      await page.waitForSelector('#decrypt-problem:not([hidden])');
      assert.equal(await page.textContent('#decrypt-problem'), STRINGS.decrypt_missing_key);
      assert.ok(await page.isDisabled('#download'));
    } finally {
      await context.close();
    }
    assert.equal(await downloadsLeft(server, share.id), 1);
  });

  it('a wrong password claims nothing, the right one then downloads', async () => {
    const plain = Buffer.from('behind a password\n');
    const share = await encryptedShare(server, 'pw.txt', plain, { password: 'correct horse' });
    const { context, page } = await openPage(browser);
    try {
      await page.goto(share.link);
      await page.waitForSelector('#password-line:not([hidden])');
      await page.fill('#password', 'wrong horse');
      await page.click('#download');
      await page.waitForSelector('#decrypt-problem:not([hidden])');
      assert.equal(await page.textContent('#decrypt-problem'), STRINGS.decrypt_wrong);
      assert.equal(await downloadsLeft(server, share.id), 1, 'a wrong password used the link');
      await page.fill('#password', 'correct horse');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.ok((await readFile(await download.path())).equals(plain));
      assertClean(page);
    } finally {
      await context.close();
    }
  });

  it('a changed ciphertext is refused and nothing is saved', async () => {
    const share = await encryptedShare(server, 'tampered.txt', Buffer.alloc(200_000, 7), { corrupt: true });
    const { context, page } = await openPage(browser);
    const downloads = [];
    page.on('download', (download) => downloads.push(download));
    try {
      await page.goto(share.link);
      await page.waitForFunction(() => document.querySelector('h1.filename').textContent === 'tampered.txt');
      await page.click('#download');
      await page.waitForSelector('#decrypt-problem:not([hidden])');
      const problem = await page.textContent('#decrypt-problem');
      assert.ok(problem.startsWith(`${STRINGS.decrypt_failed} `), problem);
      // Within the lease the same claim may fetch again; the damaged bytes fail again.
      assert.ok(!(await page.isDisabled('#download')), 'no second try offered within the lease');
      await page.click('#download');
      await page.waitForFunction(() => !document.getElementById('decrypt-problem').hidden && document.getElementById('claimed').hidden);
      // The worker streams to disk: the browser started each download, and failed it (deleting
      // the partial file) when a record did not open.
      for (const download of downloads) {
        assert.ok(await download.failure(), 'a download of damaged ciphertext completed');
        await assert.rejects(download.path(), 'a damaged download left a file');
      }
      assert.equal(await downloadsLeft(server, share.id), 0, 'the second try claimed again');
    } finally {
      await context.close();
    }
  });

  it('an upload page seals the file to the requester, who alone opens it', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
    const recipient = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const request = await server.apiJson('POST', '/requests', { max_size: 20 * 1024 * 1024, encrypted: true });
    assert.equal(request.encrypted, true);
    const payload = Buffer.alloc(6 * 1024 * 1024 + 3, 9);
    const { context, page } = await openPage(browser);
    try {
      // Without the key in the fragment the page cannot seal anything, and says so.
      await page.goto(request.url);
      await waitForStatus(page, STRINGS.decrypt_missing_key);
      assert.ok(await page.isDisabled('#file'));
      await page.goto('about:blank');
      await page.goto(`${request.url}#${seal.b64u(recipient)}`);
      await page.setInputFiles('#file', { name: 'signed contract.pdf', mimeType: 'application/pdf', buffer: payload });
      await page.click('#send');
      await waitForStatus(page, fill(STRINGS.request_done, { name: 'signed contract.pdf' }));
      assertClean(page);
    } finally {
      await context.close();
    }
    const view = await server.apiJson('GET', `/requests/${request.id}`);
    assert.ok(view.share, `the request has no share: ${JSON.stringify(view)}`);
    const { id } = view.share;
    assert.equal((await server.apiJson('GET', `/shares/${id}`)).filename, 'encrypted');
    const sealed = await (await fetch(`${server.base}/s/${id}/seal`)).json();
    assert.equal(sealed.recipient_key, seal.b64u(recipient));
    const keys = await seal.requestOpenKeys(pair.privateKey, seal.fromB64u(sealed.ephemeral_key), recipient);
    const meta = await seal.openMeta(keys, sealed.sealed_meta);
    assert.deepEqual(meta, { name: 'signed contract.pdf', type: 'application/pdf', size: payload.length });
    const claim = await fetch(`${server.base}/s/${id}`, {
      method: 'POST',
      headers: { accept: 'application/json', 'x-once-proof': await seal.claimProof(keys, id, sealed.challenge) },
    });
    assert.equal(claim.status, 200, await claim.clone().text());
    const { download_url: downloadUrl } = await claim.json();
    const response = await fetch(downloadUrl);
    const opened = Buffer.from(await new Response(response.body.pipeThrough(seal.openingStream(keys, sealed.size))).arrayBuffer());
    assert.ok(opened.equals(payload), 'the requester did not get the uploaded bytes');
  });

  it("an encrypted request's largest size bounds the ciphertext, checked before sending", async () => {
    const pair = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
    const recipient = seal.b64u(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
    // One record of ciphertext: 65,520 bytes of plaintext and its 16-byte tag.
    const request = await server.apiJson('POST', '/requests', { max_size: 65_536, encrypted: true });
    const { context, page } = await openPage(browser);
    try {
      await page.goto(`${request.url}#${recipient}`);
      const tooLarge = fill(STRINGS.too_large, { size: '64 KiB' });
      await page.setInputFiles('#file', { name: 'a byte too many.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(65_521, 1) });
      await waitForStatus(page, tooLarge);
      await page.click('#send');
      await waitForStatus(page, tooLarge);
      assert.equal((await server.apiJson('GET', `/requests/${request.id}`)).state, 'open');
      await page.setInputFiles('#file', { name: 'just fits.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(65_520, 2) });
      await page.click('#send');
      await waitForStatus(page, fill(STRINGS.request_done, { name: 'just fits.bin' }));
      assertClean(page);
    } finally {
      await context.close();
    }
    const view = await server.apiJson('GET', `/requests/${request.id}`);
    assert.equal(view.share.size, 65_536);
  });

  it('the server never sees the name or the content', async () => {
    const marker = 'a-marker-only-the-plaintext-holds';
    await encryptedShare(server, 'never-seen-name.txt', Buffer.from(marker));
    const files = [];
    const walk = async (dir) => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else files.push(full);
      }
    };
    await walk(server.dir);
    assert.ok(files.length > 0);
    for (const file of files) {
      const text = (await readFile(file)).toString('latin1');
      assert.ok(!text.includes('never-seen-name'), `${file} holds the name`);
      assert.ok(!text.includes(marker), `${file} holds the content`);
    }
  });
});
