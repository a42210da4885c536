// The browser's once-v1 module (assets/seal.js) under Node's WebCrypto: round trips at the record
// edges, part ranges that come out identical however they are cut, tampering of every kind the
// format promises to catch, passwords (NFC, wrong, hostile parameters), request keys and the
// claim proof.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ASSETS = path.resolve(HERE, '../../crates/server/src/http/web/assets');
const seal = await import(path.join(ASSETS, 'seal.js'));
const { argon2idAsync } = await import(path.join(ASSETS, 'vendor/argon2.mjs'));
const { RECORD_SIZE: RS, SEALED_RECORD_SIZE: SRS } = seal;

const argon2id = (password, salt, params) =>
  argon2idAsync(password, salt, { m: params.memory_kib, t: params.iterations, p: params.parallelism, dkLen: 32 });

function reader(plain) {
  return async (offset, length) => plain.subarray(offset, offset + length);
}

async function sealWhole(keys, plain) {
  return seal.sealedRange(keys, plain.length, reader(plain), 0, seal.sealedSize(plain.length));
}

/** Plaintext out of `sealed` fed in chunks of `chunk` bytes, or the stream's error. */
async function openAll(keys, sealed, { chunk = 7000, firstRecord = 0, total = sealed.length } = {}) {
  const source = new ReadableStream({
    start(controller) {
      for (let at = 0; at < sealed.length; at += chunk) controller.enqueue(sealed.slice(at, at + chunk));
      controller.close();
    },
  });
  const parts = [];
  for await (const part of source.pipeThrough(seal.openingStream(keys, total, firstRecord))) parts.push(part);
  return Buffer.concat(parts);
}

const SIZES = [0, 1, RS - 1, RS, RS + 1, 3 * RS + 5];

describe('records', () => {
  for (const size of SIZES) {
    it(`round trip of ${size} bytes, and any cut of the parts gives the same bytes`, async () => {
      const keys = await seal.shareKeys(seal.newSecret());
      const plain = new Uint8Array(randomBytes(size));
      const sealed = await sealWhole(keys, plain);
      assert.equal(sealed.length, seal.sealedSize(size));
      assert.equal(seal.plainSize(sealed.length), size);
      assert.deepEqual(await openAll(keys, sealed), Buffer.from(plain));
      // Parts cut at odd places (as a multipart upload with a part size not on a record edge).
      const cuts = [0, 5, SRS - 3, SRS + 17, 2 * SRS, sealed.length].filter((at) => at <= sealed.length);
      const pieces = [];
      for (let i = 1; i < cuts.length; i += 1) {
        if (cuts[i] > cuts[i - 1]) {
          pieces.push(await seal.sealedRange(keys, size, reader(plain), cuts[i - 1], cuts[i]));
        }
      }
      assert.deepEqual(Buffer.concat(pieces), Buffer.from(sealed));
    });
  }

  it('a download resumed at a record boundary opens from there', async () => {
    const keys = await seal.shareKeys(seal.newSecret());
    const plain = new Uint8Array(randomBytes(3 * RS + 5));
    const sealed = await sealWhole(keys, plain);
    const resumed = await openAll(keys, sealed.subarray(2 * SRS), { firstRecord: 2, total: sealed.length });
    assert.deepEqual(resumed, Buffer.from(plain.subarray(2 * RS)));
  });

  it('lengths no file seals to are refused', () => {
    for (const bad of [0, 15, SRS + 1, SRS + 16, 2 * SRS + 16]) {
      assert.throws(() => seal.plainSize(bad), { code: 'bad_length' }, `${bad}`);
    }
    assert.equal(seal.plainSize(16), 0);
    assert.equal(seal.plainSize(SRS), RS);
    assert.equal(seal.plainSize(SRS + 17), RS + 1);
    assert.equal(seal.plainSize(2 * SRS), 2 * RS);
  });

  it('a flipped bit, reordered, dropped or duplicated record and a cut at a boundary all fail', async () => {
    const keys = await seal.shareKeys(seal.newSecret());
    const plain = new Uint8Array(randomBytes(3 * RS + 5));
    const sealed = await sealWhole(keys, plain);
    const record = (i) => sealed.subarray(i * SRS, Math.min(sealed.length, (i + 1) * SRS));
    const flipped = sealed.slice();
    flipped[SRS + 100] ^= 1;
    const cases = {
      flipped,
      reordered: Buffer.concat([record(1), record(0), record(2), record(3)]),
      dropped: Buffer.concat([record(0), record(2), record(3)]),
      duplicated: Buffer.concat([record(0), record(0), record(2), record(3)]),
      truncated: Buffer.concat([record(0), record(1), record(2)]),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      await assert.rejects(openAll(keys, new Uint8Array(bytes)), seal.SealError, name);
    }
    // A stream that ends before the length it was announced with errors too.
    await assert.rejects(openAll(keys, sealed.subarray(0, 2 * SRS), { total: sealed.length }), { code: 'bad_length' });
    // And another key opens nothing.
    const other = await seal.shareKeys(seal.newSecret());
    await assert.rejects(openAll(other, sealed), { code: 'bad_record' });
  });
});

describe('metadata, passwords and claims', () => {
  const meta = { name: 'räport.pdf', type: 'application/pdf', size: 5, note: 'for you' };

  it('the metadata opens with the key and says wrong_key with another', async () => {
    const secret = seal.newSecret();
    const keys = await seal.shareKeys(secret);
    const sealedMeta = await seal.sealMeta(keys, meta);
    assert.deepEqual(await seal.openMeta(await seal.shareKeys(secret), sealedMeta), meta);
    await assert.rejects(seal.openMeta(await seal.shareKeys(seal.newSecret()), sealedMeta), { code: 'wrong_key' });
  });

  it('a password is NFC-normalised, a wrong one fails, hostile parameters are refused', async () => {
    const secret = seal.newSecret();
    const params = seal.newPasswordParams();
    assert.deepEqual({ ...params, salt: undefined }, { ...seal.PASSWORD_PARAMS, salt: undefined });
    const keys = await seal.shareKeys(secret, { password: 'caf\u00e9', params, argon2id });
    const sealedMeta = await seal.sealMeta(keys, meta);
    const decomposed = await seal.shareKeys(secret, { password: 'cafe\u0301', params, argon2id });
    assert.deepEqual(await seal.openMeta(decomposed, sealedMeta), meta);
    const wrong = await seal.shareKeys(secret, { password: 'cafe', params, argon2id });
    await assert.rejects(seal.openMeta(wrong, sealedMeta), { code: 'wrong_key' });
    const none = await seal.shareKeys(secret);
    await assert.rejects(seal.openMeta(none, sealedMeta), { code: 'wrong_key' });
    await assert.rejects(seal.shareKeys(secret, { params, argon2id }), { code: 'password_required' });
    for (const hostile of [{ memory_kib: 262145 }, { iterations: 11 }, { parallelism: 5 }, { iterations: 0 }, { memory_kib: 31, parallelism: 4 }]) {
      await assert.rejects(seal.shareKeys(secret, { password: 'x', params: { ...params, ...hostile }, argon2id }), {
        code: 'bad_password_params',
      });
    }
  });

  it('the claim proof is the challenge and an HMAC-SHA-256 of id and challenge under the claim key', async () => {
    const keys = await seal.shareKeys(seal.newSecret());
    const proof = await seal.claimProof(keys, 'OKDgVGP7waQUuPNv0JI9tg', 'chal.lenge');
    const expected = createHmac('sha256', keys.claimKey).update('once/v1 claim\nOKDgVGP7waQUuPNv0JI9tg\nchal.lenge').digest();
    assert.equal(proof, `chal.lenge.${seal.b64u(new Uint8Array(expected))}`);
    const encryption = seal.newEncryption(keys, 'meta');
    assert.equal(encryption.scheme, 'once-v1');
    assert.equal(seal.fromB64u(encryption.claim_key).length, 32);
  });

  it('an upload to a request and the requester derive the same keys', async () => {
    const requester = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
    const recipient = new Uint8Array(await crypto.subtle.exportKey('raw', requester.publicKey));
    const link = `#${seal.b64u(recipient)}`;
    const { keys, ephemeral } = await seal.requestUploadKeys(seal.secretFromFragment(link));
    const plain = new Uint8Array(randomBytes(RS + 1));
    const sealed = await sealWhole(keys, plain);
    const theirs = await seal.requestOpenKeys(requester.privateKey, ephemeral, recipient);
    assert.deepEqual(await openAll(theirs, sealed), Buffer.from(plain));
    // The all-zero public key (a low-order point) is refused rather than used.
    await assert.rejects(seal.requestUploadKeys(new Uint8Array(32)));
  });

  it('fragments: a 43-character secret reads back, anything else is none', () => {
    const secret = seal.newSecret();
    assert.deepEqual(seal.secretFromFragment(`#${seal.b64u(secret)}`), secret);
    const last = seal.b64u(secret).slice(-1);
    const offBits = String.fromCharCode(last.charCodeAt(0) + 1); // the same data bits, an unused bit set
    for (const bad of ['', '#', '#abc', '#!!!', `#${seal.b64u(secret)}A`, `#${seal.b64u(secret).slice(0, -1)}${offBits}`]) assert.equal(seal.secretFromFragment(bad), null);
  });
});

describe('the once-seal test vectors (crates/seal/tests/vectors.json)', () => {
  const vectors = JSON.parse(readFileSync(path.resolve(HERE, '../../crates/seal/tests/vectors.json'), 'utf8'));
  const hex = (text) => new Uint8Array(Buffer.from(text, 'hex'));
  const toHex = (bytes) => Buffer.from(bytes).toString('hex');
  const { inputs } = vectors;
  const params = { salt: inputs.password_salt_b64u, memory_kib: inputs.memory_kib, iterations: inputs.iterations, parallelism: inputs.parallelism };

  it('a share: keys, records, metadata and proof are the same bytes as the crate’s', async () => {
    assert.deepEqual(seal.secretFromFragment(`#${inputs.secret_fragment}`), hex(inputs.secret));
    const keys = await seal.shareKeys(hex(inputs.secret));
    assert.equal(toHex(keys.claimKey), vectors.share.claim_key);
    assert.equal(toHex(keys.nonceBase), vectors.share.content_nonce_base);
    const short = new TextEncoder().encode(vectors.content.short_input);
    assert.equal(toHex(await seal.sealRecord(keys, 0, short, true)), vectors.content.short_sealed);
    assert.equal(toHex(await seal.sealRecord(keys, 0, new Uint8Array(0), true)), vectors.content.empty_sealed);
    assert.deepEqual(await seal.openMeta(keys, vectors.metadata.sealed), JSON.parse(inputs.metadata));
    assert.equal(await seal.claimProof(keys, inputs.share_id, inputs.challenge), vectors.claim.proof);
  });

  it('a share with a password: Argon2id and the keys match', async () => {
    const keys = await seal.shareKeys(hex(inputs.secret), { password: inputs.password, params, argon2id });
    assert.equal(toHex(keys.claimKey), vectors.password_share.keys.claim_key);
    assert.equal(toHex(keys.nonceBase), vectors.password_share.keys.content_nonce_base);
    assert.deepEqual(await seal.openMeta(keys, vectors.metadata.password_sealed), JSON.parse(inputs.metadata));
    assert.equal(await seal.claimProof(keys, inputs.share_id, inputs.challenge), vectors.claim.password_proof);
  });

  it('a request: the requester’s keys from its private key match', async () => {
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(inputs.request_private_key, 'hex')]);
    const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, false, ['deriveBits']);
    const recipient = seal.secretFromFragment(`#${vectors.request.recipient_fragment}`);
    assert.equal(toHex(recipient), vectors.request.recipient_public_key);
    const keys = await seal.requestOpenKeys(privateKey, hex(vectors.request.ephemeral_public_key), recipient);
    assert.equal(toHex(keys.claimKey), vectors.request.keys.claim_key);
    assert.equal(toHex(keys.nonceBase), vectors.request.keys.content_nonce_base);
  });
});
