import test from 'ava';
import { randomBytes, randomFillSync } from 'node:crypto';
import sodium from 'libsodium-wrappers-sumo';
import { blobId, initCrypto, keysFromMaster, keysFromWriteSecret, open, openContentKey, seal, sealContentKey, sealOffset, sealParts, sealPartsInto } from '../core/crypto.ts';
import { blobAd, openBlob, openObject, openVerifiedBlob, openVerifiedBlobLent, sealBlob, sealObject } from '../core/envelope.ts';

test.before(async () => {
  await initCrypto();
  await sodium.ready;
});

test('XChaCha20-Poly1305 from HChaCha20 and native ChaCha20-Poly1305 equals libsodium byte for byte', (t) => {
  for (const size of [0, 1, 63, 64, 65, 1000, 1 << 16]) {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const ad = randomBytes(34);
    const msg = randomBytes(size);
    const ours = seal(key, msg, ad, nonce);
    const theirs = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key);
    t.deepEqual(ours.subarray(24), Buffer.from(theirs), `size ${size}`);
    t.deepEqual(ours.subarray(0, 24), nonce);
    t.deepEqual(open(key, ours, ad), msg);
    t.deepEqual(Buffer.from(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ours.subarray(24), ad, nonce, key)), msg);
  }
});

test('a sealed payload does not open with another key, other additional data, or one flipped bit', (t) => {
  const key = randomBytes(32);
  const ad = Buffer.from('ad');
  const sealed = seal(key, Buffer.from('secret'), ad);
  t.is(open(randomBytes(32), sealed, ad), null);
  t.is(open(key, sealed, Buffer.from('other')), null);
  for (let i = 0; i < sealed.length; i++) {
    const bad = Buffer.from(sealed);
    bad[i]! ^= 1;
    t.is(open(key, bad, ad), null, `bit flip at byte ${i}`);
  }
  t.is(open(key, sealed.subarray(0, sealed.length - 1), ad), null);
});

test('a blob moved to another ID or type does not open', (t) => {
  const keys = keysFromMaster(randomBytes(32));
  const data = Buffer.from('file contents');
  const id = blobId(keys.idKey, data);
  const sealed = sealBlob(keys.dataKey!, 'data', id, data, { algorithm: 'zstd', level: 1 });
  t.deepEqual(openBlob(keys.dataKey!, 'data', id, sealed), data);
  t.is(openBlob(keys.dataKey!, 'tree', id, sealed), null);
  t.is(openBlob(keys.dataKey!, 'data', blobId(keys.idKey, Buffer.from('other')), sealed), null);
  t.is(blobAd('data', id).length, 34);
});

test('blob IDs are keyed: the same content gets different IDs in different repositories', (t) => {
  const a = keysFromMaster(randomBytes(32));
  const b = keysFromMaster(randomBytes(32));
  const data = Buffer.from('the same file');
  t.deepEqual(blobId(a.idKey, data), blobId(a.idKey, data));
  t.notDeepEqual(blobId(a.idKey, data), blobId(b.idKey, data));
  t.deepEqual(blobId(a.idKey, data), Buffer.from(sodium.crypto_generichash(32, data, a.idKey)));
});

test('compressible objects are stored compressed and open to the same bytes', (t) => {
  const keys = keysFromMaster(randomBytes(32));
  const text = Buffer.from('log line with repeated words\n'.repeat(5000));
  const sealed = sealObject(keys.metaKey, 'snapshot', text, { algorithm: 'zstd', level: 1 });
  t.true(sealed.length < text.length / 10);
  t.deepEqual(openObject(keys.metaKey, 'snapshot', sealed), text);
  t.is(openObject(keys.metaKey, 'index', sealed), null, 'an object of another type does not open');
  const random = randomBytes(200_000);
  const sealedRandom = sealObject(keys.metaKey, 'snapshot', random, { algorithm: 'zstd', level: 1 });
  t.is(sealedRandom.length, random.length + 41, 'incompressible data is stored raw: codec byte + nonce + tag');
});

test('a host key derives the same ID and metadata keys as the full key but no data key', (t) => {
  const full = keysFromMaster(randomBytes(32));
  const host = keysFromWriteSecret(full.writeSecret, full.recoveryPublicKey);
  t.deepEqual(host.idKey, full.idKey);
  t.deepEqual(host.metaKey, full.metaKey);
  t.is(host.dataKey, null);
  t.is(host.recoverySecretKey, null);
  const contentKey = randomBytes(32);
  const slot = sealContentKey(contentKey, full.recoveryPublicKey);
  t.deepEqual(openContentKey(slot, full), contentKey);
  t.is(openContentKey(slot, host), null);
});

test('sealing into a buffer, shared memory included, gives the bytes sealParts gives, at any offset', (t) => {
  for (const size of [0, 1, 7, 8, 9, 1000, 200_000]) {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const ad = randomBytes(34);
    const parts = [Buffer.from([1]), randomBytes(size)];
    const expected = Buffer.concat(sealParts(key, parts, ad, nonce));
    for (const offset of [0, 8, 13]) {
      const target = new Uint8Array(new SharedArrayBuffer(offset + expected.length + 5));
      const n = sealPartsInto(key, parts, ad, target, offset, nonce);
      t.is(n, expected.length);
      t.deepEqual(Buffer.from(target.subarray(offset, offset + n)), expected, `size ${size} at ${offset}`);
    }
  }
  t.throws(() => sealPartsInto(randomBytes(32), [randomBytes(100)], Buffer.alloc(0), new Uint8Array(100), 0), { instanceOf: RangeError });
});

test('a blob ID of a view into shared memory equals the ID of the same bytes in a private buffer', (t) => {
  const key = randomBytes(32);
  const shared = Buffer.from(new SharedArrayBuffer(200_000));
  randomFillSync(shared);
  for (const [offset, size] of [[0, 0], [3, 1], [1, 4095], [8, 4096], [5, 100_000], [0, 200_000]] as const) {
    const view = shared.subarray(offset, offset + size);
    t.deepEqual(blobId(key, view), blobId(key, Buffer.from(view)), `size ${size} at ${offset}`);
  }
});

test('a blob is sealed at most 7 bytes on, where its largest part lands in step with its source modulo 8', (t) => {
  const source = Buffer.from(new SharedArrayBuffer(4096));
  for (let end = 0; end < 16; end++) {
    for (let at = 0; at < 16; at++) {
      const parts = [Buffer.from([1]), source.subarray(at, at + 1000)];
      const offset = sealOffset(end, parts);
      t.true(offset >= end && offset <= end + 7, `end ${end}, source at ${at}: ${offset}`);
      // The body follows the nonce and the one codec byte.
      t.is((offset + 24 + 1) % 8, at % 8, `end ${end}, source at ${at}`);
    }
  }
});

test('a blob opened into the thread buffers equals one opened into its own, and fails the same checks', async (t) => {
  await initCrypto();
  const idKey = randomBytes(32);
  const key = randomBytes(32);
  const zstd = { algorithm: 'zstd', level: 3 } as const;
  const texts = [Buffer.from('stowage '.repeat(50_000)), randomBytes(300_000), Buffer.from('x')];
  for (const plain of texts) {
    const id = blobId(idKey, plain);
    const sealed = sealBlob(key, 'data', id, plain, zstd);
    const lent = openVerifiedBlobLent(idKey, key, 'data', id, sealed);
    t.true(lent instanceof Uint8Array && Buffer.from(lent).equals(plain));
    t.true((openVerifiedBlob(idKey, key, 'data', id, sealed) as Buffer).equals(plain));
    const damaged = Buffer.from(sealed);
    damaged[damaged.length >> 1]! ^= 1;
    t.is(openVerifiedBlobLent(idKey, key, 'data', id, damaged), 'decrypt');
    // Sealed under another blob's ID (a forged blob): the AD binds the ID, so it must say so on opening...
    const other = blobId(idKey, Buffer.from('other'));
    t.is(openVerifiedBlobLent(idKey, key, 'data', other, sealed), 'decrypt');
    // ...and a blob sealed whole under a wrong ID opens but fails the ID check, unless told not to check.
    const forged = sealBlob(key, 'data', other, plain, zstd);
    t.is(openVerifiedBlobLent(idKey, key, 'data', other, forged), 'id');
    t.true(Buffer.from(openVerifiedBlobLent(idKey, key, 'data', other, forged, false) as Uint8Array).equals(plain));
  }
});
