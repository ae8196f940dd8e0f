import test from 'ava';
import { createCipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findSnapshot, listSnapshots } from '../core/snapshot.ts';
import { findNode } from '../core/tree.ts';
import { generate } from './helpers/dataset.ts';
import { backup, duBytes, newRepo, openRepo } from './helpers/repo.ts';
import { tempDir } from './helpers/tmp.ts';

function writePseudoRandom(file: string, bytes: number, seed: number): void {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16));
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(8 << 20);
  for (let done = 0; done < bytes; done += block.length) fs.writeSync(fd, cipher.update(block.subarray(0, Math.min(block.length, bytes - done))));
  fs.closeSync(fd);
}

async function contentOf(dir: string, snapshot: string, file: string): Promise<readonly string[]> {
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const rec = findSnapshot(await listSnapshots(repo), snapshot);
  const node = await findNode(repo, rec.snapshot.tree, file.split('/').filter(Boolean));
  return node!.content!;
}

test('a second backup of unchanged data grows the repository by less than 1 %', async (t) => {
  const src = path.join(await tempDir(t), 'data');
  generate(src, 64);
  const { dir } = await newRepo(t);
  await backup(dir, [src]);
  const first = await duBytes(dir);
  const r = await backup(dir, [src]);
  const growth = (await duBytes(dir)) - first;
  t.is(r.snapshot.stats.filesNew + r.snapshot.stats.filesChanged, 0, 'every file is recognised as unchanged');
  t.true(growth / first < 0.01, `grew ${growth} bytes of ${first}`);
  t.log(`repository ${first} bytes; second backup added ${growth} bytes (${((growth / first) * 100).toFixed(3)} %)`);
});

test('after inserting 1 KiB at the start of a 200 MiB file, more than 95 % of its chunks are reused', async (t) => {
  const src = await tempDir(t);
  const file = path.join(src, 'video.mp4');
  writePseudoRandom(file, 200 << 20, 7);
  const { dir } = await newRepo(t);
  const r1 = await backup(dir, [src]);
  const before = await contentOf(dir, r1.id, file);
  const original = fs.readFileSync(file);
  fs.writeFileSync(file, Buffer.concat([randomBytes(1024), original]));
  const r2 = await backup(dir, [src]);
  const after = await contentOf(dir, r2.id, file);
  const old = new Set(before);
  const reused = after.filter((id) => old.has(id)).length;
  t.true(reused / after.length > 0.95, `${reused} of ${after.length} chunks reused`);
  t.log(`${reused} of ${after.length} chunks reused; backup added ${r2.snapshot.stats.bytesAdded} bytes`);
});

test('a rewritten database page adds one small block, not megabytes', async (t) => {
  const src = path.join(await tempDir(t), 'data');
  generate(src, 64);
  const db = path.join(src, 'pgdata/base/16384/16397');
  const { dir } = await newRepo(t);
  await backup(dir, [src]);
  const fd = fs.openSync(db, 'r+');
  fs.writeSync(fd, randomBytes(8192), 0, 8192, 8192 * 100);
  fs.closeSync(fd);
  const r = await backup(dir, [src]);
  t.is(r.snapshot.stats.filesChanged, 1);
  // One 64 KiB block of the database file, plus the trees of the directories above it.
  t.true(r.snapshot.stats.bytesAdded < 200 * 1024, `added ${r.snapshot.stats.bytesAdded} bytes`);
});
