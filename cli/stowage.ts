#!/usr/bin/env node
/** The `stowage` executable. */
import { mkdirSync } from 'node:fs';
import module from 'node:module';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { defaultCacheRoot } from '../core/cache-root.ts';
import { workerUrl } from '../core/program-files.ts';

/**
 * Node's compile cache keeps the compiled form of our modules (and their
 * type-stripped sources) between runs: it saves about 0.1 s of every
 * command's start. It lives in the user's own stowage cache directory,
 * never in a shared temporary directory where another user could plant code.
 */
function enableCompileCache(env: NodeJS.ProcessEnv): void {
  if (env['STOWAGE_NO_COMPILE_CACHE']) return;
  const dir = path.join(defaultCacheRoot(env), 'node-compile-cache');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    module.enableCompileCache?.(dir);
    // Worker threads (sealing, key derivation) enable it from the environment when they start.
    env['NODE_COMPILE_CACHE'] = dir;
  } catch {
    // Only a slower start: a read-only home, say.
  }
}

/** Commands that never derive a key from a passphrase (and the help and version flags). */
const KEYLESS = new Set(['serve', 'serve-admin', 'daemon', 'config', 'status', 'help', '--help', '-h', '--version', '-V']);

/**
 * Most commands open a repository, which derives a key (Argon2id) in a
 * worker thread; starting that worker now lets its start overlap with
 * loading the command. An argument that only looks like a keyless command
 * (a repository named "serve") costs nothing but the early start.
 */
function startKdfWorker(args: readonly string[]): Worker | null {
  if (args.length === 0 || args.some((a) => KEYLESS.has(a))) return null;
  const w = new Worker(workerUrl('kdf-worker'));
  w.unref();
  // A worker that fails to start is only replaced when the key is derived (core/keyfile.ts).
  w.on('error', () => {});
  return w;
}

enableCompileCache(process.env);
const args = process.argv.slice(2);
const kdf = startKdfWorker(args);
const { main } = await import('./main.ts');
if (kdf) (await import('../core/keyfile.ts')).adoptKdfWorker(kdf);
process.exitCode = await main(args, process.env);
