/**
 * Runs one Argon2id derivation off the main thread. Its WebAssembly memory
 * (tens of MiB) goes away with the worker instead of staying in the
 * process's resident set for the rest of a long backup.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { argon2id, initCrypto } from './crypto.ts';

interface Job {
  readonly password: string;
  readonly salt: Uint8Array;
  readonly opslimit: number;
  readonly memlimit: number;
}

await initCrypto();
const job = workerData as Job;
const key = argon2id(job.password, job.salt, { opslimit: job.opslimit, memlimit: job.memlimit });
parentPort!.postMessage(key);
