// The web app in a real browser, end to end: sign in, send (one file, a folder, resumed, through
// a proxy's body limit, onto S3), receive, upload to a request, link previews, my shares,
// accessibility (axe-core), page weight, page policy, and the screenshots in docs/screenshots.
//
//   npm ci && ONCE_BIN=/path/to/once node --test
//
// Needs the once binary, Chromium and s3s-fs (see harness.mjs); a missing one fails loudly.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  HERE,
  MiB,
  PAGE_BUDGET,
  REPO,
  SMALL_PART_SIZE,
  STRINGS,
  assertClean,
  escapeRegExp,
  fill,
  launchBrowser,
  openPage,
  pageWeight,
  s3Env,
  sha256File,
  signIn,
  startOnce,
  startProxy,
  startS3,
  tempDir,
  waitForStatus,
  waitUntil,
  watchProblems,
  writeRandomFile,
} from './harness.mjs';

const SCREENSHOTS = path.join(REPO, 'docs/screenshots');
const AXE_SOURCE = readFileSync(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');
const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const PREVIEW_BOTS = ['Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)', 'facebookexternalhit/1.1', 'Twitterbot/1.0'];

const isPart = (request) => request.method === 'PUT' && new URL(request.url, 'http://x').pathname.startsWith('/b/part/');

describe('the web app in a real browser', { timeout: 240_000 }, () => {
  let server;
  let browser;
  let files;

  before(async () => {
    const started = await Promise.allSettled([startOnce({ name: 'web' }), launchBrowser(), tempDir()]);
    [server, browser, files] = started.map((result) => result.value);
    const failures = started.filter((result) => result.status === 'rejected').map((result) => result.reason);
    if (failures.length) throw new AggregateError(failures, failures.map((failure) => failure.message).join('\n'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  // ---- steps the tests share ----------------------------------------------------------------

  async function signedInPage(base = server.base, token = server.token, options = {}) {
    const opened = await openPage(browser, options);
    await signIn(opened.page, base, token);
    return opened;
  }

  /** Picks `chosen` (a file path, or a folder with `folder`) on the send page and sends it. */
  async function send(page, chosen, { folder = false, timeout = 120_000 } = {}) {
    await page.setInputFiles(folder ? '#folder' : '#files', chosen);
    await page.click('#send');
    return linkWhenSent(page, timeout);
  }

  /** Waits for the send page's result panel; resolves to the share link it shows. */
  async function linkWhenSent(page, timeout = 120_000) {
    const failed = STRINGS.failed.split('{reason}')[0];
    try {
      await page.waitForFunction(
        (failed) => !document.getElementById('result').hidden || document.getElementById('status').textContent.startsWith(failed),
        failed,
        { timeout, polling: 100 },
      );
    } catch (error) {
      const status = await page.locator('#status').textContent().catch(() => '(none)');
      throw new Error(`no link after sending; the status says ${JSON.stringify(status)}`, { cause: error });
    }
    if (await page.locator('#result').isHidden()) {
      throw new Error(`no link after sending; the status says ${JSON.stringify(await page.locator('#status').textContent())}`);
    }
    const link = await page.inputValue('#link');
    assert.match(link, /\/s\/[A-Za-z0-9_-]+/, `the result shows no share link: ${link}`);
    return link;
  }

  /**
   * Opens `link` in a fresh context (a recipient: no session), presses Download and waits
   * for the file. Resolves to what was saved and its SHA-256; `context` is still open.
   */
  async function receive(link, expectedName) {
    const { context, page } = await openPage(browser);
    // Where the bytes came from: a navigation for a plain share; for an encrypted one the
    // download worker's fetch of the ciphertext (the context sees its service workers' requests).
    const fetched = [];
    context.on('request', (request) => fetched.push(request.url()));
    const landing = await page.goto(link);
    assert.equal(landing.status(), 200, `the landing page of ${link}`);
    // An encrypted share's name is sealed: the page's script shows it once it has opened it.
    if (expectedName) {
      await page.waitForFunction((name) => document.querySelector('h1').textContent === name, expectedName, { timeout: 30_000 });
    }
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.click('#download')]);
    const file = await download.path();
    assert.equal(await download.failure(), null, 'the download failed');
    assert.ok(await page.locator('#claimed').isVisible(), 'the page does not say the download started');
    const source = fetched.find((url) => url.includes('/b/dl/') || !url.startsWith(new URL(link).origin)) || download.url();
    return { context, page, download, file, source, sha256: await sha256File(file) };
  }

  async function expectProblemPage(page, link, status, title) {
    // A fresh document: going to the page's own URL again would only move to its fragment.
    await page.goto('about:blank');
    const response = await page.goto(link);
    assert.equal(response.status(), status, `GET ${link}`);
    assert.equal(await page.locator('h1').textContent(), title);
    assert.equal(await page.locator('#download').count(), 0, 'a problem page offers Download');
  }

  /** Sends a file of `size` random bytes from the send page on `base`, downloads it, checks it. */
  async function sendAndReceive({ base, token, name, size }) {
    const original = path.join(files, name);
    const sha256 = await writeRandomFile(original, size);
    const sender = await signedInPage(base, token);
    let link;
    try {
      link = await send(sender.page, original);
      assertClean(sender.page);
    } finally {
      await sender.context.close();
    }
    const recipient = await receive(link, name);
    try {
      assert.equal(recipient.download.suggestedFilename(), name);
      assert.equal(recipient.sha256, sha256, 'the downloaded bytes differ from the sent ones');
      await expectProblemPage(recipient.page, link, 410, STRINGS.used_title);
      assertClean(recipient.page);
      return { link, download: recipient.source };
    } finally {
      await recipient.context.close();
      await rm(original, { force: true });
    }
  }

  // ---- 1. send and receive ------------------------------------------------------------------

  it('signs in, sends 50 MiB from the send page; the recipient downloads those bytes once', async () => {
    const { download } = await sendAndReceive({ base: server.base, token: server.token, name: 'fifty.bin', size: 50 * MiB });
    assert.ok(download.startsWith(`${server.base}/b/dl/`), `downloaded from ${download}`);
  });

  describe('on the S3 store (s3s-fs behind the CORS rule of docs/storage.md)', () => {
    let s3;
    let bucket;
    let s3Server;

    before(async () => {
      s3 = await startS3();
      // The bucket's CORS rule, played by a proxy: s3s-fs has none of its own. Its origin is
      // the server's, known once that has started on the proxy's endpoint.
      bucket = await startProxy(s3.endpoint, { cors: { origin: 'unset' } });
      s3Server = await startOnce({ name: 'web-s3', env: s3Env(bucket.url) });
      bucket.cors.origin = s3Server.base;
    });

    after(async () => {
      await s3Server?.stop();
      await bucket?.stop();
      await s3?.stop();
    });

    it('sends 50 MiB straight to the bucket in parts; the recipient downloads them from it once', async () => {
      const { download } = await sendAndReceive({ base: s3Server.base, token: s3Server.token, name: 'fifty on s3.bin', size: 50 * MiB });
      // The bytes went to the bucket and came from it, not through the server.
      // Encrypted (the page's default): 16 bytes of tag per 64 KiB record, so 11 parts.
      const sealed = 50 * MiB + 16 * ((50 * MiB) / 65_536);
      const parts = bucket.requests.filter((request) => request.method === 'PUT' && /[?&]partNumber=/.test(request.url));
      assert.equal(parts.length, 11, `expected 11 parts of up to 5 MiB, the bucket saw ${parts.length}`);
      assert.ok(parts.every((part) => part.status === 200), JSON.stringify(parts));
      assert.equal(parts.reduce((sum, part) => sum + part.bodyBytes, 0), sealed);
      assert.ok(bucket.requests.some((request) => request.method === 'OPTIONS' && request.status === 200), 'no CORS preflight');
      assert.ok(download.startsWith(`${bucket.url}/`), `downloaded from ${download}, not the bucket`);
    });
  });

  // ---- 2. a folder --------------------------------------------------------------------------

  it('sends a folder of three files (one in a subfolder) as one ZIP archive', async () => {
    const folder = path.join(files, 'holiday');
    await mkdir(path.join(folder, 'photos'), { recursive: true });
    const contents = {
      'holiday/notes.txt': Buffer.from('Bring sun cream.\n'),
      'holiday/tickets.bin': randomBytes(300_000),
      'holiday/photos/beach.jpg': randomBytes(120_000),
    };
    for (const [name, bytes] of Object.entries(contents)) await writeFile(path.join(files, name), bytes);
    const sender = await signedInPage();
    let link;
    try {
      await sender.page.setInputFiles('#folder', folder);
      assert.match(await sender.page.locator('#picked').textContent(), /^3 files/);
      link = await send(sender.page, folder, { folder: true });
      // The archive writer is loaded only now; with it the send page still keeps its budget.
      const weight = await pageWeight(sender.page);
      assert.ok(weight.scripts.some((name) => /\/zip\.[0-9a-f]+\.js$/.test(name)), `zip.js not loaded: ${weight.scripts}`);
      assert.ok(weight.bytes < PAGE_BUDGET, `the send page with its archive writer weighs ${weight.bytes} bytes`);
      assertClean(sender.page);
    } finally {
      await sender.context.close();
    }
    const recipient = await receive(link, 'holiday.zip');
    try {
      const listed = await recipient.page.locator('#contents li').allTextContents();
      for (const name of Object.keys(contents)) {
        assert.ok(listed.some((entry) => entry.startsWith(name)), `${name} not listed on the landing page: ${listed}`);
      }
      const checked = await promisify(execFile)('python3', [
        '-c',
        `import json, os, sys, zipfile
archive = zipfile.ZipFile(sys.argv[1])
root = sys.argv[2]
files = sorted(info.filename for info in archive.infolist() if not info.is_dir())
same = {name: archive.read(name) == open(os.path.join(root, name), 'rb').read() for name in files}
print(json.dumps({"files": files, "same": same, "bad": archive.testzip()}))`,
        recipient.file,
        files,
      ]);
      const report = JSON.parse(checked.stdout);
      assert.deepEqual(report.files, Object.keys(contents).sort(), `the archive holds ${report.files}`);
      assert.ok(Object.values(report.same).every(Boolean), `files differ: ${JSON.stringify(report.same)}`);
      assert.equal(report.bad, null, `zipfile's CRC check failed on ${report.bad}`);
      assertClean(recipient.page);
    } finally {
      await recipient.context.close();
    }
  });

  // ---- 3. resume and a proxy's body limit -----------------------------------------------------

  it('resumes an upload cut by a page reload from the parts the server already has', async () => {
    const size = 7 * SMALL_PART_SIZE + 1_234_567;
    const name = 'resume me.bin';
    const original = path.join(files, name);
    const sha256 = await writeRandomFile(original, size);
    // The page goes through a proxy that lets three parts through and holds the rest, so the
    // reload cuts the upload at a known point however fast this machine is.
    let partsLetThrough = 0;
    const proxy = await startProxy(server.base, {
      hold: (request) => isPart(request) && ++partsLetThrough > 3,
    });
    const { context, page } = await signedInPage(proxy.url);
    try {
      page.on('dialog', (dialog) => dialog.accept()); // "Leave the page?" on the reload
      await page.setInputFiles('#files', original);
      await page.click('#send');
      const firstParts = () => proxy.requests.filter((request) => isPart(request) && !request.held);
      await waitUntil(() => firstParts().length === 3 && firstParts().every((part) => part.status === 200) && proxy.requests.some((request) => request.held), 'three parts stored, the rest held');
      await page.reload();
      await waitUntil(() => proxy.requests.filter((request) => request.held).every((request) => request.abandoned), 'the held parts given up by the reloaded page', 10_000);
      const before = proxy.requests.length;

      // The same file again: the page finds its record and asks the server what it has. Its
      // parts are held until the page has said that it resumes.
      proxy.release();
      proxy.hold = isPart;
      await page.setInputFiles('#files', original);
      await page.click('#send');
      await waitForStatus(page, new RegExp(`^${escapeRegExp(STRINGS.resuming)}`));
      proxy.release();
      const link = await linkWhenSent(page);
      const resent = proxy.requests.slice(before).filter((request) => isPart(request) && request.status === 200);
      const resentBytes = resent.reduce((sum, part) => sum + part.bodyBytes, 0);
      // Encrypted (the default): the ciphertext is 16 bytes per 64 KiB record longer, and the
      // resumed parts are sealed again to the same bytes.
      const sealed = size + 16 * Math.ceil(size / 65_536);
      assert.equal(resentBytes, sealed - 3 * SMALL_PART_SIZE, `the second attempt sent ${resentBytes} of ${sealed} bytes`);
      assertClean(page);

      const recipient = await receive(link, name);
      try {
        assert.equal(recipient.sha256, sha256, 'the resumed upload is not the file');
      } finally {
        await recipient.context.close();
      }
    } finally {
      await context.close();
      await proxy.stop();
      await rm(original, { force: true });
    }
  });

  describe('behind a reverse proxy that refuses bodies over 100 MB', () => {
    let limited;
    let proxy;

    before(async () => {
      // The server's default part size (64 MiB): what has to pass a common proxy limit.
      limited = await startOnce({ name: 'web-default-parts', partSize: null });
      proxy = await startProxy(limited.base, { maxBody: 100_000_000 });
    });

    after(async () => {
      await limited?.stop();
      await proxy?.stop();
    });

    it('the proxy does refuse a body over its limit', async () => {
      const status = await new Promise((resolve, reject) => {
        const request = http.request(`${proxy.url}/api/v1/files/big.bin`, {
          method: 'PUT',
          headers: { 'content-length': '100000001', authorization: `Bearer ${limited.token}` },
        });
        request.on('response', (response) => {
          response.resume();
          resolve(response.statusCode);
        });
        request.on('error', reject);
        request.flushHeaders();
      });
      assert.equal(status, 413);
    });

    it('sends 300 MiB from the page in parts that pass the limit, byte-identical after download', async () => {
      const size = 300 * MiB;
      const original = path.join(files, 'three hundred.bin');
      const sha256 = await writeRandomFile(original, size);
      try {
        const sender = await signedInPage(proxy.url, limited.token);
        let link;
        try {
          link = await send(sender.page, original, { timeout: 180_000 });
          assertClean(sender.page);
        } finally {
          await sender.context.close();
        }
        assert.ok(link.startsWith(`${proxy.url}/s/`), `the link ${link} is not on the proxy's address`);
        assert.deepEqual(proxy.requests.filter((request) => request.status === 413 && request.url !== '/api/v1/files/big.bin'), []);
        const parts = proxy.requests.filter(isPart);
        assert.equal(parts.length, 5, `expected 5 parts of at most 64 MiB, saw ${parts.length}`);
        assert.ok(parts.every((part) => part.status === 200 && part.bodyBytes <= 64 * MiB), JSON.stringify(parts));
        const recipient = await receive(link, 'three hundred.bin');
        try {
          assert.equal(recipient.sha256, sha256, 'the downloaded bytes differ from the sent ones');
        } finally {
          await recipient.context.close();
        }
      } finally {
        await rm(original, { force: true });
      }
    });
  });

  // ---- 4. a request's upload page -------------------------------------------------------------

  it('an upload page used with a double click on Upload stores exactly one upload', async () => {
    const request = await server.uploadRequest({ max_size: 20 * MiB });
    const payload = randomBytes(6 * MiB);
    const { context, page } = await openPage(browser);
    try {
      const response = await page.goto(request.url);
      assert.equal(response.status(), 200, `GET ${request.url}`);
      assert.equal(await page.locator('h1').textContent(), STRINGS.request_someone);
      const starts = [];
      page.on('request', (sent) => {
        if (sent.method() === 'POST' && /\/r\/[^/]+\/uploads$/.test(new URL(sent.url()).pathname)) starts.push(sent.url());
      });
      await page.setInputFiles('#file', { name: 'scan.pdf', mimeType: 'application/pdf', buffer: payload });
      await page.dblclick('#send');
      await waitForStatus(page, fill(STRINGS.request_done, { name: 'scan.pdf' }));
      assert.equal(starts.length, 1, `the double click started ${starts.length} uploads`);
      assertClean(page);

      const view = await server.apiJson('GET', `/requests/${request.id}`);
      assert.equal(view.state, 'fulfilled', JSON.stringify(view));
      assert.equal(view.refused_uploads, 0, JSON.stringify(view));
      assert.equal(view.share.size, payload.length, JSON.stringify(view.share));
      assert.ok((await server.claim(view.share.url)).equals(payload), 'the stored upload is not the file');

      await expectProblemPage(page, request.url, 409, STRINGS.request_used_title);
      assert.equal(await page.locator('#file').count(), 0, 'a used upload page still takes a file');
    } finally {
      await context.close();
    }
  });

  // ---- 5. previews consume nothing ------------------------------------------------------------

  it('the landing page, a Chrome GET with Accept */* and preview bots consume nothing', async () => {
    const content = randomBytes(100_000);
    const name = 'preview me.bin';
    const { url, id } = await server.share(name, content);
    const { context, page } = await openPage(browser);
    try {
      assert.equal((await page.goto(url)).status(), 200);
      assert.equal(await page.locator('h1').textContent(), name);
    } finally {
      await context.close();
    }
    // Plain HTTP requests with exactly these headers (Node's fetch would add Sec-Fetch-Mode,
    // which on its own marks a browser).
    const chrome = await get(url, { 'user-agent': CHROME_UA, accept: '*/*' });
    assert.equal(chrome.status, 200, 'a Chrome GET with Accept */*');
    assert.match(chrome.headers['content-type'] ?? '', /^text\/html/);
    assert.ok(chrome.body.includes('id="download"'), 'a Chrome GET does not get the landing page');
    for (const bot of PREVIEW_BOTS) {
      const preview = await get(url, { 'user-agent': bot, accept: '*/*' });
      assert.equal(preview.status, 200, bot);
      assert.ok(preview.body.includes(`content="${STRINGS.preview_title}"`), `${bot} got no preview card`);
      assert.ok(!preview.body.includes(name), `${bot} was told the file name`);
    }
    const head = await get(url, { 'user-agent': 'curl/8.5.0' }, 'HEAD');
    assert.equal(head.status, 200, 'HEAD');

    const view = await server.apiJson('GET', `/shares/${id}`);
    assert.equal(view.downloads_left, 1, JSON.stringify(view));
    assert.equal(view.availability, 'available', JSON.stringify(view));
    assert.ok(view.preview_hits >= 2 + PREVIEW_BOTS.length, `preview_hits: ${JSON.stringify(view)}`);
    const recipient = await receive(url, name);
    try {
      assert.ok(readFileSync(recipient.file).equals(content), 'the link does not download the file any more');
    } finally {
      await recipient.context.close();
    }
  });

  // ---- 6. my shares ---------------------------------------------------------------------------

  it('revoking a share on My shares makes its link say it was withdrawn', async () => {
    const { url, id } = await server.share('withdraw me.txt', Buffer.from('not for you after all\n'));
    const { context, page } = await signedInPage();
    try {
      assert.equal((await page.goto(`${server.base}/shares`)).status(), 200);
      const row = page.locator(`tr[data-share="${id}"]`);
      assert.equal(await row.locator('.state').textContent(), STRINGS.state_active);
      let asked = null;
      page.once('dialog', async (dialog) => {
        asked = { type: dialog.type(), message: dialog.message() };
        await dialog.accept();
      });
      await row.locator('button[data-revoke]').click();
      await page.waitForFunction((share) => document.querySelector(`tr[data-share="${share}"] .state`)?.dataset.state === 'revoked', id);
      assert.deepEqual(asked, { type: 'confirm', message: STRINGS.revoke_confirm });
      assert.equal(await row.locator('.state').textContent(), STRINGS.state_revoked);
      assert.equal(await row.locator('button[data-revoke]').count(), 0, 'a revoked share can still be revoked');
      assert.equal((await server.apiJson('GET', `/shares/${id}`)).availability, 'revoked');
      assertClean(page);
    } finally {
      await context.close();
    }
    const recipient = await openPage(browser);
    try {
      await expectProblemPage(recipient.page, url, 410, STRINGS.revoked_title);
      assertClean(recipient.page);
    } finally {
      await recipient.context.close();
    }
  });

  it('the form on My shares makes an upload request with the settings given', async () => {
    const { context, page } = await signedInPage();
    let url;
    try {
      assert.equal((await page.goto(`${server.base}/shares`)).status(), 200);
      await page.click('#new-request summary');
      await page.fill('#request-filename', 'tax return.pdf');
      await page.fill('#request-max', '2');
      await page.fill('#request-hours', '3');
      await page.click('#request-form button[type=submit]');
      await page.waitForSelector('#request-result:not([hidden])');
      assert.equal(await page.locator('#request-status').textContent(), STRINGS.request_link_ready);
      url = await page.inputValue('#request-link');
      assertClean(page);
    } finally {
      await context.close();
    }
    const id = /\/r\/([A-Za-z0-9_-]+)$/.exec(url)?.[1];
    assert.ok(id, `the form made no upload link: ${url}`);
    const view = await server.apiJson('GET', `/requests/${id}`);
    assert.equal(view.state, 'open', JSON.stringify(view));
    assert.equal(view.filename, 'tax return.pdf', JSON.stringify(view));
    assert.equal(view.max_size, 2 * MiB, JSON.stringify(view));
    const hoursOpen = (Date.parse(view.expires_at) - Date.now()) / 3_600_000;
    assert.ok(hoursOpen > 2.9 && hoursOpen <= 3, `open for ${hoursOpen} hours`);
    const uploader = await openPage(browser);
    try {
      assert.equal((await uploader.page.goto(url)).status(), 200);
      assert.ok((await uploader.page.locator('main').textContent()).includes(fill(STRINGS.request_fixed_name, { name: 'tax return.pdf' })));
      assertClean(uploader.page);
    } finally {
      await uploader.context.close();
    }
  });

  // ---- 7 and 8: every page --------------------------------------------------------------------

  describe('every page', () => {
    // A server of its own, so My shares (and its screenshot) shows what this tour made, whatever
    // ran before.
    let site;
    before(async () => {
      site = await startOnce({ name: 'web-tour' });
    });
    after(async () => {
      await site?.stop();
    });

    let tour = null;
    /** Every page the app has, with the state each needs, made once for the tests below. */
    async function pagesToVisit() {
      if (tour) return tour;
      const landing = await site.share('quarterly report.pdf', randomBytes(1536 * 1024));
      const used = await site.share('used.txt', Buffer.from('read once\n'));
      await site.claim(used.url);
      const revoked = await site.share('withdrawn.txt', Buffer.from('withdrawn\n'));
      await site.apiJson('DELETE', `/shares/${revoked.id}`);
      const request = await site.uploadRequest({ max_size: 50 * MiB, filename: 'signed contract.pdf' });
      const usedRequest = await site.uploadRequest({ max_size: 1000 });
      const put = await fetch(usedRequest.url, { method: 'PUT', body: 'done', headers: { 'user-agent': 'curl/8.5.0' } });
      assert.ok(put.ok, `uploading to ${usedRequest.url}: ${put.status}`);
      const small = path.join(files, 'minutes.txt');
      await writeFile(small, 'Minutes of the meeting.\n');
      const base = site.base;
      tour = [
        { name: 'signin', url: `${base}/`, signedIn: false, status: 200, title: STRINGS.signin_title },
        { name: 'send', url: `${base}/`, status: 200, title: STRINGS.send_title },
        {
          name: 'send-result',
          url: `${base}/`,
          status: 200,
          title: STRINGS.send_title,
          after: async (page) => {
            await send(page, small);
            // The QR code is drawn by a module loaded on demand: wait for it, so it is weighed.
            await page.waitForFunction(() => performance.getEntriesByType('resource').some((entry) => /\/qr\.[0-9a-f]+\.js$/.test(entry.name)));
            await page.waitForFunction(() => document.getElementById('qr').width !== 300 || document.getElementById('qr').hidden);
            assert.ok(await page.locator('#qr').isVisible(), 'no QR code of the link');
          },
        },
        { name: 'landing', url: landing.url, status: 200, title: 'quarterly report.pdf' },
        { name: 'used', url: used.url, status: 410, title: STRINGS.used_title },
        { name: 'revoked', url: revoked.url, status: 410, title: STRINGS.revoked_title },
        { name: 'unknown', url: `${base}/s/${randomBytes(16).toString('base64url')}`, status: 404, title: STRINGS.unknown_title },
        { name: 'not-found', url: `${base}/no/such/page`, status: 404, title: STRINGS.page_missing_title },
        { name: 'request', url: request.url, status: 200, title: STRINGS.request_someone },
        { name: 'request-used', url: usedRequest.url, status: 409, title: STRINGS.request_used_title },
        { name: 'shares', url: `${base}/shares`, status: 200, title: STRINGS.shares_title },
      ];
      return tour;
    }

    /**
     * Visits every page (or those named in `only`) in one context, signing in after the sign-in
     * page, and calls `check` on each; `setup` prepares the context's page first.
     */
    async function visitAll(context, check, { only = null, setup = null } = {}) {
      const page = await context.newPage();
      watchProblems(page);
      if (setup) await setup(page);
      for (const visit of await pagesToVisit()) {
        if (only && !only.includes(visit.name)) continue;
        if (visit.signedIn !== false && !page.signedIn) {
          await signIn(page, site.base, site.token);
          page.signedIn = true;
        }
        const response = await page.goto(visit.url);
        assert.equal(response.status(), visit.status, `${visit.name}: GET ${visit.url}`);
        assert.equal(await page.locator('h1').first().textContent(), visit.title, visit.name);
        if (visit.after) await visit.after(page);
        await check(page, visit, response);
      }
      return page;
    }

    it('every page weighs under 100 KiB, has a strict policy and logs no errors; screenshots', async () => {
      await mkdir(SCREENSHOTS, { recursive: true });
      const desktop = { width: 1280, height: 800 };
      const phone = { width: 390, height: 844 };
      async function screenshots(page, name) {
        for (const [size, viewport] of [['desktop', desktop], ['phone', phone]]) {
          await page.setViewportSize(viewport);
          const png = await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${size}.png`), fullPage: true });
          assert.ok(png.length > 3_000 && png.length < 400_000, `${name}-${size}.png is ${png.length} bytes`);
        }
        await page.setViewportSize(desktop);
      }

      const light = await browser.newContext({ viewport: desktop, locale: 'en-US', acceptDownloads: true });
      const dark = await browser.newContext({ viewport: desktop, locale: 'en-US', colorScheme: 'dark' });
      try {
        const weights = {};
        const page = await visitAll(light, async (page, visit, response) => {
          const policy = response.headers()['content-security-policy'] ?? '';
          assert.match(policy, /default-src 'none'/, `${visit.name}: Content-Security-Policy ${policy}`);
          assert.match(policy, /script-src 'self'/, `${visit.name}: Content-Security-Policy ${policy}`);
          assert.ok(!policy.includes('unsafe-inline'), `${visit.name}: ${policy}`);
          // Everything the page loaded but its API calls and uploads, as sent over the wire
          // (the cache is off for this page, so shared assets count on every page).
          weights[visit.name] = (await pageWeight(page)).bytes;
          assert.ok(weights[visit.name] > 1000, `${visit.name}: transfer sizes not measured (${weights[visit.name]})`);
          assert.ok(weights[visit.name] < PAGE_BUDGET, `${visit.name} weighs ${weights[visit.name]} bytes`);
          await screenshots(page, visit.name);
          assertClean(page);
        }, {
          // Routing every request through Playwright turns Chromium's cache off.
          setup: (page) => page.route('**/*', (route) => route.continue()),
        });
        assertClean(page);
        console.log(`page weights (bytes): ${JSON.stringify(weights)}`);
        const darkPage = await visitAll(dark, async (page, visit) => {
          await screenshots(page, `${visit.name}-dark`);
          assertClean(page);
        }, { only: ['send'] });
        assertClean(darkPage);
      } finally {
        await light.close();
        await dark.close();
      }
    });

    it('axe-core finds no serious or critical violation on any page, light or dark', async () => {
      const found = [];
      for (const colorScheme of ['light', 'dark']) {
        // The pages' policy forbids inline scripts, and axe is injected as one: these contexts
        // alone bypass it.
        const context = await browser.newContext({ bypassCSP: true, colorScheme, locale: 'en-US', viewport: { width: 1280, height: 800 } });
        try {
          const last = await visitAll(context, async (page, visit) => {
            const dark = await page.evaluate(() => window.matchMedia('(prefers-color-scheme: dark)').matches);
            assert.equal(dark, colorScheme === 'dark', `${visit.name} is not in ${colorScheme} mode`);
            await page.addScriptTag({ content: AXE_SOURCE });
            const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
            assert.ok(result.passes.some((rule) => rule.id === 'color-contrast'), `${visit.name}: axe checked no contrast`);
            for (const violation of result.violations) {
              if (!['serious', 'critical'].includes(violation.impact)) continue;
              found.push({
                page: visit.name,
                colorScheme,
                rule: violation.id,
                impact: violation.impact,
                help: violation.help,
                nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary}`),
              });
            }
          });
          // A canary: axe, as run here, does report a text nobody can read.
          const canary = await last.evaluate(async () => {
            const text = document.createElement('p');
            text.id = 'axe-canary';
            text.textContent = 'grey on grey';
            text.style.color = '#999';
            text.style.background = '#aaa';
            document.querySelector('main').append(text);
            const result = await window.axe.run('#axe-canary', { runOnly: ['color-contrast'] });
            text.remove();
            return result.violations.map((violation) => `${violation.id}: ${violation.impact}`);
          });
          assert.deepEqual(canary, ['color-contrast: serious'], 'axe missed the low-contrast canary');
        } finally {
          await context.close();
        }
      }
      assert.deepEqual(found, [], `axe found serious or critical violations:\n${JSON.stringify(found, null, 2)}`);
    });
  });
});

// ---- small helpers ------------------------------------------------------------------------------

/** One HTTP request with exactly `headers` (nothing added); resolves to status, headers, body. */
function get(url, headers, method = 'GET') {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
    request.end();
  });
}
