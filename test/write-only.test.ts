/**
 * Write-only host keys (format §5.3): a host backs up and deduplicates, but
 * cannot read back file contents; the recovery key (a full key) can.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stowage, testEnv } from './helpers/cli.ts';
import { generate, mutate } from './helpers/dataset.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';
import { openRepo } from './helpers/repo.ts';
import { WriteOnlyKeyError } from '../core/errors.ts';

test('a write-only host key backs up and deduplicates, cannot restore, cat or read-check contents; the recovery key can', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'src');
  generate(src, 16, 71);
  const marker = 'PLAINTEXT-MARKER-4c1d9e0b-never-in-the-repository';
  fs.writeFileSync(path.join(src, 'marker.txt'), marker.repeat(20));
  const repo = path.join(work, 'repo');
  const base = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const full = { ...base, STOWAGE_PASSWORD: 'recovery passphrase' };
  const host = { ...base, STOWAGE_PASSWORD: 'host passphrase' };
  t.is((await stowage(['-r', repo, 'init', '--write-only-hosts'], full)).code, 0);
  t.is((await stowage(['-r', repo, 'key', 'add', '--write-only'], { ...full, STOWAGE_NEW_PASSWORD: 'host passphrase' })).code, 0);

  const first = await stowage(['-r', repo, '--json', 'backup', src], host);
  t.is(first.code, 0, first.stderr);
  const again = await stowage(['-r', repo, '--json', 'backup', src], host);
  const stats = (r: { stdout: string }): { bytesUploaded: number; filesUnchanged: number } => JSON.parse(r.stdout.trim().split('\n').at(-1)!).stats;
  t.true(stats(again).bytesUploaded < 64 * 1024, 'an unchanged second backup adds almost nothing');
  t.true(stats(again).filesUnchanged > 0, 'unchanged files are skipped against the parent: the host reads trees');
  mutate(src, 3);
  const inc = await stowage(['-r', repo, '--json', 'backup', src], host);
  t.is(inc.code, 0, inc.stderr);
  t.true(stats(inc).bytesUploaded < 4 * 1024 * 1024, `an incremental backup deduplicates: ${stats(inc).bytesUploaded} bytes`);

  for (const args of [
    ['restore', 'latest', '--target', path.join(work, 'nope')],
    ['check', '--read-data'],
  ]) {
    const r = await stowage(['-r', repo, ...args], host);
    t.is(r.code, 12, `${args[0]}: ${r.stderr}`);
    t.regex(r.stderr, /write-only host key cannot: open the repository with the recovery key/);
  }
  t.false(fs.existsSync(path.join(work, 'nope', src)), 'nothing was restored');
  // The host can list names and sizes (trees), which the documentation says it can.
  t.regex((await stowage(['-r', repo, 'ls', 'latest'], host)).stdout, /marker\.txt/);

  // Every data blob is closed to the host key, and no file content is in the repository's bytes.
  const r = await openRepo(repo, 'host passphrase');
  await r.loadIndex();
  let tried = 0;
  for (const p of r.index.packs()) {
    for (const b of p.blobs) {
      if (b.type !== 'data') continue;
      tried++;
      await t.throwsAsync(r.loadBlob('data', b.id.toString('hex')), { instanceOf: WriteOnlyKeyError });
    }
  }
  const someBlob = [...r.index.packs()].flatMap((p) => p.blobs).find((b) => b.type === 'data')!.id.toString('hex');
  await r.close();
  t.true(tried > 10);
  const cat = await stowage(['-r', repo, 'cat', 'blob', someBlob], host);
  t.is(cat.code, 12, cat.stderr);
  t.regex(cat.stderr, /cat of a data blob needs to read file contents/);
  const needle = Buffer.from(marker);
  for (const f of fs.readdirSync(repo, { recursive: true }).map((n) => path.join(repo, String(n))).filter((p) => fs.statSync(p).isFile())) {
    t.is(fs.readFileSync(f).indexOf(needle), -1, f);
  }

  const restored = await stowage(['-r', repo, 'restore', 'latest', '--target', path.join(work, 'out')], full);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  t.is((await stowage(['-r', repo, 'check', '--read-data'], full)).code, 0);
});
