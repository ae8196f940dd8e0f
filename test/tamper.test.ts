import test from 'ava';
import { createCipheriv } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkRepository } from '../core/check.ts';
import { sealBlobParts } from '../core/envelope.ts';
import { SealPool } from '../core/seal-pool.ts';
import { findSnapshot, listSnapshots } from '../core/snapshot.ts';
import { tarFromTree } from '../restore/tree-tar.ts';
import { extract } from 'tar-stream';
import { findNode } from '../core/tree.ts';
import { stowage, testEnv } from './helpers/cli.ts';
import { backup, newRepo, openRepo, restore } from './helpers/repo.ts';
import { tempDir } from './helpers/tmp.ts';

function pseudoRandom(bytes: number, seed: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(bytes));
}

/** Backs up one 6 MiB file; returns where its blobs are. */
async function setup(t: Parameters<typeof tempDir>[0]) {
  const src = await tempDir(t);
  const file = path.join(src, 'db.dump');
  const content = pseudoRandom(6 << 20, 3);
  fs.writeFileSync(file, content);
  const { dir } = await newRepo(t);
  await backup(dir, [src]);
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const rec = findSnapshot(await listSnapshots(repo), 'latest');
  const node = await findNode(repo, rec.snapshot.tree, file.split('/').filter(Boolean));
  const blobs = node!.content!.map((id) => ({ id, ...repo.index.get(id)! }));
  const packFile = (name: string): string => path.join(dir, 'data', name.slice(0, 2), name);
  /** Flips `bit` of the byte `at` bytes into a blob, in its pack on disk. */
  const damage = (victim: { pack: string; offset: number }, at = 100, bit = 0x01): void => {
    const p = packFile(victim.pack);
    const bytes = fs.readFileSync(p);
    bytes[victim.offset + at]! ^= bit;
    fs.writeFileSync(p, bytes);
  };
  return { src, file, content, dir, blobs, packFile, damage };
}

test('a flipped byte in a pack fails the restore naming the blob and pack, and nothing past the last verified byte is written', async (t) => {
  const { file, content, dir, blobs, damage } = await setup(t);
  t.true(blobs.length >= 3, 'the file spans several blobs');
  const victim = blobs[1]!;
  damage(victim);
  const target = await tempDir(t);
  const r = await restore(dir, target);
  const problem = r.problems.find((x) => x.content);
  t.truthy(problem);
  t.true(problem!.message.includes(victim.id), 'names the blob');
  t.true(problem!.message.includes(victim.pack), 'names the pack');
  t.is(problem!.code, 'ERR_INTEGRITY');
  const restored = fs.readFileSync(path.join(target, file));
  // The restored prefix is exactly the first blob: verified bytes, nothing after.
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const first = await repo.loadBlob('data', blobs[0]!.id);
  t.is(restored.length, first.length);
  t.deepEqual(restored, content.subarray(0, first.length));
});

test('a truncated pack fails the restore naming the pack', async (t) => {
  const { dir, blobs, packFile } = await setup(t);
  const p = packFile(blobs[0]!.pack);
  fs.truncateSync(p, Math.floor(fs.statSync(p).size / 2));
  const target = await tempDir(t);
  const r = await restore(dir, target);
  const problem = r.problems.find((x) => x.content);
  t.truthy(problem);
  t.true(problem!.message.includes(blobs[0]!.pack));
});

test('a pack replaced by another pack under its name fails the restore naming the object', async (t) => {
  const { src, dir, blobs, packFile } = await setup(t);
  fs.writeFileSync(path.join(src, 'other'), pseudoRandom(3 << 20, 9));
  await backup(dir, [src]);
  const packs = fs.readdirSync(path.join(dir, 'data'), { recursive: true }).map(String).filter((f) => /[0-9a-f]{64}$/.test(f));
  const ours = blobs[0]!.pack;
  const otherPack = packs.map((f) => path.basename(f)).find((n) => n !== ours && fs.statSync(packFile(n)).size > 1 << 20)!;
  t.truthy(otherPack);
  fs.copyFileSync(packFile(otherPack), packFile(ours));
  const target = await tempDir(t);
  const r = await restore(dir, target, { snapshot: (await listSnapshots(await openRepo(dir)))[0]!.id });
  const problem = r.problems.find((x) => x.content);
  t.truthy(problem);
  t.true(problem!.message.includes(ours));
});

test('the CLI exits with the integrity code and names the object', async (t) => {
  const { dir, blobs, damage } = await setup(t);
  damage(blobs[2]!, 5, 0x80);
  const target = await tempDir(t);
  const r = await stowage(['-r', dir, '--no-cache', 'restore', 'latest', '--target', target], testEnv({ STOWAGE_PASSWORD: 'correct horse battery staple' }));
  t.is(r.code, 13, r.stderr + r.stdout);
  t.true((r.stdout + r.stderr).includes(blobs[2]!.id));
});

/**
 * Backs up one small file (one blob), then puts other content under that
 * blob's ID, sealed with the writer's own data key and key slot, in a pack
 * that replaces the original in the index: what any holder of a key that can
 * write data could do.
 */
async function forgeBlob(t: Parameters<typeof tempDir>[0], writeOnlyHosts: boolean) {
  const src = await tempDir(t);
  const file = path.join(src, 'genuine.txt');
  fs.writeFileSync(file, 'the genuine content\n'.repeat(1000));
  const { dir } = await newRepo(t, { writeOnlyHosts });
  await backup(dir, [src]);
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const rec = findSnapshot(await listSnapshots(repo), 'latest');
  const node = await findNode(repo, rec.snapshot.tree, file.split('/').filter(Boolean));
  const victim = node!.content![0]!;
  const victimPack = repo.index.get(victim)!.pack;
  const keys = repo.poolKeys();
  const id = Buffer.from(victim, 'hex');
  const sealed = sealBlobParts(keys.contentKey, 'data', id, Buffer.from('forged content, not the genuine one\n'), keys.compression);
  const [forged] = await repo.writePacks([{ type: 'data', id, parts: sealed.parts, length: sealed.length }], keys.slot);
  const others = [...repo.index.packs()].filter((p) => p.id !== victimPack);
  await repo.replaceIndex([...others, forged!], (await repo.listObjects('index')).map((o) => o.name));
  await repo.close();
  return { dir, file, victim, forgedPack: forged!.id };
}

test('in a write-only repository, a blob whose content does not hash to its ID fails the restore naming it', async (t) => {
  const { dir, file, victim, forgedPack } = await forgeBlob(t, true);
  const target = await tempDir(t);
  const r = await restore(dir, target);
  const problem = r.problems.find((x) => x.content);
  t.truthy(problem, 'the forged blob is refused');
  t.true(problem!.message.includes(victim), 'names the blob');
  t.true(problem!.message.includes(forgedPack), 'names the pack');
  t.is(fs.readFileSync(path.join(target, file)).length, 0, 'nothing of it is written');
});

test('check --read-data reports a blob whose content does not hash to its ID, in any repository', async (t) => {
  for (const writeOnlyHosts of [false, true]) {
    const { dir, victim, forgedPack } = await forgeBlob(t, writeOnlyHosts);
    const repo = await openRepo(dir);
    const result = await checkRepository(repo, { kind: 'all' });
    await repo.close();
    const problem = result.problems.find((p) => p.object.includes(victim));
    t.truthy(problem, `writeOnlyHosts ${writeOnlyHosts}: ${JSON.stringify(result.problems)}`);
    t.true(problem!.message.includes(forgedPack) && problem!.message.includes('does not hash to its ID'));
  }
});

test('a flipped byte fails the tar stream of a restore into a container naming the blob, and nothing of it or after it is streamed', async (t) => {
  const { content, dir, blobs, damage } = await setup(t);
  t.true(blobs.length >= 4, 'the file spans several blobs');
  // A later blob: the ones after it are already being opened ahead when it fails.
  const victim = blobs[2]!;
  damage(victim);
  const repo = await openRepo(dir);
  await repo.loadIndex();
  const pool = new SealPool(repo.poolKeys(), null);
  try {
    const before = (await repo.loadBlob('data', blobs[0]!.id)).length + (await repo.loadBlob('data', blobs[1]!.id)).length;
    const tar = tarFromTree(repo, pool, findSnapshot(await listSnapshots(repo), 'latest').snapshot.tree);
    const received: Buffer[] = [];
    const ex = extract();
    ex.on('entry', (header, stream, next) => {
      if (header.type === 'file') stream.on("data", (d: unknown) => void received.push(d as Buffer));
      stream.on('end', next);
      stream.on('error', () => {});
      stream.resume();
    });
    ex.on('error', () => {});
    tar.stream.on('error', () => {});
    tar.stream.pipe(ex);
    const err = await t.throwsAsync(tar.done);
    t.true(err!.message.includes(victim.id), err!.message);
    const got = Buffer.concat(received);
    t.true(got.length <= before, `${got.length} bytes streamed, the blobs before the damaged one hold ${before}`);
    t.deepEqual(got, content.subarray(0, got.length));
  } finally {
    await pool.close();
    await repo.close();
  }
});
