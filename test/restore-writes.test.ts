/**
 * How a restore writes files: through the page cache, or with directIo
 * large ones around it (O_DIRECT, core/direct-write.ts), small ones and any
 * on a file system that refuses O_DIRECT through it; the bytes and
 * metadata the same either way.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cachedBytes, directRefusingDir } from './helpers/files.ts';
import { LocalBackend } from '../core/backends/local.ts';
import { INSECURE_TEST_ARGON2 } from '../core/keyfile.ts';
import { Repository } from '../core/repository.ts';
import { findSnapshot, listSnapshots } from '../core/snapshot.ts';
import { findNode } from '../core/tree.ts';
import { SealPool } from '../core/seal-pool.ts';
import type { FileOutcome, LaneBlob } from '../restore/file-lane.ts';
import { PASSWORD, backup, newRepo, openRepo, restore } from './helpers/repo.ts';
import { tempDir } from './helpers/tmp.ts';

const MiB = 1024 * 1024;

function pseudoRandom(bytes: number, seed: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(bytes));
}

/** Sizes on both sides of the direct threshold (1 MiB), of a block, and of the 4 MiB staging window. */
const SIZES = [0, 100, 4095, MiB - 1, MiB, MiB + 1, 4 * MiB, 6 * MiB + 77, 9 * MiB + 4096 + 3];

async function backedUp(t: ExecutionContext): Promise<{ src: string; dir: string; files: Map<string, Buffer> }> {
  const src = await tempDir(t);
  const files = new Map<string, Buffer>();
  SIZES.forEach((size, i) => {
    const name = `f-${size}`;
    const content = pseudoRandom(size, i + 1);
    fs.writeFileSync(path.join(src, name), content);
    fs.chmodSync(path.join(src, name), 0o640);
    fs.utimesSync(path.join(src, name), 1_700_000_000 + i, 1_700_000_000 + i);
    files.set(name, content);
  });
  const { dir } = await newRepo(t);
  await backup(dir, [src]);
  return { src, dir, files };
}

function assertRestored(t: ExecutionContext, target: string, src: string, files: Map<string, Buffer>): void {
  for (const [name, content] of files) {
    const p = path.join(target, src, name);
    const st = fs.statSync(p);
    t.is(st.size, content.length, name);
    t.is(st.mode & 0o7777, 0o640, name);
    t.is(st.mtimeMs, fs.statSync(path.join(src, name)).mtimeMs, name);
    t.true(fs.readFileSync(p).equals(content), name);
  }
}

test('a restore writes every file through the page cache unless asked for direct I/O', async (t) => {
  const { src, dir, files } = await backedUp(t);
  const target = await tempDir(t);
  const r = await restore(dir, target);
  t.deepEqual(r.problems, []);
  for (const size of SIZES) {
    const cached = cachedBytes(path.join(target, src, `f-${size}`));
    t.is(cached, Math.ceil(size / 4096) * 4096, `${size} bytes: ${cached} cached`);
  }
  assertRestored(t, target, src, files);
});

test('with direct I/O, large restored files are written around the page cache and small ones through it, with the same bytes and metadata', async (t) => {
  const { src, dir, files } = await backedUp(t);
  const target = await tempDir(t);
  const r = await restore(dir, target, { directIo: true });
  t.deepEqual(r.problems, []);
  // Checked before anything reads them back, which would cache them.
  for (const size of SIZES) {
    const cached = cachedBytes(path.join(target, src, `f-${size}`));
    if (size >= MiB) t.is(cached, 0, `${size} bytes: ${cached} cached`);
    else t.is(cached, Math.ceil(size / 4096) * 4096, `${size} bytes, through the cache`);
  }
  assertRestored(t, target, src, files);
});

test('where the file system refuses O_DIRECT (ramfs), a restore writes large files through the cache, byte for byte', async (t) => {
  const target = await directRefusingDir(t);
  if (!target) return;
  const { src, dir, files } = await backedUp(t);
  const r = await restore(dir, target, { directIo: true });
  t.deepEqual(r.problems, []);
  assertRestored(t, target, src, files);
});

for (const directIo of [false, true]) {
  test(`a damaged blob past the first 4 MiB of a large file: the file holds exactly the blobs verified before it (${directIo ? 'direct I/O' : 'through the cache'})`, async (t) => {
    const { src, dir, files } = await backedUp(t);
    const name = `f-${9 * MiB + 4096 + 3}`;
    const repo = await openRepo(dir);
    await repo.loadIndex();
    const rec = findSnapshot(await listSnapshots(repo), 'latest');
    const node = await findNode(repo, rec.snapshot.tree, [...src.split('/').filter(Boolean), name]);
    const ids = node!.content!;
    // The first blob that starts past 4 MiB: a full staging window has gone out before it.
    const lengths = await Promise.all(ids.map(async (id) => (await repo.loadBlob('data', id)).length));
    let before = 0;
    let v = 0;
    while (before <= 4 * MiB) before += lengths[v++]!;
    t.true(v < ids.length, 'the file has a blob that starts past 4 MiB');
    const victim = repo.index.get(ids[v]!)!;
    await repo.close();
    const packPath = path.join(dir, 'data', victim.pack.slice(0, 2), victim.pack);
    const bytes = fs.readFileSync(packPath);
    bytes[victim.offset + 50]! ^= 0x10;
    fs.writeFileSync(packPath, bytes);

    const target = await tempDir(t);
    const r = await restore(dir, target, { directIo });
    const problem = r.problems.find((x) => x.content);
    t.truthy(problem);
    t.true(problem!.message.includes(ids[v]!), 'names the blob');
    t.true(problem!.message.includes(`the ${before} bytes verified before it`), problem!.message);
    const restored = fs.readFileSync(path.join(target, src, name));
    t.is(restored.length, before);
    t.true(restored.equals(files.get(name)!.subarray(0, before)));
    // The other files are whole.
    const whole = new Map([...files].filter(([n]) => n !== name));
    assertRestored(t, target, src, whole);
  });
}

test('a repository on a file system that refuses O_DIRECT (ramfs) is read through the cache, byte for byte', async (t) => {
  const root = await directRefusingDir(t);
  if (!root) return;
  const src = await tempDir(t);
  const content = pseudoRandom(9 * MiB + 5, 42);
  fs.writeFileSync(path.join(src, 'big'), content);
  fs.writeFileSync(path.join(src, 'small'), 'small\n');
  const dir = path.join(root, 'repo');
  await Repository.init(new LocalBackend(dir), PASSWORD, { argon2: INSECURE_TEST_ARGON2, cacheRoot: null });
  await backup(dir, [src]);
  const target = await tempDir(t);
  const r = await restore(dir, target);
  t.deepEqual(r.problems, []);
  t.true(fs.readFileSync(path.join(target, src, 'big')).equals(content));
  t.is(fs.readFileSync(path.join(target, src, 'small'), 'utf8'), 'small\n');
});

test('a file the target refuses to create is reported with its errno code and the rest are restored', async (t) => {
  const { src, dir, files } = await backedUp(t);
  const target = await tempDir(t);
  // An immutable directory where a file must go: even root cannot create in it (ext4's chattr +i).
  const blocked = path.join(target, src, 'blocked');
  fs.mkdirSync(blocked, { recursive: true });
  try {
    execFileSync('chattr', ['+i', blocked], { stdio: 'ignore' });
  } catch (e) {
    if (process.env['CI']) return t.fail(`chattr +i is not possible here: ${String(e)}`);
    return t.pass('no chattr +i here (needs root and ext4)');
  }
  t.teardown(() => execFileSync('chattr', ['-i', blocked]));
  // The snapshot's file at that place: a directory named "blocked" holding one file.
  fs.mkdirSync(path.join(src, 'blocked'));
  fs.writeFileSync(path.join(src, 'blocked', 'inside.txt'), 'inside\n');
  await backup(dir, [src]);
  const r = await restore(dir, target);
  const problem = r.problems.find((p) => p.path.endsWith('/blocked/inside.txt'));
  t.truthy(problem, JSON.stringify(r.problems));
  t.true(problem!.content);
  t.is(problem!.code, 'EPERM');
  t.regex(problem!.message, /^not restored: EPERM/);
  t.false(fs.existsSync(path.join(blocked, 'inside.txt')));
  assertRestored(t, target, src, files);
});

test('a worker restores a small file beside a large one handed to it first, instead of behind it', async (t) => {
  const src = await tempDir(t);
  const large = pseudoRandom(48 * MiB, 7);
  const small = pseudoRandom(1000, 8);
  fs.writeFileSync(path.join(src, 'large'), large);
  fs.writeFileSync(path.join(src, 'small'), small);
  const { dir } = await newRepo(t);
  await backup(dir, [src]);
  const repo = await openRepo(dir);
  const [rec] = await listSnapshots(repo);
  await repo.loadIndex();
  const pool = new SealPool(repo.poolKeys(), null, { threads: 1 });
  const target = await tempDir(t);
  const ended: string[] = [];
  const restoreOne = async (name: string): Promise<FileOutcome> => {
    const node = (await findNode(repo, rec!.snapshot.tree, [...src.split('/').filter(Boolean), name]))!;
    const blobs = (node.content ?? []).map((id): LaneBlob => {
      const f = repo.blobFile('data', id)!;
      // As after the pack warmer: read on the worker's own thread, so the large file never waits for a read.
      return { type: 'data', id: Buffer.from(id, 'hex'), key: f.key, checkId: f.checkId, path: f.path, offset: f.offset, length: f.length, cached: true };
    });
    const outcome = await pool.restoreWholeFile(0, { path: Buffer.from(path.join(target, name)), size: node.size ?? 0, direct: false, blobs, mode: 0o600, mtime: 1_700_000_000 }, () => {});
    ended.push(name);
    return outcome;
  };
  try {
    const [l, s] = await Promise.all([restoreOne('large'), restoreOne('small')]);
    t.is(l.written, large.length);
    t.is(s.written, small.length);
  } finally {
    await pool.close();
  }
  t.deepEqual(ended, ['small', 'large']);
  t.true(fs.readFileSync(path.join(target, 'large')).equals(large));
  t.true(fs.readFileSync(path.join(target, 'small')).equals(small));
});
