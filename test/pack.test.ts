import test from 'ava';
import { randomBytes } from 'node:crypto';
import { decodeIndex, encodeIndex } from '../core/blob-index.ts';
import { blobId, initCrypto, keysFromMaster } from '../core/crypto.ts';
import { openBlob, sealBlobParts } from '../core/envelope.ts';
import { IntegrityError } from '../core/errors.ts';
import { HEADER_PAD, NO_KEY_SLOT, buildPack, packTail, packTailMaxSize, parsePackHeader } from '../core/pack.ts';

test.before(async () => {
  await initCrypto();
});

function makeBlobs(n: number) {
  const keys = keysFromMaster(randomBytes(32));
  const blobs = Array.from({ length: n }, (_, i) => {
    const data = randomBytes(1000 + i * 37);
    const id = blobId(keys.idKey, data);
    return { data, id, sealed: sealBlobParts(keys.dataKey!, 'data', id, data, { algorithm: 'zstd', level: 1 }) };
  });
  return { keys, blobs };
}

test('a pack lists its blobs in a sealed header; every blob opens from its offset', (t) => {
  const { keys, blobs } = makeBlobs(20);
  const pack = buildPack(blobs.map((b) => ({ type: 'data', id: b.id, ...b.sealed })), keys.metaKey, NO_KEY_SLOT);
  const bytes = Buffer.concat(pack.parts);
  t.is(bytes.length, pack.size);
  const header = parsePackHeader(bytes, bytes.length, keys.metaKey, pack.name);
  t.is(header.entries.length, 20);
  for (const e of header.entries) {
    const b = blobs.find((x) => x.id.equals(e.id))!;
    t.deepEqual(openBlob(keys.dataKey!, 'data', e.id, bytes.subarray(e.offset, e.offset + e.length)), b.data);
  }
  t.is((header.headerSize - 4 - 41) % HEADER_PAD, 0, 'header plaintext is padded');
});

test('blobs are laid out in random order', (t) => {
  const { keys, blobs } = makeBlobs(30);
  const input = blobs.map((b) => ({ type: 'data' as const, id: b.id, ...b.sealed }));
  const orders = new Set(Array.from({ length: 5 }, () => buildPack(input, keys.metaKey, NO_KEY_SLOT).entries.map((e) => e.id.toString('hex')).join()));
  t.true(orders.size > 1);
});

test('a damaged header or a pack from another repository is an integrity error naming the pack', (t) => {
  const { keys, blobs } = makeBlobs(3);
  const pack = buildPack(blobs.map((b) => ({ type: 'data', id: b.id, ...b.sealed })), keys.metaKey, NO_KEY_SLOT);
  const bytes = Buffer.concat(pack.parts);
  const bad = Buffer.from(bytes);
  bad[bad.length - 10]! ^= 0xff;
  const e1 = t.throws(() => parsePackHeader(bad, bad.length, keys.metaKey, pack.name), { instanceOf: IntegrityError });
  t.true(e1.message.includes(pack.name));
  t.throws(() => parsePackHeader(bytes, bytes.length, keysFromMaster(randomBytes(32)).metaKey, pack.name), { instanceOf: IntegrityError });
  t.throws(() => parsePackHeader(bytes.subarray(0, 3), 3, keys.metaKey, pack.name), { instanceOf: IntegrityError });
});

test('index objects round-trip, and a truncated one is refused', (t) => {
  const { keys, blobs } = makeBlobs(5);
  const pack = buildPack(blobs.map((b) => ({ type: 'data', id: b.id, ...b.sealed })), keys.metaKey, { kind: 'sealed', sealedKey: randomBytes(80) });
  const contents = { supersedes: [randomBytes(32).toString('hex')], packs: [{ id: pack.name, size: pack.size, keySlot: pack.keySlot, blobs: pack.entries }] };
  const encoded = encodeIndex(contents);
  const decoded = decodeIndex(encoded, 'index/x');
  t.deepEqual(decoded.supersedes, contents.supersedes);
  t.is(decoded.packs[0]!.id, pack.name);
  t.deepEqual(decoded.packs[0]!.blobs, pack.entries);
  t.deepEqual(decoded.packs[0]!.keySlot, pack.keySlot);
  t.throws(() => decodeIndex(encoded.subarray(0, encoded.length - 5), 'index/x'), { instanceOf: IntegrityError, message: /index\/x/ });
});

test('the room a seal worker keeps for a pack header is never less than the header takes', (t) => {
  const metaKey = randomBytes(32);
  const sealed = { kind: 'sealed' as const, sealedKey: randomBytes(80) };
  for (const n of [1, 2, 100, 110, 111, 2000, 20_000]) {
    const entries = Array.from({ length: n }, (_, i) => ({ type: 'data' as const, id: randomBytes(32), offset: i * 10, length: 10 }));
    for (const slot of [NO_KEY_SLOT, sealed]) {
      const size = packTail(entries, metaKey, slot).length;
      t.true(size <= packTailMaxSize(n), `${n} entries: ${size} > ${packTailMaxSize(n)}`);
    }
  }
});
