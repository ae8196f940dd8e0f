/** Test data from the workplace's generator, ../shared/gen-dataset.py. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function genDatasetScript(): string {
  const candidates = [process.env['STOWAGE_GEN_DATASET'], path.resolve(PROJECT_ROOT, '../shared/gen-dataset.py')].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`gen-dataset.py not found (looked at ${candidates.join(', ')}); set STOWAGE_GEN_DATASET`);
  return found;
}

export function generate(out: string, sizeMib: number, seed = 1): void {
  execFileSync('python3', [genDatasetScript(), '--out', out, '--size-mib', String(sizeMib), '--seed', String(seed)], { stdio: 'ignore' });
}

export function mutate(out: string, seed = 1001): void {
  execFileSync('python3', [genDatasetScript(), '--mutate', '--out', out, '--seed', String(seed)], { stdio: 'ignore' });
}
