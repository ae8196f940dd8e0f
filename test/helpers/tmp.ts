/** Temporary directories that a test removes when it ends, pass or fail. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';

export async function tempDir(t: ExecutionContext, prefix = 'stowage-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(process.env['STOWAGE_TEST_TMP'] ?? tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
