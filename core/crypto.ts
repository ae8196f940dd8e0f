/**
 * The primitives of repository format v1 (docs/repository-format.md §3):
 * XChaCha20-Poly1305 sealing with typed additional data, keyed BLAKE2b-256
 * blob IDs, and the key hierarchy derived from the master secret.
 *
 * XChaCha20-Poly1305 is built from libsodium's HChaCha20 and Node's native
 * IETF ChaCha20-Poly1305. That is exactly libsodium's construction
 * (test/crypto.test.ts pins the bytes) and runs at twice its speed, which
 * matters because sealing is on the hot path of every backup.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Sodium from 'libsodium-wrappers-sumo';

export const NONCE_SIZE = 24;
export const TAG_SIZE = 16;
/** Bytes a sealed payload adds to its plaintext: nonce and tag. */
export const SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;
export const ID_SIZE = 32;
/** crypto_box_seal of a 32-byte key: ephemeral public key + MAC + key. */
export const SEALED_KEY_SIZE = 32 + 16 + 32;

let sodium: typeof Sodium | null = null;

/**
 * libsodium is WebAssembly and must be instantiated once before use. It is
 * imported here, not at the top, so that a command can read its key file and
 * start the key derivation before it pays for loading libsodium itself.
 */
export async function initCrypto(): Promise<void> {
  if (sodium) return;
  const s = (await import('libsodium-wrappers-sumo')).default;
  await s.ready;
  sodium = s;
}

function lib(): typeof Sodium {
  if (!sodium) throw new Error('initCrypto() was not awaited before using crypto');
  return sodium;
}

export function randomKey(): Buffer {
  return randomBytes(KEY_SIZE);
}

const ZERO4 = Buffer.alloc(4);

function subkeyAndIv(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Buffer } {
  const subkey = lib().crypto_core_hchacha20(nonce.subarray(0, 16), key, null);
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
 * that took: plaintext length + SEAL_OVERHEAD. The plaintext is encrypted a
 * slice at a time, so no output buffer the size of the blob is allocated;
 * with `offset` a multiple of 8, every slice but the last lands on a
 * multiple of 8, where a copy into shared memory goes word by word.
 */
export function sealPartsInto(
  key: Uint8Array,
  parts: readonly Uint8Array[],
  ad: Uint8Array,
  target: Uint8Array,
  offset: number,
  nonce: Uint8Array = randomBytes(NONCE_SIZE),
): number {
  const { subkey, iv } = subkeyAndIv(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_SIZE });
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (offset + length + SEAL_OVERHEAD > target.length) throw new RangeError('sealed blob does not fit the target buffer');
  cipher.setAAD(ad, { plaintextLength: length });
  target.set(nonce, offset);
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

/** Seals `plaintext` as one buffer: nonce ‖ ciphertext ‖ tag. */
export function seal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, nonce?: Uint8Array): Buffer {
  return Buffer.concat(sealParts(key, [plaintext], ad, nonce));
}

/** Opens a sealed payload; `null` when it is not authentic under key and ad. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const nonce = sealed.subarray(0, NONCE_SIZE);
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  const body = sealed.subarray(NONCE_SIZE, sealed.length - TAG_SIZE);
  const { subkey, iv } = subkeyAndIv(key, nonce);
  const decipher = createDecipheriv('chacha20-poly1305', subkey, iv, { authTagLength: TAG_SIZE });
  decipher.setAAD(ad, { plaintextLength: body.length });
  decipher.setAuthTag(tag);
  const out = decipher.update(body);
  try {
    decipher.final();
  } catch {
    return null;
  }
  return out;
}

/** Keyed BLAKE2b-256: the server cannot test whether a known file is stored. */
export function blobId(idKey: Uint8Array, data: Uint8Array): Buffer {
  return Buffer.from(lib().crypto_generichash(ID_SIZE, data, idKey));
}

interface SodiumExports {
  readonly HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(ptr: number): void;
  _crypto_generichash_init(state: number, key: number, keylen: number, outlen: number): number;
  _crypto_generichash_update(state: number, input: number, lenLow: number, lenHigh: number): number;
  _crypto_generichash_final(state: number, out: number, outlen: number): number;
}

/**
 * Keyed BLAKE2b-256 blob IDs (blobId's bytes exactly; test/crypto.test.ts
 * pins them) of data that is copied in a piece at a time, through
 * libsodium's WebAssembly exports directly: each piece goes once into a
 * buffer allocated once in WebAssembly memory, where the wrapper functions
 * would allocate, copy and free for every call. One per thread; a seal
 * worker hashes every chunk with it.
 */
export class BlobHasher {
  readonly pieceSize: number;
  private readonly m: SodiumExports;
  private readonly state: number;
  private readonly key: number;
  private readonly input: number;
  private readonly out: number;

  constructor(idKey: Uint8Array, pieceSize = 256 * 1024) {
    this.m = (lib() as unknown as { libsodium: SodiumExports }).libsodium;
    this.pieceSize = pieceSize;
    // BLAKE2b's state wants 64-byte alignment: take room for it and round up.
    this.state = (this.m._malloc(512 + 64) + 63) & ~63;
    this.key = this.m._malloc(KEY_SIZE);
    this.input = this.m._malloc(pieceSize);
    this.out = this.m._malloc(ID_SIZE);
    this.m.HEAPU8.set(idKey, this.key);
  }

  /** The ID of `length` bytes that `fill` copies into each piece's buffer, given the piece's position. */
  hash(length: number, fill: (target: Uint8Array, position: number) => void): Buffer {
    const m = this.m;
    if (m._crypto_generichash_init(this.state, this.key, KEY_SIZE, ID_SIZE) !== 0) throw new Error('crypto_generichash_init failed');
    for (let pos = 0; pos < length; pos += this.pieceSize) {
      const n = Math.min(this.pieceSize, length - pos);
      fill(m.HEAPU8.subarray(this.input, this.input + n), pos);
      m._crypto_generichash_update(this.state, this.input, n, 0);
    }
    m._crypto_generichash_final(this.state, this.out, ID_SIZE);
    return Buffer.from(m.HEAPU8.subarray(this.out, this.out + ID_SIZE));
  }
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
  return Buffer.from(lib().crypto_kdf_derive_from_key(KEY_SIZE, id, context, master));
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
  const pair = lib().crypto_box_seed_keypair(seed);
  return {
    kind: 'full',
    ...writeKeys(writeSecret),
    dataKey,
    recoveryPublicKey: Buffer.from(pair.publicKey),
    recoverySecretKey: Buffer.from(pair.privateKey),
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
  return Buffer.from(lib().crypto_box_seal(contentKey, recoveryPublicKey));
}

export function openContentKey(sealedKey: Uint8Array, keys: RepositoryKeys): Buffer | null {
  if (!keys.recoverySecretKey) return null;
  try {
    return Buffer.from(lib().crypto_box_seal_open(sealedKey, keys.recoveryPublicKey, keys.recoverySecretKey));
  } catch {
    return null;
  }
}

export interface Argon2Params {
  /** crypto_pwhash opslimit (passes over memory). */
  readonly opslimit: number;
  /** crypto_pwhash memlimit in bytes. */
  readonly memlimit: number;
}

export function argon2id(password: string, salt: Uint8Array, params: Argon2Params): Buffer {
  const s = lib();
  return Buffer.from(s.crypto_pwhash(KEY_SIZE, password, salt, params.opslimit, params.memlimit, s.crypto_pwhash_ALG_ARGON2ID13));
}
