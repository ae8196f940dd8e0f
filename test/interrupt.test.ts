import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STOWAGE, stowage, testEnv } from './helpers/cli.ts';
import { generate } from './helpers/dataset.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

/** Runs the CLI and sends `signal` after `afterMs`, or (with `whenLocked`) once the run holds its lock. */
function runAndKill(args: string[], env: NodeJS.ProcessEnv, afterMs: number, signal: NodeJS.Signals, whenLocked?: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(STOWAGE, args, { env, stdio: 'ignore' });
    let timer: NodeJS.Timeout;
    const fire = (): void => {
      if (whenLocked && fs.readdirSync(whenLocked).length === 0) {
        timer = setTimeout(fire, 20);
        return;
      }
      child.kill(signal);
    };
    timer = setTimeout(fire, afterMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test('a backup killed at random points leaves a repository that the next backup and restore use without error', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'data');
  generate(src, 128);
  const repo = path.join(work, 'repo');
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  t.is((await stowage(['-r', repo, 'init'], env)).code, 0);
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 6; i++) {
    const delay = 100 + Math.floor(rand() * 900);
    const code = await runAndKill(['-r', repo, 'backup', src], env, delay, 'SIGKILL');
    t.log(`run ${i}: killed after ${delay} ms (exit ${code})`);
  }
  const done = await stowage(['-r', repo, '--json', 'backup', src], env);
  t.is(done.code, 0, done.stderr);
  const summary = JSON.parse(done.stdout.trim().split('\n').at(-1)!);
  t.log(`final run adopted ${summary.adoptedPacks} pack(s) and uploaded ${summary.stats.bytesUploaded} bytes`);
  const target = path.join(work, 'out');
  const restored = await stowage(['-r', repo, 'restore', 'latest', '--target', target], env);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(target, src)), []);
  const again = await stowage(['-r', repo, '--json', 'backup', src], env);
  t.is(again.code, 0);
});

test('SIGTERM stops a backup with exit 130, removes its lock, and the next run completes', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'data');
  generate(src, 64);
  const repo = path.join(work, 'repo');
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  await stowage(['-r', repo, 'init'], env);
  const code = await runAndKill(['-r', repo, 'backup', src], env, 0, 'SIGTERM', path.join(repo, 'locks'));
  t.is(code, 130);
  t.deepEqual(fs.readdirSync(path.join(repo, 'locks')), []);
  const done = await stowage(['-r', repo, 'backup', src], env);
  t.is(done.code, 0, done.stderr);
});
