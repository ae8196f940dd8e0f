/** What a write left on disk: in the page cache, and temporary files. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Bytes of `file` in the page cache (util-linux fincore). */
export function cachedBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '-o', 'RES', file], { encoding: 'utf8' }).trim());
}

/** Temporary files of unfinished writes (`.tmp-…`, core/backends/local.ts) anywhere under `dir`. */
export function leftoverTemps(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => path.basename(f).startsWith('.tmp-'));
}
