// once: the one script of the web pages. Plain JavaScript, no build step: each page names
// itself in <body data-page>, and the part of this file for that page runs. Settings and
// every string come from the page's JSON block (#once-config), so this file holds no text a
// person reads and the page policy needs no inline script.

const config = JSON.parse(document.getElementById('once-config').textContent || '{}');
const strings = config.strings || {};

/** A string of the page's language with its {placeholders} filled. */
function t(name, values = {}) {
  let text = strings[name] || name;
  for (const [key, value] of Object.entries(values)) text = text.split(`{${key}}`).join(String(value));
  return text;
}

const $ = (id) => document.getElementById(id);

// ---- formatting ------------------------------------------------------------------------

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(1))} ${units[unit]}`;
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return '…';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const lang = document.documentElement.lang || 'en';

/** "in 6 days", in the page's language. */
function relative(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const format = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });
  const steps = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60]];
  for (const [unit, length] of steps) {
    if (Math.abs(seconds) >= length) return format.format(Math.round(seconds / length), unit);
  }
  return format.format(Math.round(seconds), 'second');
}

function localTime(date) {
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

/** Server-rendered UTC times become the reader's local time: relative, exact on hover. */
function localiseTimes(root = document) {
  for (const element of root.querySelectorAll('time[datetime]')) {
    const date = new Date(element.getAttribute('datetime'));
    if (Number.isNaN(date.getTime())) continue;
    element.title = localTime(date);
    element.textContent = element.hasAttribute('data-absolute') ? localTime(date) : relative(date);
  }
}

// ---- talking to the server ---------------------------------------------------------------

class Refused extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Entries of an archive's listing a landing page shows (as the server's LANDING_ENTRIES).
const LANDING_ENTRIES = 20;

/** A JSON call to our API; signed-in pages add the session's CSRF token. */
async function call(method, url, body, signal, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (config.csrf) headers['X-Once-CSRF'] = config.csrf;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new Refused(t('connection_lost'), 0, 'network');
  }
  let answer = {};
  try {
    answer = await response.json();
  } catch (_) {
    answer = {};
  }
  if (!response.ok) {
    const detail = answer.error || {};
    throw new Refused(detail.message || `HTTP ${response.status}`, response.status, detail.code);
  }
  return answer;
}

/** One PUT with upload progress; resolves to the part's tag (the storage's ETag). */
function put(url, body, headers, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers || {})) {
      // The browser sets these itself and refuses to have them set.
      if (!['content-length', 'host'].includes(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    const abort = () => xhr.abort();
    if (signal) signal.addEventListener('abort', abort, { once: true });
    xhr.onload = () => {
      if (signal) signal.removeEventListener('abort', abort);
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve((xhr.getResponseHeader('ETag') || '').replace(/"/g, ''));
        return;
      }
      let message = `HTTP ${xhr.status}`;
      let code;
      try {
        const answer = JSON.parse(xhr.responseText);
        if (answer.error) ({ message, code } = answer.error);
      } catch (_) {
        // An S3 error is XML; the status says enough.
      }
      reject(new Refused(message, xhr.status, code));
    };
    xhr.onerror = () => reject(new Refused(t('connection_lost'), 0, 'network'));
    xhr.onabort = () => reject(new DOMException('cancelled', 'AbortError'));
    xhr.send(body);
  });
}

const PARALLEL = 3;
const ATTEMPTS = 5;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends `source` ({size, read(start, end) → Blob}) through an upload ticket: one PUT for a
 * small file, else parts (each at most the server's part size, so no proxy body limit is
 * hit), a few at a time, each retried on its own, skipping the parts `stored` already holds
 * (a resumed upload). Reports bytes sent; then completes where the ticket says so.
 */
async function sendThrough(ticket, source, { onProgress, onRetry, signal, stored = [] }) {
  const multipart = ticket.multipart;
  if (!multipart) {
    let sent = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        await put(ticket.url, await source.read(0, source.size), ticket.headers, (bytes) => onProgress(bytes), signal);
        sent = source.size;
        break;
      } catch (error) {
        if (signal.aborted || attempt >= ATTEMPTS || (error.status >= 400 && error.status < 500)) throw error;
        onRetry();
        await sleep(700 * attempt);
      }
    }
    onProgress(sent);
    if (ticket.complete_url) await call('POST', ticket.complete_url, {}, signal);
    return;
  }
  const partSize = multipart.part_size;
  const count = Math.max(1, Math.ceil(source.size / partSize));
  const urls = new Map(multipart.parts.map((part) => [part.number, part.url]));
  const loaded = new Array(count).fill(0);
  const etags = new Array(count);
  const lengthOf = (number) => Math.min(partSize, source.size - (number - 1) * partSize);
  for (const part of stored) {
    if (part.number <= count && part.size === lengthOf(part.number) && part.etag) {
      etags[part.number - 1] = part.etag;
      loaded[part.number - 1] = part.size;
    }
  }
  const report = () => onProgress(loaded.reduce((sum, bytes) => sum + bytes, 0));
  report();

  async function urlFor(number, fresh) {
    if (!fresh && urls.has(number)) return urls.get(number);
    const answer = await call('POST', multipart.parts_url, { part_numbers: [number] }, signal);
    for (const part of answer.parts) urls.set(part.number, part.url);
    return urls.get(number);
  }

  async function sendPart(number) {
    const start = (number - 1) * partSize;
    let fresh = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const url = await urlFor(number, fresh);
        const body = await source.read(start, start + lengthOf(number));
        const etag = await put(url, body, {}, (bytes) => {
          loaded[number - 1] = bytes;
          report();
        }, signal);
        if (!etag) throw new Refused(t('no_etag'), 0, 'no_etag');
        etags[number - 1] = etag;
        loaded[number - 1] = lengthOf(number);
        report();
        return;
      } catch (error) {
        loaded[number - 1] = 0;
        report();
        if (signal.aborted) throw error;
        // 409 (the part holds other bytes), 413 and 410 will not get better by retrying.
        if (attempt >= ATTEMPTS || [400, 404, 409, 410, 413].includes(error.status)) throw error;
        fresh = error.status === 403;
        onRetry();
        await sleep(700 * attempt);
      }
    }
  }

  const todo = [];
  for (let number = 1; number <= count; number++) if (!etags[number - 1]) todo.push(number);
  async function worker() {
    while (todo.length) await sendPart(todo.shift());
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, todo.length) }, worker));
  await call('POST', ticket.complete_url, {
    parts: etags.map((etag, index) => ({ part_number: index + 1, etag })),
  }, signal);
}

/** Progress text and bar for an upload of `total` bytes, after `lead` (e.g. that it resumes). */
function progressReporter(bar, status, total, lead = '') {
  const started = performance.now();
  let first = null;
  return (done) => {
    if (first === null) first = done;
    bar.hidden = false;
    bar.value = total === 0 ? 1 : done / total;
    const elapsed = (performance.now() - started) / 1000;
    const speed = elapsed > 0.2 ? (done - first) / elapsed : 0;
    const left = speed > 0 ? (total - done) / speed : Infinity;
    const percent = `${Math.floor((total === 0 ? 1 : done / total) * 100)} %`;
    bar.setAttribute('aria-valuetext', percent);
    status.textContent = (lead ? `${lead} ` : '') + t('progress', {
      percent,
      done: size(done),
      total: size(total),
      speed: size(Math.round(speed)),
      left: duration(left),
    });
  };
}

// ---- resume records --------------------------------------------------------------------

// A page reload loses the upload's state but not the file on disk: when the same file (name,
// size, last change) is picked again, the upload continues from the parts already stored.
const RECORDS = 'once-uploads';

function records() {
  try {
    return JSON.parse(localStorage.getItem(RECORDS) || '{}');
  } catch (_) {
    return {};
  }
}

function saveRecord(fingerprint, record) {
  const all = records();
  if (record) all[fingerprint] = record;
  else delete all[fingerprint];
  try {
    localStorage.setItem(RECORDS, JSON.stringify(all));
  } catch (_) {
    // Private windows may refuse storage; the upload still works, it just cannot resume.
  }
}

function fingerprintOf(scope, files) {
  // Folders (no blob) count by their path only.
  const part = (file) => (file.blob ? `${file.path}:${file.blob.size}:${file.blob.lastModified || 0}` : file.path);
  return `${scope}|${files.map(part).join('|')}`;
}

/**
 * What the server still holds of a recorded upload, or null if it cannot go on. The server
 * decides: an upload that started in time may take parts past its ticket's expiry (the grace).
 */
async function storedParts(record) {
  if (!record || !record.ticket.multipart) return null;
  try {
    const answer = await call('GET', record.ticket.multipart.parts_url);
    return answer.parts || [];
  } catch (_) {
    return null;
  }
}

// ---- choosing files ----------------------------------------------------------------------

/** The files of a drop, with folders walked (paths relative to what was dropped). */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ path: file.name, blob: file }));
  const files = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      files.push({ path: prefix + entry.name, blob: file });
    } else if (entry.isDirectory) {
      files.push({ path: `${prefix}${entry.name}/`, blob: null });
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, '');
  return files;
}

function pickedFiles(input) {
  return [...input.files].map((file) => ({ path: file.webkitRelativePath || file.name, blob: file }));
}

/** Directory entries for the folders in the files' paths, so empty parents show too. */
function withDirectories(files) {
  const seen = new Set(files.filter((file) => !file.blob).map((file) => file.path));
  const all = [];
  for (const file of files) {
    const parts = file.path.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const directory = `${parts.slice(0, depth).join('/')}/`;
      if (!seen.has(directory)) {
        seen.add(directory);
        all.push({ path: directory, blob: null });
      }
    }
    if (file.blob || !all.some((entry) => entry.path === file.path)) all.push(file);
  }
  return all;
}

function wireDropZone(zone, onFiles) {
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    onFiles(await droppedFiles(event.dataTransfer));
  });
  document.addEventListener('paste', (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) onFiles(files.map((file) => ({ path: file.name, blob: file })));
  });
}

// ---- copy, share, QR ---------------------------------------------------------------------

function wireCopyButtons(root = document) {
  for (const button of root.querySelectorAll('[data-copy]')) {
    button.addEventListener('click', async () => {
      const field = $(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (_) {
        field.select();
        document.execCommand('copy');
      }
      const label = button.textContent;
      button.textContent = t('copied');
      setTimeout(() => {
        button.textContent = label;
      }, 2000);
    });
  }
}

/** Draws the QR code of `text` into `canvas`, here in the browser: no outside service. */
async function drawQr(canvas, text) {
  const { generate } = await import(config.assets.qr);
  generate(text).toCanvas(canvas);
}

// ---- pages -------------------------------------------------------------------------------

function warnBeforeLeaving(active) {
  const handler = (event) => {
    event.preventDefault();
    event.returnValue = t('leave_warning');
  };
  if (active) window.addEventListener('beforeunload', handler);
  return () => window.removeEventListener('beforeunload', handler);
}

async function sourceFor(files, onPreparing) {
  if (files.length === 1 && files[0].blob) {
    const file = files[0].blob;
    return {
      name: files[0].path.split('/').pop(),
      type: file.type || undefined,
      size: file.size,
      read: async (start, end) => file.slice(start, end),
    };
  }
  const { planArchive } = await import(config.assets.zip);
  // Folders take the newest time of the files chosen, so the same choice after a reload makes
  // the same archive, byte for byte, and a recorded upload can go on with it.
  const newest = Math.max(0, ...files.filter((file) => file.blob).map((file) => file.blob.lastModified || 0));
  const entries = withDirectories(files).map((file) => ({
    path: file.path,
    blob: file.blob,
    modified: file.blob ? file.blob.lastModified : newest,
  }));
  const plan = await planArchive(entries, { onProgress: onPreparing });
  const top = new Set(files.map((file) => file.path.split('/')[0]));
  const name = top.size === 1 && files.some((file) => file.path.includes('/')) ? `${[...top][0]}.zip` : 'files.zip';
  return {
    name,
    type: 'application/zip',
    size: plan.size,
    contents: plan.contents,
    // Only the range of one part is ever in memory.
    read: (start, end) => plan.read(start, end),
  };
}

async function newSecretText() {
  const seal = await import(config.assets.seal);
  return seal.b64u(seal.newSecret());
}

/**
 * Argon2id as seal.js takes it. The module is imported only when a password needs it: it is
 * the largest one, and most shares have no password.
 */
async function loadArgon2id() {
  const { argon2idAsync } = await import(config.assets.argon2);
  return (text, salt, params) =>
    argon2idAsync(text, salt, { m: params.memory_kib, t: params.iterations, p: params.parallelism, dkLen: 32 });
}

/**
 * `source` sealed end to end (docs/encryption.md): the same interface, reading ciphertext. The
 * record nonces come from the record index, so a part read twice (a retry, a resumed upload
 * after a reload with the same secret) is the same bytes. `password` ({text, params}) adds the
 * password to the key; its parameters (never its text) go to the server with the share.
 */
async function sealedSource(source, secretText, password) {
  const seal = await import(config.assets.seal);
  const options = password ? { password: password.text, params: password.params, argon2id: await loadArgon2id() } : {};
  const keys = await seal.shareKeys(seal.fromB64u(secretText), options);
  return sealedWith(seal, keys, source, password ? { password: password.params } : {});
}

/** `source` sealed to an upload request's public key `R` (43 characters of the link's fragment). */
async function sealedToRequester(source, recipientText) {
  const seal = await import(config.assets.seal);
  const recipient = seal.fromB64u(recipientText);
  const { keys, ephemeral } = await seal.requestUploadKeys(recipient);
  return sealedWith(seal, keys, source, { ephemeral_key: seal.b64u(ephemeral), recipient_key: recipientText });
}

function sealedWith(seal, keys, source, extra = {}) {
  const readPlain = async (offset, length) => {
    const chunk = await source.read(offset, offset + length);
    return chunk instanceof Blob ? new Uint8Array(await chunk.arrayBuffer()) : new Uint8Array(chunk);
  };
  return {
    ...source,
    plainSize: source.size,
    size: seal.sealedSize(source.size),
    // What a resume record keeps to tell whether a password typed again is the same one.
    claimKey: seal.b64u(keys.claimKey),
    read: (start, end) => seal.sealedRange(keys, source.size, readPlain, start, end),
    encryption: async (note) => {
      const meta = { name: source.name, type: source.type || 'application/octet-stream', size: source.size };
      if (note) meta.note = note;
      if (source.contents) meta.contents = source.contents;
      return seal.newEncryption(keys, await seal.sealMeta(keys, meta), extra);
    },
  };
}

function sendPage() {
  const form = $('send-form');
  const input = $('files');
  const folder = $('folder');
  const picked = $('picked');
  const status = $('status');
  const bar = $('progress');
  const sendButton = $('send');
  const cancelButton = $('cancel');
  const clearButton = $('clear');
  const encryptBox = $('encrypt');
  const passwordInput = $('send-password');
  const againInput = $('send-password-again');
  const maxSize = Number(form.dataset.maxSize);
  let files = [];
  let controller = null;

  // A password is part of the encryption key: without the box ticked there is nothing for it
  // to protect, so its fields are off and the hint says why.
  const syncPassword = () => {
    passwordInput.disabled = againInput.disabled = !encryptBox.checked || controller !== null;
    $('password-hint').textContent = encryptBox.checked ? t('send_password_hint') : t('send_password_off');
  };
  encryptBox.addEventListener('change', syncPassword);
  syncPassword();
  /** An interrupted upload of the chosen files, if the page kept a record of one. */
  const recordOf = (chosen) => records()[fingerprintOf('share', chosen)] || null;

  const show = () => {
    const total = files.reduce((sum, file) => sum + (file.blob ? file.blob.size : 0), 0);
    const count = files.filter((file) => file.blob).length;
    picked.textContent = !count ? '' : count === 1 && files.length === 1 ? `${files[0].path} · ${size(total)}` : t('selected_many', { n: count, size: size(total) });
    clearButton.hidden = !count;
  };
  const choose = (chosen) => {
    files = chosen;
    const record = recordOf(files);
    // The password is never kept: a send that had one asks for it again before it goes on.
    status.textContent = record && record.password && encryptBox.checked ? t('resume_password') : '';
    show();
  };
  input.addEventListener('change', () => choose(pickedFiles(input)));
  folder.addEventListener('change', () => choose(pickedFiles(folder)));
  clearButton.addEventListener('click', () => {
    input.value = '';
    folder.value = '';
    choose([]);
  });
  wireDropZone($('drop'), choose);
  for (const radio of form.querySelectorAll('input[name=expiry]')) {
    radio.addEventListener('change', () => {
      $('custom-expiry').hidden = form.querySelector('input[name=expiry]:checked').value !== 'custom';
    });
  }
  cancelButton.addEventListener('click', () => controller && controller.abort());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (controller) return;
    if (!files.some((file) => file.blob)) {
      status.textContent = t('nothing_selected');
      return;
    }
    const choice = form.querySelector('input[name=expiry]:checked').value;
    const expiresIn = choice === 'custom' ? Math.round(Number($('custom-hours').value) * 3600) : Number(choice);
    const downloads = Number($('downloads').value);
    const note = $('note').value.trim();
    const encrypt = encryptBox.checked;
    // Exactly as typed (seal.js normalises it to NFC): spaces may be part of a passphrase.
    const typed = encrypt ? passwordInput.value : '';
    if (encrypt && typed !== againInput.value) {
      status.textContent = t('password_mismatch');
      againInput.focus();
      return;
    }
    controller = new AbortController();
    const signal = controller.signal;
    const stopWarning = warnBeforeLeaving(true);
    sendButton.disabled = true;
    cancelButton.hidden = false;
    for (const element of form.querySelectorAll('input, textarea')) element.disabled = true;
    let record = null;
    let askPassword = false;
    const fingerprint = fingerprintOf('share', files);
    try {
      let source = await sourceFor(files, (done, total) => {
        status.textContent = t('preparing', { percent: `${Math.floor((total ? done / total : 1) * 100)} %` });
      });
      record = recordOf(files);
      let stored = await storedParts(record);
      if (stored !== null && (!record.secret === encrypt || (typed && !record.password))) {
        // Started another way than the form now says (encrypted or not, with a password or
        // not): going on would make a share other than the one asked for, so it starts anew
        // and the unfinished share goes.
        call('DELETE', `/api/v1/shares/${record.id}`).catch(() => {});
        saveRecord(fingerprint, null);
        record = null;
        stored = null;
      }
      const resumed = stored !== null;
      if (resumed && record.password && !typed) throw new Refused(t('resume_password'), 0, 'password_needed');
      // A resumed upload goes on as it started, with the secret and the salt it started with.
      let secret;
      let password;
      if (resumed) {
        secret = record.secret;
        if (record.password) password = { text: typed, params: record.password };
      } else if (encrypt) {
        secret = await newSecretText();
        if (typed) password = { text: typed, params: (await import(config.assets.seal)).newPasswordParams() };
      }
      if (password) status.textContent = t('password_stretching');
      if (secret) source = await sealedSource(source, secret, password);
      if (resumed && record.password && source.claimKey !== record.claim_key) {
        throw new Refused(t('resume_wrong_password'), 0, 'password_needed');
      }
      if (source.size > maxSize) throw new Refused(t('too_large', { size: size(maxSize) }), 413);
      if (stored === null) {
        const body = {
          filename: secret ? '' : source.name,
          size: source.size,
          max_downloads: downloads,
          expires_in: expiresIn,
        };
        if (secret) {
          body.encryption = await source.encryption(note);
        } else {
          if (source.type) body.content_type = source.type;
          if (source.contents) body.contents = source.contents;
          if (note) body.note = note;
        }
        const share = await call('POST', '/api/v1/shares', body, signal);
        // The key goes in the fragment, which the browser never sends to the server.
        const url = secret ? `${share.url}#${secret}` : share.url;
        // The password's salt and parameters, never the password: a resumed send asks for it.
        record = {
          id: share.id,
          url,
          expires_at: share.expires_at,
          downloads,
          ticket: share.upload,
          secret,
          password: password ? password.params : undefined,
          claim_key: secret ? source.claimKey : undefined,
        };
        saveRecord(fingerprint, record);
        stored = [];
      } else {
        status.textContent = t('resuming');
      }
      await sendThrough(record.ticket, source, {
        onProgress: progressReporter(bar, status, source.size, resumed ? t('resuming') : ''),
        onRetry: () => {
          status.textContent = t('retrying');
        },
        signal,
        stored,
      });
      saveRecord(fingerprint, null);
      stopWarning();
      showResult(record, source);
    } catch (error) {
      stopWarning();
      if (signal.aborted) {
        status.textContent = t('cancelled');
        if (record) {
          saveRecord(fingerprint, null);
          call('DELETE', `/api/v1/shares/${record.id}`).catch(() => {});
        }
      } else if (error.code === 'password_needed') {
        status.textContent = error.message;
        askPassword = true;
      } else {
        status.textContent = t('failed', { reason: error.message });
      }
      bar.hidden = true;
      sendButton.disabled = false;
      for (const element of form.querySelectorAll('input, textarea')) element.disabled = false;
    } finally {
      cancelButton.hidden = true;
      controller = null;
      syncPassword();
    }
    if (askPassword) passwordInput.focus();
  });

  function showResult(record, source) {
    form.hidden = true;
    const result = $('result');
    result.hidden = false;
    $('link').value = record.url;
    $('result-password').hidden = !record.password;
    const downloads = record.downloads === 1 ? t('downloads_one') : t('downloads_many', { n: record.downloads });
    $('chat-line').value = t('chat_line', {
      name: source.name,
      size: size(source.plainSize ?? source.size),
      downloads,
      expiry: relative(new Date(record.expires_at)),
      link: record.url,
    });
    const shareButton = $('web-share');
    if (navigator.share) {
      shareButton.hidden = false;
      shareButton.addEventListener('click', () => navigator.share({ title: source.name, url: record.url }).catch(() => {}));
    }
    drawQr($('qr'), record.url).catch(() => {
      $('qr').hidden = true;
    });
    $('result-title').focus();
  }
}

function landingPage() {
  const form = $('claim');
  if (!form) return;
  if (form.dataset.encrypted === 'true') {
    encryptedLanding(form);
    return;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('download');
    if (button.disabled) return;
    button.disabled = true;
    let claim;
    try {
      claim = await call('POST', window.location.pathname);
    } catch (error) {
      // The page for a link that no longer works says why, in plain words.
      window.location.reload();
      return;
    }
    form.hidden = true;
    $('explain').hidden = true;
    $('claimed').hidden = false;
    $('claimed-text').textContent = claim.downloads_left > 0 ? t('download_started_more', { n: claim.downloads_left }) : t('download_started');
    const until = new Date(claim.lease_until);
    $('resume-text').textContent = t('download_resume', { time: localTime(until) });
    const resume = $('resume');
    resume.href = claim.download_url;
    $('resume-line').hidden = false;
    setTimeout(() => {
      $('resume-line').hidden = true;
    }, Math.max(0, until.getTime() - Date.now()));
    window.location.assign(claim.download_url);
  });
}

/**
 * The landing page of an end-to-end encrypted share: the key is the link's fragment, which
 * never reaches the server. The page opens the sealed name first (a wrong key or password
 * fails here and claims nothing), proves it holds the key, claims, then downloads the
 * ciphertext and decrypts it record by record; the file is saved only once every record has
 * opened, so a changed or cut-short download saves nothing.
 */
async function encryptedLanding(form) {
  const button = $('download');
  // Until the keys are ready nothing may reach the server: a plain form post would be a claim
  // without a proof.
  form.addEventListener('submit', (event) => event.preventDefault());
  button.disabled = true;
  const problem = $('decrypt-problem');
  const say = (text) => {
    problem.textContent = text;
    problem.hidden = false;
  };
  const shareId = window.location.pathname.split('/')[2];
  const seal = await import(config.assets.seal);
  let sealed;
  try {
    sealed = await call('GET', form.dataset.sealUrl);
  } catch (_) {
    // Gone or used up since the page was made: the page for the link now says why.
    window.location.reload();
    return;
  }
  // An upload to an encrypted request opens only with the private key `once request` kept on
  // the requester's machine; no fragment can stand in for it.
  if (sealed.recipient_key) {
    say(t('decrypt_request_upload'));
    return;
  }
  const secret = seal.secretFromFragment(window.location.hash);
  if (!secret) {
    say(t('decrypt_missing_key'));
    return;
  }
  const password = $('password');
  if (sealed.password) $('password-line').hidden = false;
  let opened = null;
  let claim = null;
  const open = async () => {
    const argon2id = sealed.password ? await loadArgon2id() : undefined;
    const keys = await seal.shareKeys(secret, { password: password.value, params: sealed.password, argon2id });
    const meta = await seal.openMeta(keys, sealed.sealed_meta);
    document.querySelector('h1.filename').textContent = meta.name;
    document.title = meta.name;
    const shown = document.querySelector('p.meta span');
    if (shown && Number.isFinite(meta.size)) shown.textContent = size(meta.size);
    showSealedDetails(meta);
    return { keys, meta };
  };
  if (!sealed.password) {
    try {
      opened = await open();
    } catch (_) {
      say(t('decrypt_wrong'));
      return;
    }
  }
  button.disabled = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    problem.hidden = true;
    if (!opened) {
      try {
        opened = await open();
      } catch (_) {
        button.disabled = false;
        say(t('decrypt_wrong'));
        password.focus();
        return;
      }
    }
    // A download that broke is fetched again under the same claim while its lease runs.
    if (!claim || Date.now() > new Date(claim.lease_until).getTime()) {
      try {
        // A fresh challenge: the page may have been open longer than one lives.
        const { challenge } = await call('GET', form.dataset.sealUrl);
        const proof = await seal.claimProof(opened.keys, shareId, challenge);
        claim = await call('POST', window.location.pathname, undefined, undefined, { 'X-Once-Proof': proof });
      } catch (_) {
        window.location.reload();
        return;
      }
    }
    form.hidden = true;
    $('explain').hidden = true;
    $('claimed').hidden = false;
    $('claimed-text').textContent = t('decrypt_running');
    try {
      const worker = await downloadWorker();
      if (worker) {
        await streamToDisk(worker, {
          url: claim.download_url,
          keys: { content: opened.keys.content, nonceBase: opened.keys.nonceBase },
          sealedSize: sealed.size,
          plainSize: seal.plainSize(sealed.size),
          name: opened.meta.name,
          type: opened.meta.type,
        });
      } else {
        await saveFromMemory(seal, claim.download_url, opened, sealed.size);
      }
    } catch (_) {
      $('claimed').hidden = true;
      const until = new Date(claim.lease_until);
      if (until.getTime() > Date.now()) {
        // The claim is ours until the lease ends: offer the same download again.
        say(`${t('decrypt_failed')} ${t('decrypt_retry', { time: localTime(until) })}`);
        form.hidden = false;
        button.disabled = false;
      } else {
        say(t('decrypt_failed'));
      }
      return;
    }
    $('claimed-text').textContent =
      claim.downloads_left > 0 ? t('download_started_more', { n: claim.downloads_left }) : t('download_started');
  });
}

/**
 * The download worker (assets/dl-worker.js), installed and active, or null where the browser
 * has none (then the file is decrypted in memory).
 */
async function downloadWorker() {
  if (!config.assets.worker || !('serviceWorker' in navigator)) return null;
  try {
    const registration = await navigator.serviceWorker.register(config.assets.worker, { scope: '/dl/', type: 'module' });
    const worker = registration.active || registration.waiting || registration.installing;
    if (!worker) return null;
    if (worker.state !== 'activated') {
      await new Promise((resolve, reject) => {
        worker.addEventListener('statechange', () => {
          if (worker.state === 'activated') resolve();
          if (worker.state === 'redundant') reject(new Error('the download worker did not start'));
        });
        setTimeout(() => reject(new Error('the download worker did not start in time')), 10_000);
      });
    }
    return registration.active || worker;
  } catch (_) {
    return null;
  }
}

/** Hands `job` to the worker and opens its URL: the browser saves what the worker streams. */
function streamToDisk(worker, job) {
  return new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    const id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
    channel.port1.onmessage = ({ data }) => {
      if (data.state === 'ready') window.location.assign(`/dl/${id}`);
      else if (data.state === 'done') resolve();
      else reject(new Error(data.reason || 'the download failed'));
    };
    worker.postMessage({ id, job }, [channel.port2]);
  });
}

/** Without a service worker: the whole file decrypted into a Blob, then saved. */
async function saveFromMemory(seal, downloadUrl, opened, sealedSize) {
  const response = await fetch(downloadUrl);
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const plain = response.body.pipeThrough(seal.openingStream(opened.keys, sealedSize));
  const blob = await new Response(plain).blob();
  const file = new Blob([blob], { type: opened.meta.type || 'application/octet-stream' });
  const url = URL.createObjectURL(file);
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = opened.meta.name;
  anchor.hidden = true;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The note and the archive listing that travelled sealed, shown as the server shows them. */
function showSealedDetails(meta) {
  const explain = $('explain');
  const element = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };
  if (typeof meta.note === 'string' && meta.note) {
    const figure = element('figure', undefined, 'note');
    figure.append(element('figcaption', t('landing_note')));
    const quote = element('blockquote', meta.note);
    quote.dir = 'auto';
    figure.append(quote);
    explain.before(figure);
  }
  const contents = meta.contents;
  if (contents && Array.isArray(contents.listing)) {
    explain.before(element('p', t('archive_of', { n: contents.entries, size: size(contents.total_size) })));
    const list = element('ul', undefined, 'listing');
    list.id = 'contents';
    const shownEntries = contents.listing.slice(0, LANDING_ENTRIES);
    for (const entry of shownEntries) {
      const item = element('li', entry.path);
      if (!entry.path.endsWith('/')) {
        item.append(' ', element('span', size(entry.size), 'meta'));
      }
      list.append(item);
    }
    explain.before(list);
    const more = contents.entries - shownEntries.length;
    if (more > 0) explain.before(element('p', t('and_more', { n: more }), 'hint'));
  }
}

function requestPage() {
  const root = $('upload');
  const input = $('file');
  const sendButton = $('send');
  const cancelButton = $('cancel');
  const status = $('status');
  const bar = $('progress');
  const picked = $('picked');
  const maxSize = Number(root.dataset.maxSize);
  const fixedName = root.dataset.fixedName;
  let file = null;
  let controller = null;

  // An encrypted request: the requester's public key is the link's fragment.
  const encrypted = root.dataset.encrypted === 'true';
  const recipientKey = window.location.hash.replace(/^#/, '');
  if (encrypted && !/^[A-Za-z0-9_-]{43}$/.test(recipientKey)) {
    status.textContent = t('decrypt_missing_key');
    input.disabled = true;
    return;
  }
  // The request's largest size bounds what is stored: the ciphertext, when it is encrypted.
  const sealing = encrypted ? import(config.assets.seal) : null;
  const tooLarge = async (blob) => (sealing ? (await sealing).sealedSize(blob.size) : blob.size) > maxSize;
  const choose = async (chosen) => {
    file = chosen.find((entry) => entry.blob) || null;
    picked.textContent = file ? `${file.path} · ${size(file.blob.size)}` : '';
    sendButton.disabled = !file;
    status.textContent = file && (await tooLarge(file.blob)) ? t('too_large', { size: size(maxSize) }) : '';
  };
  input.addEventListener('change', () => choose(pickedFiles(input)));
  wireDropZone($('drop'), choose);
  cancelButton.addEventListener('click', () => controller && controller.abort());

  sendButton.addEventListener('click', async () => {
    // Disabled at once, in the same task as the click: a double click cannot start twice.
    if (controller || !file) return;
    controller = new AbortController();
    if (await tooLarge(file.blob)) {
      status.textContent = t('too_large', { size: size(maxSize) });
      controller = null;
      return;
    }
    const signal = controller.signal;
    sendButton.disabled = true;
    input.disabled = true;
    cancelButton.hidden = false;
    const stopWarning = warnBeforeLeaving(true);
    const blob = file.blob;
    const name = fixedName || file.path.split('/').pop();
    const fingerprint = fingerprintOf(`request:${root.dataset.requestId}`, [file]);
    try {
      let source = { name, type: blob.type || undefined, size: blob.size, read: async (start, end) => blob.slice(start, end) };
      // Sealed to an ephemeral key made for this upload, which lives only in this page: an
      // encrypted upload cannot resume after a reload, so it always starts a new session.
      let record = encrypted ? null : records()[fingerprint] || null;
      let stored = await storedParts(record);
      const resumed = stored !== null;
      if (stored === null) {
        let body = { filename: name, size: blob.size };
        if (blob.type) body.content_type = blob.type;
        if (encrypted) {
          const sealed = await sealedToRequester(source, recipientKey);
          source = sealed;
          body = { size: sealed.size, encryption: await sealed.encryption() };
        }
        const started = await call('POST', root.dataset.uploadsUrl, body, signal);
        record = { ticket: started.upload, filename: encrypted ? name : started.filename || name };
        if (!encrypted) saveRecord(fingerprint, record);
        stored = [];
      } else {
        status.textContent = t('resuming');
      }
      await sendThrough(record.ticket, source, {
        onProgress: progressReporter(bar, status, source.size, resumed ? t('resuming') : ''),
        onRetry: () => {
          status.textContent = t('retrying');
        },
        signal,
        stored,
      });
      saveRecord(fingerprint, null);
      bar.value = 1;
      status.textContent = t('request_done', { name: record.filename });
      $('drop').hidden = true;
      sendButton.hidden = true;
    } catch (error) {
      if (signal.aborted) {
        saveRecord(fingerprint, null);
        status.textContent = t('cancelled');
      } else {
        status.textContent = t('failed', { reason: error.message });
      }
      bar.hidden = true;
      sendButton.disabled = false;
      input.disabled = false;
    } finally {
      stopWarning();
      cancelButton.hidden = true;
      controller = null;
    }
  });
}

function sharesPage() {
  const status = $('shares-status');
  for (const button of document.querySelectorAll('[data-revoke]')) {
    button.addEventListener('click', async () => {
      if (!window.confirm(t('revoke_confirm'))) return;
      button.disabled = true;
      try {
        await call('DELETE', `/api/v1/shares/${button.dataset.revoke}`);
        const row = button.closest('tr');
        const state = row.querySelector('.state');
        state.textContent = t('state_revoked');
        state.dataset.state = 'revoked';
        status.textContent = `${t('state_revoked')}: ${row.querySelector('.filename').textContent}`;
        button.remove();
      } catch (error) {
        button.disabled = false;
        status.textContent = error.message;
      }
    });
  }
  const form = $('request-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type=submit]');
    if (button.disabled) return;
    button.disabled = true;
    const body = {
      max_size: Math.round(Number($('request-max').value) * 1024 * 1024),
      expires_in: Math.round(Number($('request-hours').value) * 3600),
    };
    const filename = $('request-filename').value.trim();
    if (filename) body.filename = filename;
    const note = $('request-note').value.trim();
    if (note) body.note = note;
    const from = $('request-from').value.trim();
    if (from) body.from = from;
    try {
      const request = await call('POST', '/api/v1/requests', body);
      $('request-result').hidden = false;
      $('request-link').value = request.url;
      $('request-status').textContent = t('request_link_ready');
      drawQr($('request-qr'), request.url).catch(() => {
        $('request-qr').hidden = true;
      });
    } catch (error) {
      $('request-status').textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
}

localiseTimes();
wireCopyButtons();
const pages = { send: sendPage, landing: landingPage, request: requestPage, shares: sharesPage };
const page = pages[document.body.dataset.page];
if (page) page();
