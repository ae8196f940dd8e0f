import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { LocalBackend } from '../core/backends/local.ts';
import { backendSuite } from './helpers/backend-suite.ts';
import { cachedBytes, directRefusingDir, leftoverTemps } from './helpers/files.ts';
import { tempDir } from './helpers/tmp.ts';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

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

/** A pack-sized body in uneven parts, as a seal worker hands it over; sizes around the 4 MiB staging window. */
function packParts(size: number): Buffer[] {
  const whole = randomBytes(size);
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < size; i++) {
    const n = Math.min(size - at, [1, 7, 100_000, 3 * 1024 * 1024 + 5, 4096][i % 5]!);
    parts.push(whole.subarray(at, at + n));
    at += n;
  }
  return parts;
}

test('data packs are written around the page cache, byte for byte, whatever their size', async (t) => {
  const dir = path.join(await tempDir(t), 'repo');
  const be = new LocalBackend(dir);
  await be.create();
  for (const size of [1024 * 1024, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 9 * 1024 * 1024 + 123, 17 * 1024 * 1024 - 4095]) {
    const parts = packParts(size);
    const whole = Buffer.concat(parts);
    const name = createHash('sha256').update(whole).digest('hex');
    await be.save({ type: 'data', name }, parts);
    const file = be.filePath({ type: 'data', name });
    // Checked before reading it back, which would cache it. The last block may pass through the cache (the truncation).
    t.true(cachedBytes(file) <= 4096, `${size} bytes: ${cachedBytes(file)} cached`);
    t.true(readFileSync(file).equals(whole), `${size} bytes`);
  }
  t.deepEqual(leftoverTemps(path.join(dir, 'data')), []);
});

test('where the file system refuses O_DIRECT (ramfs), packs are written through the cache instead', async (t) => {
  const root = await directRefusingDir(t);
  if (!root) return;
  for (const opts of [{}, { directWrites: false }]) {
    const dir = path.join(root, `repo-${Object.keys(opts).length}`);
    const be = new LocalBackend(dir, opts);
    await be.create();
    const parts = packParts(6 * 1024 * 1024 + 77);
    const whole = Buffer.concat(parts);
    const name = createHash('sha256').update(whole).digest('hex');
    await be.save({ type: 'data', name }, parts);
    t.true(readFileSync(be.filePath({ type: 'data', name })).equals(whole));
  }
});
