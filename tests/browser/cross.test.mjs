// End-to-end encryption across clients: files sent with `once send` (encrypted by default) are
// opened by the landing page in Chromium, and files sent from the web send page (encrypted by
// default) are opened by `once get`; byte-identical, on the data directory and on S3, for 0 B,
// 1 B, exactly one record, one record and a byte, and 300 MiB (in 5 MiB parts). And upload
// requests: made by `once request` (which keeps the private key), answered on the upload page
// in Chromium, opened by the requester's `once get` and by nobody else.
//
//   npm ci && ONCE_BIN=/path/to/once node --test

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  MiB,
  fill,
  assertClean,
  launchBrowser,
  openPage,
  runCli,
  s3Env,
  sha256File,
  STRINGS,
  signIn,
  startOnce,
  startProxy,
  startS3,
  tempDir,
  waitForStatus,
  writeRandomFile,
} from './harness.mjs';

const SIZES = [0, 1, 65_536, 65_537, 300 * MiB];
const REQUEST_SIZES = [1, 12 * MiB + 5];

for (const store of ['disk', 's3']) {
  describe(`encrypted files between the CLI and the browser (${store})`, { timeout: 900_000 }, () => {
    let server;
    let browser;
    let files;
    let s3;
    let bucket;

    before(async () => {
      let env = {};
      if (store === 's3') {
        s3 = await startS3();
        // The bucket's CORS rule (docs/storage.md), played by a proxy: s3s-fs has none.
        bucket = await startProxy(s3.endpoint, { cors: { origin: 'unset' } });
        env = s3Env(bucket.url);
      }
      [server, browser, files] = await Promise.all([startOnce({ name: `cross-${store}`, env }), launchBrowser(), tempDir()]);
      if (bucket) bucket.cors.origin = server.base;
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
      await bucket?.stop();
      await s3?.stop();
      if (files) await rm(files, { recursive: true, force: true });
    });

    for (const size of SIZES) {
      it(`once send → landing page: ${size} bytes`, async () => {
        const dir = path.join(files, `cli-${size}`);
        await mkdir(dir);
        const name = `from the cli ${size}.bin`;
        const sha256 = await writeRandomFile(path.join(dir, name), size);
        const { stdout } = await runCli(server, dir, ['send', '-q', name]);
        const link = stdout.trim();
        assert.match(link, /\/s\/[A-Za-z0-9_-]+#[A-Za-z0-9_-]{43}$/, `not an encrypted link: ${link}`);
        const { context, page } = await openPage(browser);
        try {
          await page.goto(link);
          await page.waitForFunction((expected) => document.querySelector('h1').textContent === expected, name);
          const [download] = await Promise.all([page.waitForEvent('download', { timeout: 300_000 }), page.click('#download')]);
          assert.equal(download.suggestedFilename(), name);
          assert.equal(await download.failure(), null);
          assert.equal(await sha256File(await download.path()), sha256, 'the browser saved other bytes');
          assertClean(page);
        } finally {
          await context.close();
        }
        await rm(dir, { recursive: true, force: true });
      });

      it(`send page → once get: ${size} bytes`, async () => {
        const dir = path.join(files, `page-${size}`);
        await mkdir(dir);
        const name = `from the page ${size}.bin`;
        const original = path.join(dir, name);
        const sha256 = await writeRandomFile(original, size);
        const { context, page } = await openPage(browser);
        let link;
        try {
          await signIn(page, server.base, server.token);
          await page.setInputFiles('#files', original);
          await page.click('#send');
          await page.waitForSelector('#result:not([hidden])', { timeout: 300_000 });
          link = await page.inputValue('#link');
          assertClean(page);
        } finally {
          await context.close();
        }
        assert.match(link, /\/s\/[A-Za-z0-9_-]+#[A-Za-z0-9_-]{43}$/, `not an encrypted link: ${link}`);
        await rm(original);
        const inbox = path.join(dir, 'inbox');
        await mkdir(inbox);
        await runCli(server, inbox, ['get', '-q', link]);
        assert.equal(await sha256File(path.join(inbox, name)), sha256, 'once get wrote other bytes');
        await rm(dir, { recursive: true, force: true });
      });
    }

    for (const size of REQUEST_SIZES) {
      it(`once request → upload page → the requester's once get: ${size} bytes`, async () => {
        const dir = path.join(files, `request-${size}`);
        const requester = path.join(dir, 'requester');
        const uploader = path.join(dir, 'uploader');
        await mkdir(requester, { recursive: true });
        await mkdir(uploader, { recursive: true });
        const name = `answered in the browser ${size}.bin`;
        const sha256 = await writeRandomFile(path.join(uploader, name), size);
        const link = (await runCli(server, requester, ['request'])).stdout.trim();
        assert.match(link, /\/r\/[A-Za-z0-9_-]+#[A-Za-z0-9_-]{43}$/, `not an encrypted request link: ${link}`);
        const { context, page } = await openPage(browser);
        try {
          await page.goto(link);
          await page.setInputFiles('#file', path.join(uploader, name));
          await page.click('#send');
          await waitForStatus(page, fill(STRINGS.request_done, { name }), 300_000);
          assertClean(page);
        } finally {
          await context.close();
        }
        // The listing holds every request of the key, newest first by the second; pick this
        // test's line by the request's id, never by its place in the list.
        const requestId = new URL(link).pathname.split('/')[2];
        const listing = (await runCli(server, requester, ['requests'])).stdout;
        const line = listing.split('\n').find((row) => row.split(/\s+/)[1] === requestId);
        const shareUrl = line?.split(/\s+/).find((word) => word.includes('/s/'));
        assert.ok(shareUrl, `no share listed for request ${requestId}: ${listing}`);

        // Neither the request link's key nor the share's page opens it, and trying claims
        // nothing: the landing page says where it opens, the uploader's CLI has no key.
        const { context: other, page: landing } = await openPage(browser);
        try {
          await landing.goto(`${shareUrl}#${link.split('#')[1]}`);
          await landing.waitForSelector('#decrypt-problem:not([hidden])');
          assert.equal(await landing.textContent('#decrypt-problem'), STRINGS.decrypt_request_upload);
          assert.ok(await landing.isDisabled('#download'));
          assertClean(landing);
        } finally {
          await other.close();
        }
        await assert.rejects(runCli(server, uploader, ['get', '-q', shareUrl]), /private key is not here/);

        await runCli(server, requester, ['get', '-q', shareUrl]);
        assert.equal(await sha256File(path.join(requester, name)), sha256, 'the requester got other bytes');
        await rm(dir, { recursive: true, force: true });
      });
    }
  });
}
