/**
 * Runs one Argon2id derivation off the main thread. Its WebAssembly memory
 * (tens of MiB) goes away with the worker instead of staying in the
 * process's resident set for the rest of a long backup. The job comes as a
 * message, so that the worker can be started (and libsodium compiled) while
 * the command is still loading and reading the key file.
 */
import { parentPort } from 'node:worker_threads';
import { argon2id, initCrypto } from './crypto.ts';

export interface KdfJob {
  readonly password: string;
  readonly salt: Uint8Array;
  readonly opslimit: number;
  readonly memlimit: number;
}

await initCrypto();
parentPort!.once('message', (job: KdfJob) => {
  const key = argon2id(job.password, job.salt, { opslimit: job.opslimit, memlimit: job.memlimit });
  parentPort!.postMessage(key);
});
