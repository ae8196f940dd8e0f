/**
 * Key files (format §3.3): the repository's secret, wrapped under a key
 * derived from a passphrase with Argon2id. Several key files mean several
 * passphrases for the same repository; changing a passphrase rewrites one key
 * file and never touches data.
 */
import { hostname } from 'node:os';
import { currentUser } from './idnames.ts';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { KdfJob } from './kdf-worker.ts';
import { z } from 'zod';
import {
  type Argon2Params,
  type RepositoryKeys,
  argon2id,
  initCrypto,
  keysFromMaster,
  keysFromWriteSecret,
  open,
  seal,
} from './crypto.ts';
import { NO_COMPRESSION, openObject, sealObject } from './envelope.ts';
import { FormatError } from './errors.ts';
import { workerUrl } from './program-files.ts';

const KEYFILE_AD = Buffer.from('stowage key file v1');

const keyFileSchema = z.object({
  version: z.literal(1),
  kdf: z.object({
    algorithm: z.literal('argon2id13'),
    opslimit: z.number().int().min(1).max(64),
    memlimit: z.number().int().min(8192).max(4 * 1024 * 1024 * 1024),
    salt: z.string(),
  }),
  data: z.string(),
  meta: z.string(),
});
export type KeyFileJson = z.infer<typeof keyFileSchema>;

const payloadSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('full'), master: z.string() }),
  z.object({ kind: z.literal('host'), writeSecret: z.string(), recoveryPublicKey: z.string() }),
]);

/** Readable by any holder of the repository's keys, for `key list`. */
export interface KeyMeta {
  readonly kind: 'full' | 'host';
  readonly host: string;
  readonly username: string;
  readonly created: string;
}

const metaSchema = z.object({
  kind: z.enum(['full', 'host']),
  host: z.string(),
  username: z.string(),
  created: z.string(),
});

export function parseKeyFile(bytes: Uint8Array, name: string): KeyFileJson {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new FormatError(`key file ${name} is not JSON`);
  }
  const r = keyFileSchema.safeParse(json);
  if (!r.success) throw new FormatError(`key file ${name} is not a version 1 key file: ${r.error.issues[0]?.message ?? ''}`);
  return r.data;
}

/**
 * Writes a key file for `keys` under `password`. A host key file (`kind:
 * 'host'`) stores only the write secret and the recovery public key.
 */
export async function createKeyFile(password: string, keys: RepositoryKeys, kind: 'full' | 'host', params: Argon2Params, now: Date): Promise<Buffer> {
  const salt = randomBytes(16);
  const kek = await deriveKek(password, salt, params);
  const payload =
    kind === 'full'
      ? { kind, master: requireMaster(keys).toString('base64') }
      : { kind, writeSecret: keys.writeSecret.toString('base64'), recoveryPublicKey: keys.recoveryPublicKey.toString('base64') };
  const data = seal(kek, Buffer.from(JSON.stringify(payload)), KEYFILE_AD);
  const meta: KeyMeta = { kind, host: hostname(), username: currentUser(), created: now.toISOString() };
  const sealedMeta = sealObject(keys.metaKey, 'key-meta', Buffer.from(JSON.stringify(meta)), NO_COMPRESSION);
  const file: KeyFileJson = {
    version: 1,
    kdf: { algorithm: 'argon2id13', opslimit: params.opslimit, memlimit: params.memlimit, salt: salt.toString('base64') },
    data: data.toString('base64'),
    meta: sealedMeta.toString('base64'),
  };
  return Buffer.from(JSON.stringify(file, null, 2) + '\n');
}

function requireMaster(keys: RepositoryKeys): Buffer {
  if (!keys.master) throw new FormatError('a full key file can only be made from a full key');
  return keys.master;
}

/** The keys, or null when the passphrase does not open this key file. */
export async function openKeyFile(file: KeyFileJson, password: string): Promise<RepositoryKeys | null> {
  return unwrapKeyFile(file, await keyFileKek(file, password));
}

/** The key-encryption key a passphrase gives for this key file (right or wrong). */
export async function keyFileKek(file: KeyFileJson, password: string): Promise<Buffer> {
  return await deriveKek(password, Buffer.from(file.kdf.salt, 'base64'), file.kdf);
}

/** The keys in a key file, or null when `kek` does not open it. */
export function unwrapKeyFile(file: KeyFileJson, kek: Uint8Array): RepositoryKeys | null {
  const plain = open(kek, Buffer.from(file.data, 'base64'), KEYFILE_AD);
  if (!plain) return null;
  const payload = payloadSchema.parse(JSON.parse(plain.toString('utf8')));
  if (payload.kind === 'full') return keysFromMaster(Buffer.from(payload.master, 'base64'));
  return keysFromWriteSecret(Buffer.from(payload.writeSecret, 'base64'), Buffer.from(payload.recoveryPublicKey, 'base64'));
}

export function readKeyMeta(file: KeyFileJson, keys: RepositoryKeys): KeyMeta | null {
  const plain = openObject(keys.metaKey, 'key-meta', Buffer.from(file.meta, 'base64'));
  if (!plain) return null;
  const r = metaSchema.safeParse(JSON.parse(plain.toString('utf8')));
  return r.success ? r.data : null;
}

let prestarted: Worker | null = null;

function startKdfWorker(): Worker {
  return new Worker(workerUrl('kdf-worker'));
}

/**
 * Uses a worker of core/kdf-worker.ts started ahead (the executable starts
 * one before it loads the rest, so that loading libsodium there overlaps
 * with loading the program here). Unused, it does not keep the process
 * alive; should it fail or end before it is used, the derivation starts a
 * fresh one.
 */
export function adoptKdfWorker(worker: Worker): void {
  if (prestarted) void prestarted.terminate();
  prestarted = worker;
  worker.unref();
  worker.on('error', () => {});
  worker.once('exit', () => {
    if (prestarted === worker) prestarted = null;
  });
}

/**
 * Argon2id in a worker thread: the main thread goes on (listing the
 * repository, walking the files) while it runs, and the derivation's memory
 * is returned when the worker ends. Cheap test costs run inline.
 */
export async function deriveKek(password: string, salt: Uint8Array, params: Argon2Params): Promise<Buffer> {
  if (params.memlimit <= INSECURE_TEST_ARGON2.memlimit) {
    await initCrypto();
    return argon2id(password, salt, params);
  }
  const worker = prestarted ?? startKdfWorker();
  prestarted = null;
  worker.ref();
  const job: KdfJob = { password, salt, opslimit: params.opslimit, memlimit: params.memlimit };
  worker.postMessage(job);
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      worker.once('message', (key: Uint8Array) => resolve(Buffer.from(key)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`key derivation worker exited with code ${code}`)));
    });
  } finally {
    void worker.terminate();
  }
}

/**
 * Picks Argon2id costs that take about `targetMs` on this machine, as restic
 * calibrates scrypt: memory fixed at 64 MiB (RFC 9106's choice where memory
 * is short; restic's scrypt takes at most 60 MiB), passes raised until the
 * time is reached, never below RFC 9106's 3. Every command pays for touching
 * that memory, which on a virtual machine whose host reclaims freed guest
 * memory is a good part of the cost: the same work as 2 passes over 128 MiB
 * took 163–235 ms, as 4 passes over 64 MiB 112–122 ms (sodium-native, a
 * fresh process each, measured here).
 */
export async function calibrateArgon2(targetMs: number): Promise<Argon2Params> {
  const memlimit = 64 * 1024 * 1024;
  const probe: Argon2Params = { opslimit: 3, memlimit };
  const t0 = performance.now();
  await deriveKek('calibration', randomBytes(16), probe);
  const perPass = (performance.now() - t0) / probe.opslimit;
  const opslimit = Math.max(3, Math.min(64, Math.round(targetMs / Math.max(perPass, 1))));
  return { opslimit, memlimit };
}

/** Test-only cheap costs, selected with STOWAGE_KDF=insecure-test. */
export const INSECURE_TEST_ARGON2: Argon2Params = { opslimit: 1, memlimit: 8 * 1024 * 1024 };

export async function argon2ParamsFromEnv(env: NodeJS.ProcessEnv, targetMs = 500): Promise<Argon2Params> {
  return env['STOWAGE_KDF'] === 'insecure-test' ? INSECURE_TEST_ARGON2 : await calibrateArgon2(targetMs);
}
