import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { LocalBackend } from '../core/backends/local.ts';
import { backendSuite } from './helpers/backend-suite.ts';
import { tempDir } from './helpers/tmp.ts';
import { createHash } from 'node:crypto';

backendSuite(test, 'local directory', async (t) => {
  const be = new LocalBackend(path.join(await tempDir(t), 'repo'));
  await be.create();
  return be;
});

test('local files are private to their owner and leave no temporary files behind', async (t) => {
  const dir = path.join(await tempDir(t), 'repo');
  const be = new LocalBackend(dir);
  await be.create();
  const d = randomBytes(1000);
  const name = createHash('sha256').update(d).digest('hex');
  await be.save({ type: 'keys', name }, d);
  t.is((await stat(path.join(dir, 'keys', name))).mode & 0o777, 0o600);
  t.is((await stat(path.join(dir, 'keys'))).mode & 0o777, 0o700);
  t.deepEqual(await readdir(path.join(dir, 'keys')), [name]);
});

test('a repository is not created in a directory that holds other files', async (t) => {
  const dir = await tempDir(t);
  await new LocalBackend(dir).create().catch(() => {});
  const { writeFile } = await import('node:fs/promises');
  const other = await tempDir(t);
  await writeFile(path.join(other, 'precious.txt'), 'data');
  await t.throwsAsync(new LocalBackend(other).create(), { message: /not empty/ });
});
