/**
 * The primitives of repository format v1 (docs/repository-format.md §3):
 * XChaCha20-Poly1305 sealing with typed additional data, keyed BLAKE2b-256
 * blob IDs, and the key hierarchy derived from the master secret.
 *
 * XChaCha20-Poly1305 is built from HChaCha20 and Node's native IETF
 * ChaCha20-Poly1305, both OpenSSL's. That is exactly libsodium's
 * construction (test/crypto.test.ts pins the bytes) and runs at the speed of
 * its compiled build, twice its WebAssembly build's; sealing is on the hot
 * path of every backup. Everything else is libsodium (core/sodium.ts).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { loadSodium, type Sodium } from './sodium.ts';

export const NONCE_SIZE = 24;
export const TAG_SIZE = 16;
/** Bytes a sealed payload adds to its plaintext: nonce and tag. */
export const SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;
export const ID_SIZE = 32;
/** crypto_box_seal of a 32-byte key: ephemeral public key + MAC + key. */
export const SEALED_KEY_SIZE = 32 + 16 + 32;

let sodium: Sodium | null = null;

/**
 * Loads libsodium once per thread. It is loaded here, not at the top, so
 * that a command can read its key file and start the key derivation before
 * it pays for loading libsodium itself (the WebAssembly build takes tens of
 * milliseconds to compile).
 */
export async function initCrypto(): Promise<void> {
  sodium ??= await loadSodium();
}

function lib(): Sodium {
  if (!sodium) throw new Error('initCrypto() was not awaited before using crypto');
  return sodium;
}

export function randomKey(): Buffer {
  return randomBytes(KEY_SIZE);
}

const ZERO4 = Buffer.alloc(4);
const ZERO_BLOCK = Buffer.alloc(64);
/** "expand 32-byte k", ChaCha's first four state words. */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const;

/**
 * HChaCha20(key, input): ChaCha20's core without its final addition, words
 * 0–3 and 12–15. OpenSSL's ChaCha20 takes the 16 input bytes as words
 * 12–15 of its state (counter and nonce) and returns core + state as the
 * first keystream block, so subtracting those state words gives the
 * HChaCha20 output.
 */
export function hchacha20(input: Uint8Array, key: Uint8Array): Buffer {
  const block = createCipheriv('chacha20', key, input).update(ZERO_BLOCK);
  const inWords = Buffer.from(input.buffer, input.byteOffset, 16);
  const out = Buffer.allocUnsafe(32);
  for (let i = 0; i < 4; i++) {
    out.writeUInt32LE((block.readUInt32LE(4 * i) - SIGMA[i]!) >>> 0, 4 * i);
    out.writeUInt32LE((block.readUInt32LE(48 + 4 * i) - inWords.readUInt32LE(4 * i)) >>> 0, 16 + 4 * i);
  }
  return out;
}

function subkeyAndIv(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Buffer } {
  const subkey = hchacha20(nonce.subarray(0, 16), key);
  const iv = Buffer.concat([ZERO4, nonce.subarray(16, 24)]);
  return { subkey, iv };
}

/**
 * Seals the concatenation of `parts` as nonce ‖ ciphertext ‖ tag, returned
 * as pieces (no copy into one buffer: a pack is written from the pieces).
 * `ad` is authenticated but not stored: the reader must know it (the blob's
 * ID and type, say), which is what makes a moved or swapped object fail to
 * open.
 */
export function sealParts(key: Uint8Array, parts: readonly Uint8Array[], ad: Uint8Array, nonce: Uint8Array = randomBytes(NONCE_SIZE)): Buffer[] {
  const { subkey, iv } = subkeyAndIv(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_SIZE });
  const length = parts.reduce((n, p) => n + p.length, 0);
  cipher.setAAD(ad, { plaintextLength: length });
  const out: Buffer[] = [Buffer.from(nonce)];
  for (const p of parts) {
    const c = cipher.update(p);
    if (c.length > 0) out.push(c);
  }
  const rest = cipher.final();
  if (rest.length > 0) out.push(rest);
  out.push(cipher.getAuthTag());
  return out;
}

/** Input slice for sealing into a buffer: the cipher's output for it is a small, reused allocation. */
const SEAL_SLICE = 128 * 1024;

/**
 * The bytes of `parts` in slices of at most `max` whose lengths, all but the
 * last, are multiples of 8; pieces shorter than that are joined (a copy of
 * under 8 bytes), longer ones are cut without copying.
 */
function* wordSlices(parts: readonly Uint8Array[], max: number): Generator<Uint8Array> {
  let carry: Uint8Array | null = null;
  for (const p of parts) {
    let i = 0;
    if (carry) {
      const take = Math.min(8 - carry.length, p.length);
      const joined: Uint8Array = new Uint8Array(carry.length + take);
      joined.set(carry);
      joined.set(p.subarray(0, take), carry.length);
      carry = joined;
      i = take;
      if (carry.length < 8) continue;
      yield carry;
      carry = null;
    }
    while (p.length - i >= 8) {
      const n = Math.min(max, (p.length - i) & ~7);
      yield p.subarray(i, i + n);
      i += n;
    }
    if (i < p.length) carry = p.slice(i);
  }
  if (carry) yield carry;
}

/**
 * Seals the concatenation of `parts` into `target` at `offset`, as nonce ‖
 * ciphertext ‖ tag (the bytes sealParts makes), and returns how many bytes
 * that took: plaintext length + SEAL_OVERHEAD. With the compiled libsodium
 * the parts are copied into place and sealed there. Otherwise OpenSSL
 * encrypts a slice at a time, so no output buffer the size of the blob is
 * allocated (each slice's output is: two per slice, in fact, in Node's
 * cipher); with `offset` a multiple of 8, every slice but the last lands on
 * a multiple of 8, where a copy into shared memory goes word by word.
 */
export function sealPartsInto(
  key: Uint8Array,
  parts: readonly Uint8Array[],
  ad: Uint8Array,
  target: Uint8Array,
  offset: number,
  nonce: Uint8Array = randomBytes(NONCE_SIZE),
): number {
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (offset + length + SEAL_OVERHEAD > target.length) throw new RangeError('sealed blob does not fit the target buffer');
  target.set(nonce, offset);
  const aead = lib().aead;
  if (aead) {
    // The plaintext is gathered where its ciphertext goes and sealed there in place: one copy, no allocation.
    const start = offset + NONCE_SIZE;
    const out = Buffer.from(target.buffer, target.byteOffset + start, length + TAG_SIZE);
    let o = 0;
    for (const p of parts) o += Buffer.from(p.buffer, p.byteOffset, p.length).copy(out, o);
    aead.seal(out, out.subarray(0, length), ad, nonce, key);
    return length + SEAL_OVERHEAD;
  }
  const { subkey, iv } = subkeyAndIv(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_SIZE });
  cipher.setAAD(ad, { plaintextLength: length });
  let o = offset + NONCE_SIZE;
  for (const slice of wordSlices(parts, SEAL_SLICE)) {
    const c = cipher.update(slice);
    target.set(c, o);
    o += c.length;
  }
  const rest = cipher.final();
  target.set(rest, o);
  o += rest.length;
  target.set(cipher.getAuthTag(), o);
  return o + TAG_SIZE - offset;
}

/**
 * Where to seal `parts` into shared memory with sealPartsInto: the first
 * position at or after `end` from which the copies go word by word. V8 copies
 * into and out of shared memory by machine words only where source and
 * target sit at the same offset modulo 8, byte by byte otherwise (a fifth of
 * the speed, measured). With the compiled libsodium the largest part is
 * copied into place, so the blob starts where that part lands in step with
 * its source; otherwise the cipher's slices (fresh, aligned buffers) are
 * copied, so the blob starts on a multiple of 8. At most 7 bytes are skipped.
 */
export function sealOffset(end: number, parts: readonly Uint8Array[]): number {
  if (!lib().aead) return (end + 7) & ~7;
  let largest = 0;
  for (let i = 1; i < parts.length; i++) if (parts[i]!.length > parts[largest]!.length) largest = i;
  let before = NONCE_SIZE;
  for (let i = 0; i < largest; i++) before += parts[i]!.length;
  return end + ((((parts[largest]!.byteOffset - before - end) % 8) + 8) % 8);
}

/** Seals `plaintext` as one buffer: nonce ‖ ciphertext ‖ tag. */
export function seal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, nonce?: Uint8Array): Buffer {
  return Buffer.concat(sealParts(key, [plaintext], ad, nonce));
}

/** Opens a sealed payload; `null` when it is not authentic under key and ad. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  // OpenSSL's cipher makes its own output buffer.
  return openInto(key, sealed, ad, lib().aead ? Buffer.allocUnsafe(sealed.length - SEAL_OVERHEAD) : NO_BUFFER);
}
const NO_BUFFER = Buffer.alloc(0);

/**
 * Opens `sealed` into `out` (at least sealed.length - SEAL_OVERHEAD long):
 * the plaintext as a view of `out`, or null. Where only OpenSSL's cipher is
 * at hand the plaintext comes back in a buffer of its own instead.
 */
export function openInto(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array, out: Buffer): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const nonce = sealed.subarray(0, NONCE_SIZE);
  const aead = lib().aead;
  if (aead) {
    if (out.length < sealed.length - SEAL_OVERHEAD) throw new RangeError('open: the output buffer is shorter than the plaintext');
    const plain = out.subarray(0, sealed.length - SEAL_OVERHEAD);
    return aead.open(plain, sealed.subarray(NONCE_SIZE), ad, nonce, key) ? plain : null;
  }
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  const body = sealed.subarray(NONCE_SIZE, sealed.length - TAG_SIZE);
  const { subkey, iv } = subkeyAndIv(key, nonce);
  const decipher = createDecipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_SIZE });
  decipher.setAAD(ad, { plaintextLength: body.length });
  decipher.setAuthTag(tag);
  const plain = decipher.update(body);
  try {
    decipher.final();
  } catch {
    return null;
  }
  return plain;
}

/**
 * Keyed BLAKE2b-256: the server cannot test whether a known file is stored.
 * `data` may be a view into shared memory (a seal worker hashes chunks where
 * they lie in the arena): the compiled libsodium reads it in place.
 */
export function blobId(idKey: Uint8Array, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ID_SIZE);
  lib().generichash(out, data, idKey);
  return out;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function kdf(master: Uint8Array, id: number, context: string): Buffer {
  return lib().kdfDerive(KEY_SIZE, id, context, master);
}

/**
 * The keys a repository client works with. A full key has all of them; a
 * write-only host key lacks `dataKey` and the recovery secret, so it can
 * write and deduplicate but cannot read stored file contents.
 */
export interface RepositoryKeys {
  readonly kind: 'full' | 'host';
  /** Keys blob IDs. */
  readonly idKey: Buffer;
  /** Seals trees, index, snapshots, locks, config and pack headers. */
  readonly metaKey: Buffer;
  /** Seals data blobs in symmetric repositories; full keys only. */
  readonly dataKey: Buffer | null;
  /** X25519 key pair of write-only repositories; the secret half only in full keys. */
  readonly recoveryPublicKey: Buffer;
  readonly recoverySecretKey: Buffer | null;
  /** What a host key file stores: the parent of idKey and metaKey. */
  readonly writeSecret: Buffer;
  /** What a full key file stores; absent from host keys. */
  readonly master: Buffer | null;
}

export function keysFromMaster(master: Uint8Array): RepositoryKeys {
  const writeSecret = kdf(master, 1, 'stw-mstr');
  const dataKey = kdf(master, 2, 'stw-mstr');
  const seed = kdf(master, 3, 'stw-mstr');
  const pair = lib().boxSeedKeypair(seed);
  return {
    kind: 'full',
    ...writeKeys(writeSecret),
    dataKey,
    recoveryPublicKey: pair.publicKey,
    recoverySecretKey: pair.secretKey,
    writeSecret,
    master: Buffer.from(master),
  };
}

export function keysFromWriteSecret(writeSecret: Uint8Array, recoveryPublicKey: Uint8Array): RepositoryKeys {
  return {
    kind: 'host',
    ...writeKeys(writeSecret),
    dataKey: null,
    recoveryPublicKey: Buffer.from(recoveryPublicKey),
    recoverySecretKey: null,
    writeSecret: Buffer.from(writeSecret),
    master: null,
  };
}

function writeKeys(writeSecret: Uint8Array): { idKey: Buffer; metaKey: Buffer } {
  return { idKey: kdf(writeSecret, 1, 'stw-writ'), metaKey: kdf(writeSecret, 2, 'stw-writ') };
}

/** Seals a pack's content key so that only the recovery secret opens it. */
export function sealContentKey(contentKey: Uint8Array, recoveryPublicKey: Uint8Array): Buffer {
  return lib().boxSeal(contentKey, recoveryPublicKey);
}

export function openContentKey(sealedKey: Uint8Array, keys: RepositoryKeys): Buffer | null {
  if (!keys.recoverySecretKey) return null;
  return lib().boxSealOpen(sealedKey, keys.recoveryPublicKey, keys.recoverySecretKey);
}

export interface Argon2Params {
  /** crypto_pwhash opslimit (passes over memory). */
  readonly opslimit: number;
  /** crypto_pwhash memlimit in bytes. */
  readonly memlimit: number;
}

export function argon2id(password: string, salt: Uint8Array, params: Argon2Params): Buffer {
  return lib().argon2id(KEY_SIZE, password, salt, params.opslimit, params.memlimit);
}
