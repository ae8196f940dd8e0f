import test from 'ava';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { EXIT_MEANINGS, exitCodeFor } from '../cli/exit-codes.ts';
import type { ErrorCode } from '../core/errors.ts';
import { PROJECT_ROOT } from './helpers/dataset.ts';

test('docs/exit-codes.md lists exactly the codes and meanings the program uses', (t) => {
  const doc = readFileSync(path.join(PROJECT_ROOT, 'docs/exit-codes.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m) => [Number(m[1]), m[2]!.trim()] as const);
  const program = Object.entries(EXIT_MEANINGS).map(([c, m]) => [Number(c), m] as const);
  t.deepEqual(rows, program);
});

test('every error code maps to a documented exit code', (t) => {
  const codes: ErrorCode[] = [
    'ERR_USAGE', 'ERR_REPO_NOT_FOUND', 'ERR_REPO_EXISTS', 'ERR_WRONG_PASSWORD', 'ERR_NO_PASSWORD', 'ERR_INTEGRITY',
    'ERR_NOT_FOUND', 'ERR_OBJECT_EXISTS', 'ERR_LOCKED', 'ERR_SNAPSHOT', 'ERR_FORMAT', 'ERR_BACKEND', 'ERR_FORBIDDEN',
    'ERR_QUOTA', 'ERR_NO_SPACE', 'ERR_UNSAFE_PATH', 'ERR_WRITE_ONLY', 'ERR_DOCKER', 'ERR_CONFIG', 'ERR_INTERRUPTED',
  ];
  for (const c of codes) t.true(exitCodeFor(c) in EXIT_MEANINGS, c);
  t.is(exitCodeFor('ERR_WRONG_PASSWORD'), 12);
  t.is(exitCodeFor('ERR_INTEGRITY'), 13);
});
