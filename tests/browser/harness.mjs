// The shared harness of the browser tests: `once serve` on a random loopback port with a fresh
// data directory and a bootstrap key, headless Debian Chromium through playwright-core,
// s3s-fs as the S3-compatible store, and small Node proxies that stand in for what sits between
// a browser and `once` in production (a bucket's CORS rule, a reverse proxy's body limit).
//
// Nothing here skips: a missing binary (once, Chromium, s3s-fs) throws with how to get it.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { once as eventOnce } from 'node:events';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
export const ONCE_BIN = process.env.ONCE_BIN
  ? path.resolve(process.env.ONCE_BIN)
  : path.join(REPO, 'target/debug/once');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const S3S_FS_BIN = process.env.ONCE_S3S_FS || path.join(homedir(), '.cargo/bin/s3s-fs');
export const LOGS = path.join(HERE, 'logs');

export const MiB = 1024 * 1024;
/** The smallest part S3 takes: a test file of a few MiB goes in several parts. */
export const SMALL_PART_SIZE = 5 * MiB;

/** What a page and everything it loads (not its fetches) may weigh. */
export const PAGE_BUDGET = 100 * 1024;

/** Bytes the page and what it loaded took (fetches left out), and the scripts among them. */
export function pageWeight(page) {
  return page.evaluate(() => {
    const loaded = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
      .filter((entry) => !['fetch', 'xmlhttprequest', 'beacon'].includes(entry.initiatorType));
    return {
      bytes: loaded.reduce((sum, entry) => sum + entry.transferSize, 0),
      scripts: loaded.filter((entry) => entry.initiatorType === 'script').map((entry) => entry.name),
    };
  });
}

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

// ---- the pages' own strings ------------------------------------------------------------------

/**
 * The English strings table of crates/server/src/http/web/strings.rs, so the tests expect the
 * texts the pages really show and a reworded string does not need the tests edited.
 */
export const STRINGS = (() => {
  const source = readFileSync(path.join(REPO, 'crates/server/src/http/web/strings.rs'), 'utf8');
  const start = source.indexOf('pub static ENGLISH: Strings = Strings {');
  assert.ok(start >= 0, 'strings.rs has no ENGLISH table');
  const table = source.slice(start, source.indexOf('\n};', start));
  const strings = {};
  for (const [, name, text] of table.matchAll(/^\s*(\w+): "((?:[^"\\]|\\.)*)",$/gm)) {
    strings[name] = text.replace(/\\(.)/g, '$1');
  }
  assert.ok(strings.used_title && strings.request_done, 'could not read strings.rs');
  return strings;
})();

/** A string with its {placeholders} filled, by the rule app.js and strings.rs follow. */
export function fill(text, values = {}) {
  return Object.entries(values).reduce((filled, [key, value]) => filled.split(`{${key}}`).join(String(value)), text);
}

// ---- processes -------------------------------------------------------------------------------

export function requireExecutable(file, what, hint) {
  try {
    accessSync(file, fsConstants.X_OK);
  } catch {
    throw new Error(`${what} not found or not executable at ${file}. ${hint}`);
  }
}

/** A fresh `KEYID.SECRET`: 16 lowercase hex, then 32 random bytes as unpadded base64url. */
export function freshToken() {
  return `${randomBytes(8).toString('hex')}.${randomBytes(32).toString('base64url')}`;
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = eventOnce(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `once serve` on 127.0.0.1, a free port, a fresh data directory and a bootstrap key.
 * `partSize` sets ONCE_UPLOAD_PART_SIZE (null: the server's default); `env` adds settings
 * (e.g. an S3 store). Resolves once the server prints its address.
 */
export async function startOnce({ name = 'server', env: extra = {}, partSize = SMALL_PART_SIZE } = {}) {
  requireExecutable(ONCE_BIN, 'the once server binary', 'Build it with `cargo build -p once` or set ONCE_BIN.');
  const dir = await mkdtemp(path.join(tmpdir(), 'once-browser-'));
  const token = freshToken();
  // Hermetic: no ONCE_* or AWS_* setting of the caller (public URL, config file, ...) leaks in.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('ONCE_') && !key.startsWith('AWS_')),
  );
  env.ONCE_BOOTSTRAP_KEY = token;
  env.NO_COLOR = '1';
  // No reaper unless a test asks for one: it would turn shares into tombstones mid-test.
  env.ONCE_REAP_INTERVAL = '0s';
  if (partSize !== null) env.ONCE_UPLOAD_PART_SIZE = `${partSize}B`;
  Object.assign(env, extra);
  const child = spawn(ONCE_BIN, ['serve', '--bind', '127.0.0.1:0', '--data-dir', path.join(dir, 'data')], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => log.push(chunk));
  child.stdout.setEncoding('utf8');

  const base = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`once did not print its address within 15 s; stdout: ${stdout}`)), 15_000);
    function fail(error) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\nserver stderr:\n${log.join('').slice(-4000)}`));
    }
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`once exited early (code ${code}, signal ${signal}); stdout: ${stdout}`)));
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
  return new OnceServer({ base, token, child, dir, log, name });
}

/** A running `once serve` and helpers for its API, called with the bootstrap key. */
class OnceServer {
  constructor({ base, token, child, dir, log, name }) {
    Object.assign(this, { base, token, child, dir, log, name });
  }

  async stop() {
    await stopChild(this.child);
    await mkdir(LOGS, { recursive: true });
    await writeFile(path.join(LOGS, `${this.name}.log`), this.log.join(''));
    await rm(this.dir, { recursive: true, force: true });
  }

  /** An authenticated API call; returns the fetch Response. */
  api(method, route, { body, headers = {} } = {}) {
    return fetch(`${this.base}/api/v1${route}`, {
      method,
      body,
      headers: { authorization: `Bearer ${this.token}`, ...headers },
      redirect: 'manual',
    });
  }

  async apiJson(method, route, body) {
    const options = body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
    const response = await this.api(method, route, options);
    const text = await response.text();
    assert.ok(response.ok, `${method} /api/v1${route} answered ${response.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** Shares `content` under `filename` with the curl-style one-step upload. */
  async share(filename, content, headers = {}) {
    const route = `/files/${encodeURIComponent(filename)}`;
    const response = await this.api('PUT', route, { body: content, headers });
    const text = await response.text();
    assert.equal(response.status, 201, `PUT /api/v1${route} answered ${response.status}: ${text}`);
    const url = text.trim();
    const match = /\/s\/([A-Za-z0-9_-]+)$/.exec(url);
    assert.ok(match, `PUT answered no share link: ${JSON.stringify(text)}`);
    assert.ok(url.startsWith(`${this.base}/s/`), `share link ${url} is not on ${this.base}`);
    return { url, id: match[1] };
  }

  async uploadRequest(body = { max_size: 1_000_000 }) {
    const request = await this.apiJson('POST', '/requests', body);
    assert.ok(request.id && request.url, `request without id or url: ${JSON.stringify(request)}`);
    return request;
  }

  /** Claims a share as a download tool would (explicit POST), returning the bytes. */
  async claim(url) {
    const response = await fetch(url, { method: 'POST', headers: { accept: '*/*' } });
    assert.equal(response.status, 200, `claiming ${url} answered ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  }
}

/** The `once` CLI against `server`, with nothing of the caller's environment; resolves to its output. */
export function runCli(server, cwd, args) {
  return promisify(execFile)(ONCE_BIN, args, {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd, ONCE_SERVER: server.base, ONCE_KEY: server.token, NO_COLOR: '1' },
    maxBuffer: 1 << 20,
  });
}

async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await eventOnce(server, 'listening');
  const { port } = server.address();
  server.close();
  await eventOnce(server, 'close');
  return port;
}

async function answersTcp(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export const S3_ACCESS_KEY = 'ONCEBROWSERACCESSKEY';
export const S3_SECRET_KEY = 'once-browser-secret-key-0123456789abcdef';
export const S3_BUCKET = 'once-browser';

/**
 * s3s-fs (it verifies SigV4, expiry and lengths) on a free port with a fresh data directory;
 * the bucket is a directory created before it starts, as the Rust harness does.
 */
export async function startS3() {
  requireExecutable(S3S_FS_BIN, 's3s-fs', 'Install it with `cargo install s3s-fs@0.14.1 --features binary` or set ONCE_S3S_FS.');
  const dir = await mkdtemp(path.join(tmpdir(), 'once-browser-s3-'));
  await mkdir(path.join(dir, S3_BUCKET));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const args = ['--host', '127.0.0.1', '--port', String(port), '--access-key', S3_ACCESS_KEY, '--secret-key', S3_SECRET_KEY, dir];
    const child = spawn(S3S_FS_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const log = [];
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => log.push(chunk));
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await answersTcp(port)) {
        return {
          endpoint: `http://127.0.0.1:${port}`,
          dir,
          async stop() {
            await stopChild(child);
            await rm(dir, { recursive: true, force: true });
          },
        };
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await stopChild(child);
  }
  throw new Error('s3s-fs did not start');
}

/** The settings that put a `once serve`'s bytes in the s3s-fs bucket at `endpoint`. */
export function s3Env(endpoint) {
  return {
    ONCE_S3_ENDPOINT: endpoint,
    ONCE_S3_BUCKET: S3_BUCKET,
    ONCE_S3_REGION: 'us-east-1',
    ONCE_S3_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
  };
}

// ---- proxies ---------------------------------------------------------------------------------

/**
 * An HTTP proxy on 127.0.0.1 in front of `target` that forwards requests byte for byte (the
 * Host header as the client sent it: SigV4 signs the host, and `once` builds its links from it).
 *
 * - `cors: { origin }` answers preflights and adds CORS headers the way the bucket rule of
 *   docs/storage.md#cors does (that origin; PUT, GET, HEAD; any header; ETag,
 *   Content-Range and Content-Disposition exposed); s3s-fs itself has no CORS support.
 * - `maxBody` answers 413 to a request body larger than that many bytes, as nginx's
 *   `client_max_body_size` does.
 * - `hold(request)`: requests it is true for wait, unforwarded, until `release()`.
 *
 * `requests` records each request: method, url (path and query), body bytes forwarded, status,
 * whether it was held, whether the client went away before it was answered.
 */
export async function startProxy(target, { cors = null, maxBody = Infinity, hold = null } = {}) {
  const upstream = new URL(target);
  const requests = [];
  let released = null;
  let gate = null;
  const openGate = () => {
    gate = new Promise((resolve) => {
      released = resolve;
    });
  };
  openGate();
  const proxy = {
    requests,
    cors,
    hold,
    url: '',
    /** Lets the held requests through; later ones are held again only if `hold` is set again. */
    release() {
      const letThrough = released;
      openGate();
      proxy.hold = null;
      letThrough();
    },
  };

  function corsHeaders(request) {
    const origin = request.headers.origin;
    if (!proxy.cors || !origin || origin !== proxy.cors.origin) return [];
    return [
      'Access-Control-Allow-Origin', origin,
      'Access-Control-Expose-Headers', 'ETag, Content-Range, Content-Disposition',
      'Vary', 'Origin',
    ];
  }

  const server = http.createServer(async (request, response) => {
    const entry = { method: request.method, url: request.url, bodyBytes: 0, status: null, abandoned: false };
    requests.push(entry);
    response.on('close', () => {
      if (!response.writableFinished) entry.abandoned = true;
    });
    const answer = (status, headers = []) => {
      entry.status = status;
      response.writeHead(status, headers);
      response.end();
    };

    if (proxy.cors && request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
      const allowed = corsHeaders(request);
      const method = request.headers['access-control-request-method'];
      if (!allowed.length || !['PUT', 'GET', 'HEAD'].includes(method)) return answer(403);
      return answer(200, [
        ...allowed,
        'Access-Control-Allow-Methods', 'PUT, GET, HEAD',
        'Access-Control-Allow-Headers', request.headers['access-control-request-headers'] || '*',
        'Access-Control-Max-Age', '3600',
      ]);
    }

    const tooLarge = () => {
      // Read and drop the rest, so the client gets to see the answer.
      request.resume();
      answer(413, ['Content-Type', 'text/plain', 'Connection', 'close', ...corsHeaders(request)]);
    };
    if (Number(request.headers['content-length'] ?? 0) > maxBody) return tooLarge();

    // A held request's body is read meanwhile (and kept): a socket nobody reads from would
    // never notice that the client went away.
    let body = request;
    if (proxy.hold && proxy.hold(request, requests)) {
      entry.held = true;
      body = request.pipe(new PassThrough({ highWaterMark: 256 * MiB }));
      await gate;
      if (entry.abandoned) return;
    }

    const forwarded = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: request.method,
      path: request.url,
      headers: request.rawHeaders,
    });
    forwarded.on('response', (answered) => {
      entry.status = answered.statusCode;
      response.writeHead(answered.statusCode, answered.statusMessage, [...answered.rawHeaders, ...corsHeaders(request)]);
      answered.pipe(response);
    });
    forwarded.on('error', () => response.destroy());
    response.on('close', () => {
      if (!response.writableFinished) forwarded.destroy();
    });
    body.on('data', (chunk) => {
      entry.bodyBytes += chunk.length;
      if (entry.bodyBytes > maxBody) {
        // A body without a (true) length that grew too large: stop forwarding it.
        body.unpipe(forwarded);
        forwarded.destroy();
        if (!response.headersSent) tooLarge();
      }
    });
    body.pipe(forwarded);
  });
  server.listen(0, '127.0.0.1');
  await eventOnce(server, 'listening');
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.stop = async () => {
    proxy.release();
    server.closeAllConnections();
    server.close();
  };
  return proxy;
}

// ---- the browser -----------------------------------------------------------------------------

export async function launchBrowser() {
  requireExecutable(CHROMIUM_BIN, 'Chromium', 'Install it with `apt-get update && apt-get install -y chromium` or set CHROMIUM_BIN.');
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 20_000 });
}

/**
 * A fresh context and page that records script errors and CSP violations (Chromium reports
 * those as console errors) for `assertClean`. Options go to `browser.newContext`.
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    ...options,
  });
  const page = await context.newPage();
  watchProblems(page);
  return { context, page };
}

export function watchProblems(page) {
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    // A problem page is a 4xx/5xx document, which Chromium logs; that is what it should be.
    const document = message.location().url === page.url();
    if (document && /^Failed to load resource: the server responded with a status of [45]\d\d/.test(text)) return;
    page.problems.push(`console error: ${text} (${message.location().url})`);
  });
}

export function assertClean(page) {
  assert.deepEqual(page.problems, [], 'the page logged script errors or CSP violations');
}

/** Signs `page` in through the sign-in form with `token`; leaves it on the send page. */
export async function signIn(page, base, token) {
  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200, `GET ${base}/`);
  assert.equal(await page.locator('h1').textContent(), STRINGS.signin_title);
  await page.fill('#key', token);
  await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit].primary')]);
  await page.waitForSelector('body[data-page=send]');
}

/** Waits until #status says `text` (a string: exactly; a RegExp: matching). */
export async function waitForStatus(page, text, timeout = 30_000) {
  const expected = typeof text === 'string' ? { exact: text } : { source: text.source };
  try {
    await page.waitForFunction(
      ({ exact, source }) => {
        const now = document.getElementById('status')?.textContent ?? '';
        return exact !== undefined ? now === exact : new RegExp(source).test(now);
      },
      expected,
      { timeout, polling: 50 },
    );
  } catch (error) {
    const status = await page.locator('#status').textContent().catch(() => '(none)');
    throw new Error(`#status never said ${text}; it says ${JSON.stringify(status)}`, { cause: error });
  }
}

/** Waits until `condition()` holds, checking every 25 ms; `what` names it in the error. */
export async function waitUntil(condition, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- files -----------------------------------------------------------------------------------

/** Writes `size` random bytes to `file` in 1 MiB chunks; resolves to their SHA-256 (hex). */
export async function writeRandomFile(file, size) {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let written = 0; written < size; ) {
    const chunk = randomBytes(Math.min(MiB, size - written));
    hash.update(chunk);
    written += chunk.length;
    if (!out.write(chunk)) await eventOnce(out, 'drain');
  }
  out.end();
  await eventOnce(out, 'finish');
  return hash.digest('hex');
}

export async function sha256File(file) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest('hex');
}

export async function tempDir(prefix = 'once-browser-files-') {
  return mkdtemp(path.join(tmpdir(), prefix));
}
