// Real-browser end-to-end tests for `once`: a headless Chromium (driven by playwright-core)
// against a `once serve` started here on a fresh data directory.
//
//   npm ci && ONCE_BIN=/path/to/once node --test
//
// Needs: the server binary (env ONCE_BIN, default ../../target/debug/once relative to this
// file) and Chromium (env CHROMIUM_BIN, default /usr/bin/chromium; Debian: `apt-get install
// chromium`). When either is missing every test fails with a message that says so: nothing is
// skipped.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  HERE,
  SMALL_PART_SIZE as PART_SIZE,
  STRINGS,
  assertClean,
  fill,
  launchBrowser,
  openPage as openContext,
  startOnce,
  waitForStatus,
} from './harness.mjs';

const SCREENSHOTS = path.join(HERE, 'screenshots');

// A name that exercises percent-encoding, HTML escaping and Content-Disposition's filename*.
const TRICKY_NAME = 'naïve "report" 1.txt';
const UPLOAD_NAME = 'données à envoyer 2024.bin';
const UPLOAD_SIZE = 200 * 1024;

/**
 * The name Chromium gives a download called `name`: whatever the platform, it replaces the
 * characters that are illegal in a file name on any OS (`"*:<>?|/\\`, controls) with `_`,
 * so `naïve "report" 1.txt` is saved as `naïve _report_ 1.txt`.
 */
function chromiumSafeName(name) {
  return name.replace(/["*:<>?|/\\\u0000-\u001f\u007f]/g, '_');
}

describe('once in a real browser', { timeout: 60_000 }, () => {
  let server;
  let browser;

  before(async () => {
    // Both are started (and checked) here; a missing one fails every test below. Whatever did
    // start is kept so that `after` stops it (a stray Chromium would keep node alive).
    const [started, launched] = await Promise.allSettled([startOnce({ name: 'once-test' }), launchBrowser()]);
    server = started.value;
    browser = launched.value;
    const failures = [started, launched].filter((r) => r.status === 'rejected');
    if (failures.length > 0) {
      const reasons = failures.map((failure) => failure.reason);
      throw new AggregateError(reasons, reasons.map((reason) => reason.message).join('\n'));
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const apiJson = (method, route) => server.apiJson(method, route);
  const share = (filename, content) => server.share(filename, content);
  const uploadRequest = (maxSize = 1_000_000) => server.uploadRequest({ max_size: maxSize });
  const openPage = () => openContext(browser, { viewport: { width: 900, height: 640 } });
  const arrived = (name) => fill(STRINGS.request_done, { name });

  it('shows the landing page without consuming the share', async () => {
    const content = Buffer.from(`hello from the browser test\n${'x'.repeat(3000)}\n`);
    const { url, id } = await share(TRICKY_NAME, content);
    const { context, page } = await openPage();
    try {
      for (let visit = 1; visit <= 2; visit += 1) {
        const response = visit === 1 ? await page.goto(url) : await page.reload();
        assert.equal(response.status(), 200, `visit ${visit} of ${url}`);
        assert.match(response.headers()['content-type'] ?? '', /^text\/html/);
        assert.equal(await page.locator('h1').textContent(), TRICKY_NAME);
        assert.equal(await page.title(), `${TRICKY_NAME} · once`);
        const meta = await page.locator('p.meta').textContent();
        assert.match(meta, /KiB/, `size missing from ${JSON.stringify(meta)}`);
        assert.ok(meta.includes(STRINGS.landing_left_one), `downloads left missing from ${JSON.stringify(meta)}`);
        // The script shows the expiry in the reader's terms ("in 7 days") and the exact local
        // time on hover; the server's UTC text is only what a page without script shows.
        const expiry = page.locator('p.meta time');
        const [label, title, datetime] = await Promise.all([
          expiry.textContent(),
          expiry.getAttribute('title'),
          expiry.getAttribute('datetime'),
        ]);
        assert.ok(meta.includes(STRINGS.landing_expires.split('{time}')[0].trim()), `no expiry label in ${JSON.stringify(meta)}`);
        assert.match(label, /^(in \d+ (days|hours|minutes)|tomorrow)$/, `expiry ${JSON.stringify(label)} is not relative`);
        assert.ok(Date.parse(datetime) > Date.now(), `expiry ${datetime} is not in the future`);
        assert.match(title ?? '', /\d{4}/, `the exact expiry ${JSON.stringify(title)} is not on hover`);
        assert.ok(await page.locator('#download').isVisible(), 'no Download button');
        const form = page.locator('form:has(#download)');
        assert.equal((await form.getAttribute('method'))?.toLowerCase(), 'post');
        // No action attribute: the form posts to the page's own URL, which keeps working
        // behind a proxy that serves once under a path prefix.
        assert.equal(await form.getAttribute('action'), null);
        assert.equal(await form.evaluate((f) => f.action), page.url());
      }
      assertClean(page);
    } finally {
      await context.close();
    }
    const view = await apiJson('GET', `/shares/${id}`);
    assert.equal(view.downloads_left, 1, `after two page views: ${JSON.stringify(view)}`);
    assert.equal(view.availability, 'available', `after two page views: ${JSON.stringify(view)}`);
    assert.ok(view.preview_hits >= 2, `preview_hits should count the views: ${JSON.stringify(view)}`);
  });

  it('downloads the file with its name, then the link is used up (410)', async () => {
    const content = Buffer.concat([Buffer.from('naïve "report"\n'), randomBytes(64 * 1024)]);
    const { url, id } = await share(TRICKY_NAME, content);
    const { context, page } = await openPage();
    try {
      const landing = await page.goto(url);
      assert.equal(landing.status(), 200);
      const blobResponse = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/b/dl/'));
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 15_000 }),
        page.click('#download'),
      ]);
      assert.match(new URL(download.url()).pathname, /^\/b\/dl\//, 'download not from a /b/dl/ URL');
      // The server names the file exactly (RFC 6266 filename*) ...
      const disposition = (await blobResponse).headers()['content-disposition'] ?? '';
      assert.match(disposition, /^attachment;/, `Content-Disposition: ${disposition}`);
      const encoded = /filename\*=UTF-8''([^;\s]+)/i.exec(disposition);
      assert.ok(encoded, `no filename* in Content-Disposition: ${disposition}`);
      assert.equal(decodeURIComponent(encoded[1]), TRICKY_NAME);
      // ... and Chromium keeps that name (the ï proves it read filename*, not the ASCII
      // fallback), except for the characters it never puts in a file name.
      assert.equal(download.suggestedFilename(), chromiumSafeName(TRICKY_NAME));
      assert.equal(await download.failure(), null, 'the download failed');
      const saved = await readFile(await download.path());
      assert.equal(saved.length, content.length, 'downloaded size differs');
      assert.ok(saved.equals(content), 'downloaded bytes differ from the uploaded ones');

      const again = await page.reload();
      assert.equal(again.request().method(), 'GET');
      assert.equal(again.status(), 410, 'the used-up link should answer 410');
      assert.equal(await page.locator('h1').textContent(), STRINGS.used_title);
      assert.equal(await page.locator('#download').count(), 0, 'a used-up link offers Download');
      await mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'used-up.png'), fullPage: true });
      assertClean(page);
    } finally {
      await context.close();
    }
    const view = await apiJson('GET', `/shares/${id}`);
    assert.equal(view.downloads_left, 0, JSON.stringify(view));
    assert.equal(view.availability, 'consumed', JSON.stringify(view));
  });

  it('uploads a file through an upload request page; a second visit is refused (409)', async () => {
    const payload = randomBytes(UPLOAD_SIZE);
    const request = await uploadRequest();
    const { context, page } = await openPage();
    try {
      const response = await page.goto(request.url);
      assert.equal(response.status(), 200, `GET ${request.url}`);
      assert.equal(await page.locator('h1').textContent(), STRINGS.request_someone);
      await page.setInputFiles('#file', {
        name: UPLOAD_NAME,
        mimeType: 'application/octet-stream',
        buffer: payload,
      });
      await page.click('#send');
      await waitForStatus(page, arrived(UPLOAD_NAME));
      assert.equal(await page.locator('#progress').evaluate((bar) => bar.value), 1);
      assert.ok(await page.locator('#send').isHidden(), 'Upload is still offered after success');
      assert.ok(await page.locator('#drop').isHidden(), 'the file picker is still offered after success');
      assertClean(page);

      const view = await apiJson('GET', `/requests/${request.id}`);
      assert.equal(view.state, 'fulfilled', JSON.stringify(view));
      assert.ok(view.share, `fulfilled request without a share: ${JSON.stringify(view)}`);
      assert.equal(view.share.size, UPLOAD_SIZE, JSON.stringify(view.share));
      assert.equal(view.share.filename, UPLOAD_NAME, JSON.stringify(view.share));

      // The bytes that arrived are the ones sent: claim them explicitly (POST). Node's fetch
      // sends Sec-Fetch-Mode like a browser, so a plain GET would get the landing page.
      const fetched = await fetch(view.share.url, { method: 'POST', headers: { accept: '*/*' } });
      assert.equal(fetched.status, 200, `downloading ${view.share.url}`);
      assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(payload), 'uploaded bytes differ');

      const second = await page.goto(request.url);
      assert.equal(second.status(), 409, 'a used upload page should answer 409');
      assert.equal(await page.locator('h1').textContent(), STRINGS.request_used_title);
      assert.equal(await page.locator('#file').count(), 0, 'a used upload page still has a form');
    } finally {
      await context.close();
    }
  });

  it('uploads a file larger than a part in several parts through the upload page', async () => {
    const size = 2 * PART_SIZE + 123_457;
    const payload = randomBytes(size);
    const request = await uploadRequest(64 * 1024 * 1024);
    const { context, page } = await openPage();
    const parts = [];
    page.on('request', (sent) => {
      if (sent.method() === 'PUT') parts.push(new URL(sent.url()).pathname);
    });
    try {
      await page.goto(request.url);
      await page.setInputFiles('#file', {
        name: 'three parts.bin',
        mimeType: 'application/octet-stream',
        buffer: payload,
      });
      await page.click('#send');
      await waitForStatus(page, arrived('three parts.bin'));
      assertClean(page);
      assert.equal(parts.length, 3, `expected three part uploads, saw ${parts.join(', ')}`);
      assert.ok(parts.every((part) => part.startsWith('/b/part/')), parts.join(', '));
      const view = await apiJson('GET', `/requests/${request.id}`);
      assert.equal(view.state, 'fulfilled', JSON.stringify(view));
      assert.equal(view.share.size, size, JSON.stringify(view.share));
      const fetched = await fetch(view.share.url, { method: 'POST', headers: { accept: '*/*' } });
      assert.equal(fetched.status, 200, `downloading ${view.share.url}`);
      assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(payload), 'uploaded bytes differ');
    } finally {
      await context.close();
    }
  });

  it('takes screenshots of the landing and upload pages', async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    const { url } = await share(TRICKY_NAME, randomBytes(1536 * 1024));
    const request = await uploadRequest();
    const { context, page } = await openPage();
    try {
      const shots = [];
      async function shot(name) {
        const file = path.join(SCREENSHOTS, name);
        const png = await page.screenshot({ path: file, fullPage: true });
        assert.ok(png.length > 2000, `${name} is suspiciously small (${png.length} bytes)`);
        shots.push(file);
      }
      assert.equal((await page.goto(url)).status(), 200);
      await shot('landing.png');
      assert.equal((await page.goto(request.url)).status(), 200);
      await shot('upload.png');
      await page.setInputFiles('#file', {
        name: 'photo.jpg',
        mimeType: 'image/jpeg',
        buffer: randomBytes(50_000),
      });
      await page.click('#send');
      await waitForStatus(page, arrived('photo.jpg'));
      await shot('upload-done.png');
      assertClean(page);
      for (const file of shots) assert.ok(existsSync(file), `${file} was not written`);
    } finally {
      await context.close();
    }
  });
});
