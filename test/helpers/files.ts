/** What a write left on disk: in the page cache, and temporary files; a file system that refuses O_DIRECT. */
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './tmp.ts';

/** Bytes of `file` in the page cache (util-linux fincore). */
export function cachedBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '-o', 'RES', file], { encoding: 'utf8' }).trim());
}

/** Temporary files of unfinished writes (`.tmp-…`, core/backends/local.ts) anywhere under `dir`. */
export function leftoverTemps(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => path.basename(f).startsWith('.tmp-'));
}

/**
 * A ramfs mounted in a new directory: a file system that refuses O_DIRECT
 * at the open (tmpfs takes it since Linux 6.6). Root only; null, with the
 * test passed, where mounting is not possible, and a failure under CI, whose
 * machine is known to allow it.
 */
export async function directRefusingDir(t: ExecutionContext): Promise<string | null> {
  const dir = await tempDir(t);
  try {
    execFileSync('mount', ['-t', 'ramfs', 'none', dir], { stdio: 'ignore' });
  } catch (e) {
    if (process.env['CI']) t.fail(`cannot mount a ramfs here: ${String(e)}`);
    else t.pass('no ramfs mount here (needs root)');
    return null;
  }
  t.teardown(() => execFileSync('umount', [dir]));
  return dir;
}
