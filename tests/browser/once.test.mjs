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
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ONCE_BIN = process.env.ONCE_BIN
  ? path.resolve(process.env.ONCE_BIN)
  : path.resolve(HERE, '../../target/debug/once');
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SCREENSHOTS = path.join(HERE, 'screenshots');
const LOGS = path.join(HERE, 'logs');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

// A name that exercises percent-encoding, HTML escaping and Content-Disposition's filename*.
const TRICKY_NAME = 'naïve "report" 1.txt';
const UPLOAD_NAME = 'données à envoyer 2024.bin';
const UPLOAD_SIZE = 200 * 1024;
const PART_SIZE = 5 * 1024 * 1024;

/**
 * The name Chromium gives a download called `name`: whatever the platform, it replaces the
 * characters that are illegal in a file name on any OS (`"*:<>?|/\\`, controls) with `_`,
 * so `naïve "report" 1.txt` is saved as `naïve _report_ 1.txt`.
 */
function chromiumSafeName(name) {
  return name.replace(/["*:<>?|/\\\u0000-\u001f\u007f]/g, '_');
}

/** A fresh `KEYID.SECRET`: 16 lowercase hex, then 32 random bytes as unpadded base64url. */
function freshToken() {
  return `${randomBytes(8).toString('hex')}.${randomBytes(32).toString('base64url')}`;
}

function requireExecutable(file, what, hint) {
  try {
    accessSync(file, fsConstants.X_OK);
  } catch {
    throw new Error(`${what} not found or not executable at ${file}. ${hint}`);
  }
}

/** Starts `once serve` on a free port; resolves once it prints its address. */
async function startServer() {
  requireExecutable(
    ONCE_BIN,
    'the once server binary',
    'Build it with `cargo build -p once` or set ONCE_BIN.',
  );
  const dataDir = await mkdtemp(path.join(tmpdir(), 'once-browser-'));
  const token = freshToken();
  // Hermetic: no ONCE_* setting of the caller (public URL, config file, ...) leaks in.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('ONCE_')),
  );
  env.ONCE_BOOTSTRAP_KEY = token;
  env.NO_COLOR = '1';
  // Small parts (S3's smallest), so a test file of a few MiB is uploaded in several.
  env.ONCE_UPLOAD_PART_SIZE = `${PART_SIZE}B`;
  const child = spawn(
    ONCE_BIN,
    ['serve', '--bind', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'data')],
    { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => log.push(chunk));
  child.stdout.setEncoding('utf8');

  const base = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      fail(new Error(`once did not print its address within 15 s; stdout: ${stdout}`));
    }, 15_000);
    function fail(error) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\nserver stderr:\n${log.join('').slice(-4000)}`));
    }
    child.on('error', fail);
    child.on('exit', (code, signal) =>
      fail(new Error(`once exited early (code ${code}, signal ${signal}); stdout: ${stdout}`)),
    );
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /once listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        resolve(match[1]);
      }
    });
  });
  child.stdout.on('data', (chunk) => log.push(chunk));

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await mkdir(LOGS, { recursive: true });
    await writeFile(path.join(LOGS, 'server.log'), log.join(''));
    await rm(dataDir, { recursive: true, force: true });
  }
  return { base, token, stop, log };
}

async function launchBrowser() {
  requireExecutable(
    CHROMIUM_BIN,
    'Chromium',
    'Install it with `apt-get update && apt-get install -y chromium` or set CHROMIUM_BIN.',
  );
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 20_000 });
}

describe('once in a real browser', { timeout: 60_000 }, () => {
  let server;
  let browser;

  before(async () => {
    // Both are started (and checked) here; a missing one fails every test below. Whatever did
    // start is kept so that `after` stops it (a stray Chromium would keep node alive).
    const [started, launched] = await Promise.allSettled([startServer(), launchBrowser()]);
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

  /** An authenticated API call; returns the fetch Response. */
  function api(method, route, { body, headers = {} } = {}) {
    return fetch(`${server.base}/api/v1${route}`, {
      method,
      body,
      headers: { authorization: `Bearer ${server.token}`, ...headers },
      redirect: 'manual',
    });
  }

  async function apiJson(method, route, options) {
    const response = await api(method, route, options);
    const text = await response.text();
    assert.ok(response.ok, `${method} ${route} answered ${response.status}: ${text}`);
    return JSON.parse(text);
  }

  /** Shares `content` under `filename` with the curl-style one-step upload. */
  async function share(filename, content) {
    const route = `/files/${encodeURIComponent(filename)}`;
    const response = await api('PUT', route, { body: content });
    const text = await response.text();
    assert.equal(response.status, 201, `PUT /api/v1${route} answered ${response.status}: ${text}`);
    const url = text.trim();
    const match = /\/s\/([A-Za-z0-9_-]+)$/.exec(url);
    assert.ok(match, `PUT answered no share link: ${JSON.stringify(text)}`);
    assert.ok(url.startsWith(`${server.base}/s/`), `share link ${url} is not on ${server.base}`);
    return { url, id: match[1] };
  }

  async function uploadRequest(maxSize = 1_000_000) {
    const response = await api('POST', '/requests', {
      body: JSON.stringify({ max_size: maxSize }),
      headers: { 'content-type': 'application/json' },
    });
    const text = await response.text();
    assert.equal(response.status, 201, `POST /api/v1/requests answered ${response.status}: ${text}`);
    const request = JSON.parse(text);
    assert.ok(request.id && request.url, `request without id or url: ${text}`);
    return request;
  }

  /** A fresh context and page; records script errors and CSP violations for `assertClean`. */
  async function openPage() {
    const context = await browser.newContext({
      acceptDownloads: true,
      viewport: { width: 900, height: 640 },
      locale: 'en-US',
    });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      const text = message.text();
      // A 4xx main document is logged as "Failed to load resource"; that is expected here.
      if (message.type() === 'error' && !/Failed to load resource/.test(text)) {
        page.problems.push(`console error: ${text}`);
      }
    });
    return { context, page };
  }

  function assertClean(page) {
    assert.deepEqual(page.problems, [], 'the page logged script errors or CSP violations');
  }

  async function waitForStatus(page, pattern, timeout = 15_000) {
    try {
      await page.waitForFunction(
        (source) => new RegExp(source).test(document.getElementById('status')?.textContent ?? ''),
        pattern.source,
        { timeout },
      );
    } catch (error) {
      const status = await page.locator('#status').textContent().catch(() => '(none)');
      throw new Error(`#status never matched ${pattern}; it says ${JSON.stringify(status)}`, {
        cause: error,
      });
    }
  }

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
        assert.equal(await page.title(), TRICKY_NAME);
        const meta = await page.locator('.meta').textContent();
        assert.match(meta, /KiB/, `size missing from ${JSON.stringify(meta)}`);
        assert.match(meta, /expires \d{4}-\d\d-\d\d/, `expiry missing from ${JSON.stringify(meta)}`);
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
      assert.equal(await page.locator('h1').textContent(), 'This link has been used up');
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
      assert.equal(await page.locator('h1').textContent(), 'Send a file');
      await page.setInputFiles('#file', {
        name: UPLOAD_NAME,
        mimeType: 'application/octet-stream',
        buffer: payload,
      });
      await page.click('#send');
      await waitForStatus(page, /Uploaded/);
      assert.equal(await page.locator('#progress').evaluate((bar) => bar.value), 1);
      assert.ok(await page.locator('#send').isDisabled(), 'Upload stays enabled after success');
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
      assert.equal(await page.locator('h1').textContent(), 'Already uploaded');
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
      await waitForStatus(page, /Uploaded/);
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
      await waitForStatus(page, /Uploaded/);
      await shot('upload-done.png');
      assertClean(page);
      for (const file of shots) assert.ok(existsSync(file), `${file} was not written`);
    } finally {
      await context.close();
    }
  });
});
