/**
 * The libsodium functions the format uses, from one of two builds of the
 * same library: sodium-native (compiled, with libsodium's AVX2 BLAKE2b and
 * Argon2id: 1.5× and 2.3× the WebAssembly build's speed here, which is most
 * of a backup's hashing and all of a command's start-up wait), or
 * libsodium-wrappers-sumo (WebAssembly) where no compiled build loads —
 * musl hosts, say — or where STOWAGE_SODIUM=wasm asks for it. Both compute
 * the same bytes; test/sodium.test.ts pins every function of one to the
 * other.
 */
import { createRequire } from 'node:module';
import type LibsodiumWasm from 'libsodium-wrappers-sumo';

export interface KeyPair {
  readonly publicKey: Buffer;
  readonly secretKey: Buffer;
}

export interface Sodium {
  readonly build: 'native' | 'wasm';
  /** Keyed BLAKE2b (crypto_generichash) of `data` into all of `out`. */
  generichash(out: Uint8Array, data: Uint8Array, key: Uint8Array): void;
  /** crypto_kdf_derive_from_key: subkey `id` of `key` in an 8-byte context. */
  kdfDerive(length: number, id: number, context: string, key: Uint8Array): Buffer;
  boxSeedKeypair(seed: Uint8Array): KeyPair;
  boxSeal(message: Uint8Array, publicKey: Uint8Array): Buffer;
  /** `null` when the box does not open under the pair. */
  boxSealOpen(sealed: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Buffer | null;
  /** crypto_pwhash with Argon2id v1.3. */
  argon2id(length: number, password: string, salt: Uint8Array, opslimit: number, memlimit: number): Buffer;
  /**
   * XChaCha20-Poly1305 (IETF) writing ciphertext ‖ tag into `out` (message
   * length + 16 bytes; it may start where `message` starts: in place), and
   * its inverse, false when not authentic. Compiled build only: the
   * WebAssembly one would copy everything in and out of its memory, where
   * core/crypto.ts's OpenSSL construction does not.
   */
  readonly aead: {
    seal(out: Uint8Array, message: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
    open(out: Uint8Array, sealed: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean;
  } | null;
}

/** The subset of sodium-native's API used here (its own types describe an older version). */
interface SodiumNative {
  crypto_generichash(out: Uint8Array, data: Uint8Array, key?: Uint8Array): void;
  crypto_kdf_derive_from_key(out: Uint8Array, id: number, ctx: Uint8Array, key: Uint8Array): void;
  crypto_box_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_box_seal(c: Uint8Array, m: Uint8Array, pk: Uint8Array): void;
  crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
  crypto_pwhash(out: Uint8Array, password: Uint8Array, salt: Uint8Array, ops: number, mem: number, alg: number): void;
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  /** Throws when the ciphertext is not authentic. */
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array, npub: Uint8Array, k: Uint8Array): number;
  readonly crypto_box_PUBLICKEYBYTES: number;
  readonly crypto_box_SECRETKEYBYTES: number;
  readonly crypto_box_SEALBYTES: number;
  readonly crypto_pwhash_ALG_ARGON2ID13: number;
}

/** The compiled build, or null when this platform has none that loads. */
export function loadNativeSodium(): Sodium | null {
  let n: SodiumNative;
  try {
    n = createRequire(import.meta.url)('sodium-native') as SodiumNative;
  } catch {
    return null;
  }
  return {
    build: 'native',
    generichash: (out, data, key) => n.crypto_generichash(out, data, key),
    kdfDerive(length, id, context, key) {
      const out = Buffer.alloc(length);
      n.crypto_kdf_derive_from_key(out, id, Buffer.from(context), key);
      return out;
    },
    boxSeedKeypair(seed) {
      const publicKey = Buffer.alloc(n.crypto_box_PUBLICKEYBYTES);
      const secretKey = Buffer.alloc(n.crypto_box_SECRETKEYBYTES);
      n.crypto_box_seed_keypair(publicKey, secretKey, seed);
      return { publicKey, secretKey };
    },
    boxSeal(message, publicKey) {
      const out = Buffer.alloc(message.length + n.crypto_box_SEALBYTES);
      n.crypto_box_seal(out, message, publicKey);
      return out;
    },
    boxSealOpen(sealed, publicKey, secretKey) {
      if (sealed.length < n.crypto_box_SEALBYTES) return null;
      const out = Buffer.alloc(sealed.length - n.crypto_box_SEALBYTES);
      return n.crypto_box_seal_open(out, sealed, publicKey, secretKey) ? out : null;
    },
    argon2id(length, password, salt, opslimit, memlimit) {
      const out = Buffer.alloc(length);
      n.crypto_pwhash(out, Buffer.from(password), salt, opslimit, memlimit, n.crypto_pwhash_ALG_ARGON2ID13);
      return out;
    },
    aead: {
      seal: (out, message, ad, nonce, key) => void n.crypto_aead_xchacha20poly1305_ietf_encrypt(out, message, ad, null, nonce, key),
      open(out, sealed, ad, nonce, key) {
        try {
          n.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, sealed, ad, nonce, key);
          return true;
        } catch {
          return false;
        }
      },
    },
  };
}

export async function loadWasmSodium(): Promise<Sodium> {
  const s: typeof LibsodiumWasm = (await import('libsodium-wrappers-sumo')).default;
  await s.ready;
  return {
    build: 'wasm',
    generichash: (out, data, key) => out.set(s.crypto_generichash(out.length, data, key)),
    kdfDerive: (length, id, context, key) => Buffer.from(s.crypto_kdf_derive_from_key(length, id, context, key)),
    boxSeedKeypair(seed) {
      const pair = s.crypto_box_seed_keypair(seed);
      return { publicKey: Buffer.from(pair.publicKey), secretKey: Buffer.from(pair.privateKey) };
    },
    boxSeal: (message, publicKey) => Buffer.from(s.crypto_box_seal(message, publicKey)),
    boxSealOpen(sealed, publicKey, secretKey) {
      try {
        return Buffer.from(s.crypto_box_seal_open(sealed, publicKey, secretKey));
      } catch {
        return null;
      }
    },
    argon2id: (length, password, salt, opslimit, memlimit) =>
      Buffer.from(s.crypto_pwhash(length, password, salt, opslimit, memlimit, s.crypto_pwhash_ALG_ARGON2ID13)),
    aead: null,
  };
}

/** The compiled build unless STOWAGE_SODIUM=wasm or it does not load. */
export async function loadSodium(env: NodeJS.ProcessEnv = process.env): Promise<Sodium> {
  return (env['STOWAGE_SODIUM'] === 'wasm' ? null : loadNativeSodium()) ?? (await loadWasmSodium());
}
