// A password on the web send page: the file sent with one opens byte for byte with
// `once get --password-file` and on the landing page with the password; a wrong password on
// either claims nothing; Argon2id is loaded only when a password is typed, so the page without
// one keeps its budget; an interrupted send keeps the salt, never the password, and asks for
// the password again before it goes on.
//
//   npm ci && ONCE_BIN=/path/to/once node --test send-password.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  PAGE_BUDGET,
  SMALL_PART_SIZE,
  STRINGS,
  assertClean,
  escapeRegExp,
  launchBrowser,
  openPage,
  pageWeight,
  runCli,
  sha256File,
  signIn,
  startOnce,
  startProxy,
  tempDir,
  waitForStatus,
  waitUntil,
  writeRandomFile,
} from './harness.mjs';

const PASSWORD = 'correct horse battery staple';
// The send page imports Argon2id through a redirect to the hashed asset; the browser reports
// the import under the URL it asked for.
const ARGON2 = /\/modules\/argon2\.js$|\/assets\/argon2\.[0-9a-f]+\.js$/;
const isPart = (request) => request.method === 'PUT' && new URL(request.url, 'http://x').pathname.startsWith('/b/part/');

describe('a password on the send page', { timeout: 300_000 }, () => {
  let server;
  let browser;
  let files;

  before(async () => {
    [server, browser, files] = await Promise.all([startOnce({ name: 'send-password' }), launchBrowser(), tempDir()]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  /** A signed-in send page on `base` (the server, or a proxy in front of it). */
  async function sendPage(base = server.base) {
    const opened = await openPage(browser);
    await signIn(opened.page, base, server.token);
    return opened;
  }

  /** Waits for the result panel; resolves to the link it shows. */
  async function linkWhenSent(page) {
    await page.waitForSelector('#result:not([hidden])', { timeout: 120_000 });
    return page.inputValue('#link');
  }

  const downloadsLeft = async (link) => {
    const id = new URL(link).pathname.split('/')[2];
    return (await server.apiJson('GET', `/shares/${id}`)).downloads_left;
  };

  /** `once get LINK --password-file` into a fresh folder; resolves to the folder and the run. */
  async function cliGet(link, password, name) {
    const dir = path.join(files, `get-${Math.random().toString(36).slice(2)}`);
    await mkdir(dir);
    const passwordFile = path.join(dir, '..', `${path.basename(dir)}.password`);
    await writeFile(passwordFile, `${password}\n`);
    const run = await runCli(server, dir, ['get', '-q', link, '--password-file', passwordFile]).then(
      (output) => ({ ok: true, ...output }),
      (error) => ({ ok: false, stderr: error.stderr }),
    );
    return { dir, run, saved: path.join(dir, name) };
  }

  it('sends with a password: once get and the landing page open it, wrong passwords claim nothing', async () => {
    const name = 'behind a password.bin';
    const original = path.join(files, name);
    const sha256 = await writeRandomFile(original, 3 * 65_536 + 5);
    const { context, page } = await sendPage();
    let link;
    try {
      // Nothing of Argon2id before a password is typed.
      assert.ok(!(await pageWeight(page)).scripts.some((url) => ARGON2.test(url)), 'argon2.js loaded without a password');
      await page.setInputFiles('#files', original);
      await page.fill('#downloads', '2');
      await page.fill('#send-password', PASSWORD);
      await page.fill('#send-password-again', PASSWORD);
      await page.click('#send');
      link = await linkWhenSent(page);
      const weight = await pageWeight(page);
      assert.ok(weight.scripts.some((url) => ARGON2.test(url)), `argon2.js not loaded: ${weight.scripts}`);
      assert.ok(await page.isVisible('#result-password'), 'the result does not say the link needs the password');
      assert.ok(!(await page.inputValue('#chat-line')).includes(PASSWORD), 'the chat line holds the password');
      assertClean(page);
    } finally {
      await context.close();
    }
    assert.match(link, /\/s\/[A-Za-z0-9_-]+#[A-Za-z0-9_-]{43}$/, `not an encrypted link: ${link}`);

    // The server keeps the CLI's parameters and a fresh 16-byte salt.
    const id = new URL(link).pathname.split('/')[2];
    const sealed = await (await fetch(`${server.base}/s/${id}/seal`)).json();
    assert.deepEqual({ ...sealed.password, salt: undefined }, { salt: undefined, memory_kib: 19456, iterations: 2, parallelism: 1 });
    assert.equal(Buffer.from(sealed.password.salt, 'base64url').length, 16);

    const wrongCli = await cliGet(link, 'wrong horse', name);
    assert.ok(!wrongCli.run.ok, 'once get took a wrong password');
    assert.match(wrongCli.run.stderr, /wrong password/);
    assert.equal(await downloadsLeft(link), 2, 'a wrong password on the CLI used the link');

    const { context: visit, page: landing } = await openPage(browser);
    try {
      await landing.goto(link);
      await landing.waitForSelector('#password-line:not([hidden])');
      await landing.fill('#password', 'wrong horse');
      await landing.click('#download');
      await landing.waitForSelector('#decrypt-problem:not([hidden])');
      assert.equal(await landing.textContent('#decrypt-problem'), STRINGS.decrypt_wrong);
      assert.equal(await downloadsLeft(link), 2, 'a wrong password on the landing page used the link');
      await landing.fill('#password', PASSWORD);
      const [download] = await Promise.all([landing.waitForEvent('download', { timeout: 60_000 }), landing.click('#download')]);
      assert.equal(download.suggestedFilename(), name);
      assert.equal(await download.failure(), null);
      assert.equal(await sha256File(await download.path()), sha256, 'the landing page saved other bytes');
      assertClean(landing);
    } finally {
      await visit.close();
    }
    assert.equal(await downloadsLeft(link), 1);

    const rightCli = await cliGet(link, PASSWORD, name);
    assert.ok(rightCli.run.ok, `once get failed: ${rightCli.run.stderr}`);
    assert.equal(await sha256File(rightCli.saved), sha256, 'once get wrote other bytes');
    assert.equal(await downloadsLeft(link), 0);
  });

  it('without a password the page loads no Argon2id and keeps its budget; the box off turns the fields off', async () => {
    const original = path.join(files, 'no password.txt');
    await writeFile(original, 'no password here\n');
    const { context, page } = await sendPage();
    try {
      assert.equal(await page.textContent('#password-hint'), STRINGS.send_password_hint);
      await page.uncheck('#encrypt');
      assert.ok(await page.isDisabled('#send-password'));
      assert.ok(await page.isDisabled('#send-password-again'));
      assert.equal(await page.textContent('#password-hint'), STRINGS.send_password_off);
      await page.check('#encrypt');
      assert.ok(!(await page.isDisabled('#send-password')));
      await page.setInputFiles('#files', original);
      await page.click('#send');
      const link = await linkWhenSent(page);
      assert.match(link, /#[A-Za-z0-9_-]{43}$/);
      const weight = await pageWeight(page);
      assert.ok(!weight.scripts.some((url) => ARGON2.test(url)), `argon2.js loaded without a password: ${weight.scripts}`);
      assert.ok(weight.bytes < PAGE_BUDGET, `the send page weighs ${weight.bytes} bytes`);
      assert.ok(await page.isHidden('#result-password'));
      const sealed = await (await fetch(`${server.base}/s/${new URL(link).pathname.split('/')[2]}/seal`)).json();
      assert.equal(sealed.password, undefined, 'a share without a password has password parameters');
      assertClean(page);
    } finally {
      await context.close();
    }
  });

  it('two different passwords send nothing', async () => {
    const original = path.join(files, 'typo.txt');
    await writeFile(original, 'typo\n');
    const before = (await server.apiJson('GET', '/shares')).shares.length;
    const { context, page } = await sendPage();
    try {
      await page.setInputFiles('#files', original);
      await page.fill('#send-password', PASSWORD);
      await page.fill('#send-password-again', `${PASSWORD}!`);
      await page.click('#send');
      await waitForStatus(page, STRINGS.password_mismatch);
      assert.ok(!(await page.isDisabled('#send')));
      assert.equal(await page.evaluate(() => document.activeElement.id), 'send-password-again');
      assertClean(page);
    } finally {
      await context.close();
    }
    assert.equal((await server.apiJson('GET', '/shares')).shares.length, before, 'a share was made');
  });

  it('an interrupted send keeps the salt, not the password, and asks for the password again', async () => {
    const size = 3 * SMALL_PART_SIZE + 4_321;
    const name = 'resume with a password.bin';
    const original = path.join(files, name);
    const sha256 = await writeRandomFile(original, size);
    // One part through, the rest held, so the reload cuts the upload at a known point.
    let partsLetThrough = 0;
    const proxy = await startProxy(server.base, { hold: (request) => isPart(request) && ++partsLetThrough > 1 });
    const { context, page } = await sendPage(proxy.url);
    let link;
    try {
      page.on('dialog', (dialog) => dialog.accept()); // "Leave the page?" on the reload
      await page.setInputFiles('#files', original);
      await page.fill('#send-password', PASSWORD);
      await page.fill('#send-password-again', PASSWORD);
      await page.click('#send');
      const firstParts = () => proxy.requests.filter((request) => isPart(request) && !request.held);
      await waitUntil(() => firstParts().length === 1 && firstParts()[0].status === 200 && proxy.requests.some((request) => request.held), 'one part stored, the rest held');
      await page.reload();
      await waitUntil(() => proxy.requests.filter((request) => request.held).every((request) => request.abandoned), 'the held parts given up by the reloaded page', 10_000);

      const stored = await page.evaluate(() => localStorage.getItem('once-uploads'));
      assert.ok(!stored.includes(PASSWORD), 'the resume record holds the password');
      const [record] = Object.values(JSON.parse(stored));
      assert.deepEqual(Object.keys(record.password).sort(), ['iterations', 'memory_kib', 'parallelism', 'salt']);
      assert.match(record.claim_key, /^[A-Za-z0-9_-]{43}$/);

      proxy.release();
      proxy.hold = isPart;
      const before = proxy.requests.length;
      // Picking the same file says that its send had a password; sending without one asks.
      await page.setInputFiles('#files', original);
      await waitForStatus(page, STRINGS.resume_password);
      await page.click('#send');
      // The same words as before the click: done once the form is back, on the password field.
      await page.waitForFunction(() => document.activeElement.id === 'send-password' && !document.getElementById('send').disabled);
      assert.equal(await page.textContent('#status'), STRINGS.resume_password);
      // A different password is not taken for it.
      await page.fill('#send-password', 'wrong horse');
      await page.fill('#send-password-again', 'wrong horse');
      await page.click('#send');
      await waitForStatus(page, STRINGS.resume_wrong_password);
      assert.equal(proxy.requests.slice(before).filter(isPart).length, 0, 'parts were sent without the right password');
      // The same one goes on from the stored part.
      await page.fill('#send-password', PASSWORD);
      await page.fill('#send-password-again', PASSWORD);
      await page.click('#send');
      await waitForStatus(page, new RegExp(`^${escapeRegExp(STRINGS.resuming)}`));
      proxy.release();
      link = await linkWhenSent(page);
      const resent = proxy.requests.slice(before).filter((request) => isPart(request) && request.status === 200);
      const sealed = size + 16 * Math.ceil(size / 65_536);
      assert.equal(resent.reduce((sum, part) => sum + part.bodyBytes, 0), sealed - SMALL_PART_SIZE);
      assertClean(page);
    } finally {
      await context.close();
      await proxy.stop();
    }
    const got = await cliGet(link.replace(proxy.url, server.base), PASSWORD, name);
    assert.ok(got.run.ok, `once get failed: ${got.run.stderr}`);
    assert.equal(await sha256File(got.saved), sha256, 'the resumed send is not the file');
    assert.ok((await readFile(got.saved)).length === size);
  });
});
