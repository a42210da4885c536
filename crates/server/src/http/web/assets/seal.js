// The `once-v1` end-to-end encryption format (docs/encryption.md) on WebCrypto, for the pages
// and for Node (tests): the same bytes as the CLI's once-seal crate. Nothing here is a
// hand-written primitive; HKDF, AES-GCM, HMAC and X25519 are the platform's. Argon2id has no
// WebCrypto counterpart, so callers that need a password pass the implementation in.

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

export const SCHEME = 'once-v1';
export const RECORD_SIZE = 65536;
export const TAG_SIZE = 16;
export const SEALED_RECORD_SIZE = RECORD_SIZE + TAG_SIZE;
/** The parameters once picks for a password (the OWASP minimum for Argon2id). */
export const PASSWORD_PARAMS = { memory_kib: 19456, iterations: 2, parallelism: 1 };
/** Readers refuse larger parameters, so a server cannot make a client spend unbounded memory. */
export const PASSWORD_LIMITS = { memory_kib: 262144, iterations: 10, parallelism: 4 };

const SHARE_SALT = 'once/v1';
const REQUEST_SALT = 'once/v1 request';
const META_AAD = 'once/v1 metadata';

export class SealError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function b64u(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromB64u(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new SealError('bad_base64', 'not URL-safe base64 without padding');
  }
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  // Canonical only: unused low bits of the last character must be zero, so one value has one spelling.
  if (b64u(bytes) !== text) throw new SealError('bad_base64', 'not canonical base64');
  return bytes;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** 32 fresh random bytes: a share's secret `S`. */
export function newSecret() {
  return globalThis.crypto.getRandomValues(new Uint8Array(32));
}

/** 16 fresh random bytes and once's parameters: what a new password-protected share stores. */
export function newPasswordParams() {
  return { salt: b64u(globalThis.crypto.getRandomValues(new Uint8Array(16))), ...PASSWORD_PARAMS };
}

/** The secret out of a link's fragment (`#SECRET`), or null when there is none that fits. */
export function secretFromFragment(hash) {
  const text = (hash || '').replace(/^#/, '');
  try {
    const bytes = fromB64u(text);
    return bytes.length === 32 ? bytes : null;
  } catch {
    return null;
  }
}

async function deriveKeys(ikm, salt) {
  const base = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const expand = async (info, length) =>
    new Uint8Array(
      await subtle.deriveBits(
        { name: 'HKDF', hash: 'SHA-256', salt: utf8.encode(salt), info: utf8.encode(info) },
        base,
        length * 8,
      ),
    );
  const aes = (raw) => subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  const claimKey = await expand('once/v1 claim key', 32);
  return {
    content: await aes(await expand('once/v1 content key', 32)),
    nonceBase: await expand('once/v1 content nonce', 12),
    meta: await aes(await expand('once/v1 metadata key', 32)),
    claimKey,
    claim: await subtle.importKey('raw', claimKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
  };
}

function checkPasswordParams(params) {
  for (const [field, limit] of Object.entries(PASSWORD_LIMITS)) {
    const value = params[field];
    if (!Number.isInteger(value) || value < 1 || value > limit) {
      throw new SealError('bad_password_params', `Argon2id ${field} ${value} is out of bounds`);
    }
  }
  if (params.memory_kib < 8 * params.parallelism) {
    throw new SealError('bad_password_params', 'Argon2id needs at least 8 KiB of memory per lane');
  }
}

/**
 * The keys of a share: from the link's secret and, when the share has one, the password with its
 * stored parameters. `argon2id(password, salt, params)` → 32 bytes is the caller's
 * implementation (vendored; WebCrypto has none).
 */
export async function shareKeys(secret, { password, params, argon2id } = {}) {
  let ikm = secret;
  if (params) {
    checkPasswordParams(params);
    if (typeof password !== 'string') throw new SealError('password_required', 'this share needs its password');
    const stretched = await argon2id(utf8.encode(password.normalize('NFC')), fromB64u(params.salt), params);
    ikm = concat(secret, stretched);
  }
  return deriveKeys(ikm, SHARE_SALT);
}

function refuseZero(shared) {
  if (shared.every((byte) => byte === 0)) throw new SealError('bad_key', 'the X25519 shared secret is all zero');
}

/**
 * An uploader's keys for a request link's public key `R`: a fresh ephemeral pair `(e, E)`;
 * returns the keys and `E` (to send as ephemeral_key).
 */
export async function requestUploadKeys(recipient) {
  if (recipient.length !== 32) throw new SealError('bad_key', 'an X25519 public key is 32 bytes');
  const pair = await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
  const theirs = await subtle.importKey('raw', recipient, { name: 'X25519' }, false, []);
  const shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: theirs }, pair.privateKey, 256));
  refuseZero(shared);
  const ephemeral = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  return { keys: await deriveKeys(concat(shared, ephemeral, recipient), REQUEST_SALT), ephemeral };
}

/** The requester's side: its X25519 private CryptoKey, the uploader's `E` and its own `R`. */
export async function requestOpenKeys(privateKey, ephemeral, recipient) {
  const theirs = await subtle.importKey('raw', ephemeral, { name: 'X25519' }, false, []);
  const shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: theirs }, privateKey, 256));
  refuseZero(shared);
  return deriveKeys(concat(shared, ephemeral, recipient), REQUEST_SALT);
}

export function recordCount(plainSize) {
  return Math.max(1, Math.ceil(plainSize / RECORD_SIZE));
}

export function sealedSize(plainSize) {
  return plainSize + TAG_SIZE * recordCount(plainSize);
}

/** The plaintext length of `sealed` bytes of ciphertext, or a SealError when no file seals to it. */
export function plainSize(sealed) {
  const records = Math.ceil(sealed / SEALED_RECORD_SIZE);
  const last = sealed - (records - 1) * SEALED_RECORD_SIZE;
  if (!Number.isInteger(sealed) || sealed < TAG_SIZE || (records > 1 && last < TAG_SIZE + 1)) {
    throw new SealError('bad_length', `no once-v1 file is ${sealed} bytes sealed`);
  }
  return sealed - TAG_SIZE * records;
}

function recordNonce(keys, index, last) {
  const nonce = keys.nonceBase.slice();
  // Bytes 3..11 carry BE64(index), byte 11 the final flag; indexes stay below 2^53.
  let rest = index;
  for (let at = 10; at >= 3; at -= 1) {
    nonce[at] ^= rest % 256;
    rest = Math.floor(rest / 256);
  }
  nonce[11] ^= last ? 1 : 0;
  return nonce;
}

export async function sealRecord(keys, index, plaintext, last) {
  const iv = recordNonce(keys, index, last);
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv }, keys.content, plaintext));
}

export async function openRecord(keys, index, ciphertext, last) {
  try {
    const iv = recordNonce(keys, index, last);
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv }, keys.content, ciphertext));
  } catch {
    throw new SealError('bad_record', `record ${index} does not open with this key`);
  }
}

/**
 * Bytes `[start, end)` of the sealed form of a `size`-byte plaintext, sealing only the records
 * that overlap them; `read(offset, length)` → plaintext bytes. The nonces are derived, so the
 * same range always comes out byte for byte the same (retried and resumed parts).
 */
export async function sealedRange(keys, size, read, start, end) {
  const records = recordCount(size);
  const out = new Uint8Array(end - start);
  for (let index = Math.floor(start / SEALED_RECORD_SIZE); index * SEALED_RECORD_SIZE < end; index += 1) {
    const offset = index * RECORD_SIZE;
    const plain = await read(offset, Math.min(RECORD_SIZE, size - offset));
    const sealed = await sealRecord(keys, index, plain, index === records - 1);
    const at = index * SEALED_RECORD_SIZE;
    const from = Math.max(start, at);
    const to = Math.min(end, at + sealed.length);
    out.set(sealed.subarray(from - at, to - at), from - start);
  }
  return out;
}

/**
 * A TransformStream from ciphertext (starting at record `firstRecord`) to plaintext of a file
 * sealed to `sealed` bytes: it holds at most one record, and errors on the first record that
 * does not open or when the stream ends short.
 */
export function openingStream(keys, sealed, firstRecord = 0) {
  plainSize(sealed); // refuses a length no file seals to
  const records = Math.ceil(sealed / SEALED_RECORD_SIZE);
  let index = firstRecord;
  let pending = new Uint8Array(0);
  const flushRecords = async (controller, final) => {
    while (index < records) {
      const want = index === records - 1 ? sealed - index * SEALED_RECORD_SIZE : SEALED_RECORD_SIZE;
      if (pending.length < want) break;
      if (index === records - 1 && pending.length > want) break;
      controller.enqueue(await openRecord(keys, index, pending.subarray(0, want), index === records - 1));
      pending = pending.slice(want);
      index += 1;
    }
    if (final && (index < records || pending.length > 0)) {
      throw new SealError('bad_length', 'the ciphertext ended early or ran long');
    }
  };
  return new TransformStream({
    async transform(chunk, controller) {
      pending = pending.length ? concat(pending, chunk) : chunk;
      if (index >= records && pending.length) throw new SealError('bad_length', 'the ciphertext ran long');
      await flushRecords(controller, false);
    },
    async flush(controller) {
      await flushRecords(controller, true);
    },
  });
}

export async function sealMeta(keys, metadata) {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const sealed = await subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: utf8.encode(META_AAD) },
    keys.meta,
    utf8.encode(JSON.stringify(metadata)),
  );
  return b64u(concat(nonce, new Uint8Array(sealed)));
}

/** The metadata, or a SealError `wrong_key` (a wrong password or link fails here, claiming nothing). */
export async function openMeta(keys, sealedMeta) {
  const bytes = fromB64u(sealedMeta);
  let plain;
  try {
    plain = await subtle.decrypt(
      { name: 'AES-GCM', iv: bytes.subarray(0, 12), additionalData: utf8.encode(META_AAD) },
      keys.meta,
      bytes.subarray(12),
    );
  } catch {
    throw new SealError('wrong_key', 'the key or password does not open this share');
  }
  return JSON.parse(new TextDecoder().decode(plain));
}

/** The `X-Once-Proof` header value for a challenge from `GET /s/{id}/seal`. */
export async function claimProof(keys, id, challenge) {
  const mac = await subtle.sign('HMAC', keys.claim, utf8.encode(`once/v1 claim\n${id}\n${challenge}`));
  return `${challenge}.${b64u(new Uint8Array(mac))}`;
}

/** What NewShare's `encryption` carries for these keys. */
export function newEncryption(keys, sealedMetaText, extra = {}) {
  return { scheme: SCHEME, claim_key: b64u(keys.claimKey), sealed_meta: sealedMetaText, ...extra };
}
