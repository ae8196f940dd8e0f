/** What both benchmarks share: the project root, their command-line options, and the dataset generator. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const args = process.argv.slice(2);

/** The value after `name` on the command line, or `def`. */
export function opt(name: string, def: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : def;
}

/** ../shared/gen-dataset.py, or $STOWAGE_GEN_DATASET. */
export function genDataset(): string {
  const gen = [process.env['STOWAGE_GEN_DATASET'], path.resolve(root, '../shared/gen-dataset.py')].find((p) => p && fs.existsSync(p));
  if (!gen) throw new Error('gen-dataset.py not found: set STOWAGE_GEN_DATASET');
  return gen;
}
