import test from 'ava';
import { randomBytes, randomFillSync } from 'node:crypto';
import wasmLib from 'libsodium-wrappers-sumo';
import { hchacha20 } from '../core/crypto.ts';
import { type Sodium, loadNativeSodium, loadSodium, loadWasmSodium } from '../core/sodium.ts';

let native: Sodium;
let wasm: Sodium;

test.before(async () => {
  const n = loadNativeSodium();
  if (!n) throw new Error('sodium-native did not load on this platform');
  native = n;
  wasm = await loadWasmSodium();
  await wasmLib.ready;
});

test('the compiled build loads here, and STOWAGE_SODIUM=wasm selects the WebAssembly one', async (t) => {
  t.is((await loadSodium({})).build, 'native');
  t.is((await loadSodium({ STOWAGE_SODIUM: 'wasm' })).build, 'wasm');
});

test('keyed BLAKE2b is the same in both builds, for private buffers and misaligned views into shared memory', (t) => {
  const shared = Buffer.from(new SharedArrayBuffer(1 << 20));
  randomFillSync(shared);
  for (const [offset, size] of [[0, 0], [1, 1], [3, 127], [0, 128], [5, 129], [7, 1_000_000]] as const) {
    const key = randomBytes(32);
    const view = shared.subarray(offset, offset + size);
    const a = Buffer.alloc(32);
    const b = Buffer.alloc(32);
    native.generichash(a, view, key);
    wasm.generichash(b, view, key);
    t.deepEqual(a, b, `size ${size} at ${offset}`);
    t.deepEqual(a, Buffer.from(wasmLib.crypto_generichash(32, Buffer.from(view), key)));
  }
});

test('subkeys, box key pairs and Argon2id are the same in both builds', (t) => {
  const master = randomBytes(32);
  for (const id of [1, 2, 3]) t.deepEqual(native.kdfDerive(32, id, 'stw-mstr', master), wasm.kdfDerive(32, id, 'stw-mstr', master));
  const seed = randomBytes(32);
  t.deepEqual(native.boxSeedKeypair(seed), wasm.boxSeedKeypair(seed));
  const salt = randomBytes(16);
  for (const password of ['pw', 'pässwörd with spaces', '']) {
    t.deepEqual(native.argon2id(32, password, salt, 2, 8 << 20), wasm.argon2id(32, password, salt, 2, 8 << 20), JSON.stringify(password));
  }
});

test('a sealed box made by either build opens in the other, and a tampered or short one opens in neither', (t) => {
  const pair = native.boxSeedKeypair(randomBytes(32));
  const key = randomBytes(32);
  for (const [seal, open] of [[native, wasm], [wasm, native]] as const) {
    const box = seal.boxSeal(key, pair.publicKey);
    t.deepEqual(open.boxSealOpen(box, pair.publicKey, pair.secretKey), key);
    const bad = Buffer.from(box);
    bad[bad.length - 1]! ^= 1;
    t.is(open.boxSealOpen(bad, pair.publicKey, pair.secretKey), null);
    t.is(open.boxSealOpen(box.subarray(0, 20), pair.publicKey, pair.secretKey), null);
  }
});

test('HChaCha20 from OpenSSL\'s ChaCha20 equals libsodium\'s crypto_core_hchacha20', (t) => {
  for (let i = 0; i < 200; i++) {
    const key = randomBytes(32);
    const input = randomBytes(16);
    t.deepEqual(hchacha20(input, key), Buffer.from(wasmLib.crypto_core_hchacha20(input, key, null)));
  }
});
