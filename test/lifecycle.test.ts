/**
 * The archive lifecycle on real repositories: forget, prune (with real
 * deletion), check and its faults, repair, diff, concurrent backups.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeIndex } from '../core/blob-index.ts';
import { checkRepository } from '../core/check.ts';
import { prune } from '../core/prune.ts';
import { saveSnapshot, listSnapshots } from '../core/snapshot.ts';
import { STOWAGE, stowage, testEnv } from './helpers/cli.ts';
import { generate, mutate } from './helpers/dataset.ts';
import { PASSWORD, backup, duBytes, newRepo, openRepo, restore } from './helpers/repo.ts';
import { startTestServer } from './helpers/server.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

const MiB = 1 << 20;

/** A repository with 1 MiB packs holding two snapshots of different data (a and b) and a mutated a. */
async function twoDatasets(t: import('ava').ExecutionContext): Promise<{ dir: string; work: string; a: string; b: string }> {
  const work = await tempDir(t);
  const a = path.join(work, 'a');
  const b = path.join(work, 'b');
  generate(a, 16, 11);
  generate(b, 16, 12);
  const { repo, dir } = await newRepo(t, { packSize: MiB });
  await repo.close();
  await backup(dir, [a]);
  await backup(dir, [b]);
  return { dir, work, a, b };
}

const cliEnv = (work: string): NodeJS.ProcessEnv => testEnv({ STOWAGE_PASSWORD: PASSWORD, STOWAGE_CACHE_DIR: path.join(work, 'cache') });

test('prune after forgetting half the data shrinks the repository, keeps the rest restorable, and check --read-data passes', async (t) => {
  const { dir, work, a, b } = await twoDatasets(t);
  const before = await duBytes(dir);
  const env = cliEnv(work);
  const snaps = JSON.parse((await stowage(['-r', dir, '--json', 'snapshots'], env)).stdout) as { id: string; paths: string[] }[];
  const victim = snaps.find((s) => s.paths[0] === a)!;
  const forget = await stowage(['-r', dir, 'forget', victim.id.slice(0, 8), '--prune'], env);
  t.is(forget.code, 0, forget.stderr);
  const after = await duBytes(dir);
  t.log(`repository ${(before / MiB).toFixed(1)} MiB → ${(after / MiB).toFixed(1)} MiB`);
  t.true(after < before * 0.6, `shrank to ${after} of ${before}`);
  const target = path.join(work, 'out');
  await restore(dir, target);
  t.deepEqual(compareTrees(b, path.join(target, b)), []);
  const check = await stowage(['-r', dir, 'check', '--read-data'], env);
  t.is(check.code, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /no errors were found/);
});

test('partly used packs past the threshold are repacked; what stays restores byte-identical', async (t) => {
  const work = await tempDir(t);
  const a = path.join(work, 'a');
  generate(a, 24, 21);
  const { repo, dir } = await newRepo(t, { packSize: MiB });
  await repo.close();
  await backup(dir, [a]);
  mutate(a, 77);
  await backup(dir, [a]);
  const r0 = await openRepo(dir);
  const first = (await listSnapshots(r0))[0]!;
  await r0.backend.remove({ type: 'snapshots', name: first.id });
  const result = await prune(r0, { maxUnused: 0 });
  await r0.close();
  t.log(`deleted ${result.packsToDelete}, repacked ${result.packsToRepack} into ${result.packsWritten}`);
  t.true(result.packsToRepack > 0 || result.packsToDelete > 0);
  const r1 = await openRepo(dir);
  const check = await checkRepository(r1, { kind: 'all' });
  t.deepEqual(check.problems, []);
  t.deepEqual(check.notes, [], 'no pack is left unindexed');
  // Every pack is read, and counted once (two are read at a time).
  let stored = 0;
  for await (const o of r1.backend.list('data')) stored += o.size;
  t.is(check.packsRead, check.packs);
  t.is(check.bytesRead, stored);
  // Nothing unused is left: a second prune finds nothing to do.
  const again = await prune(r1, { maxUnused: 0, dryRun: true });
  t.is(again.bytesToFree, 0);
  await r1.close();
  const target = path.join(work, 'out');
  await restore(dir, target);
  t.deepEqual(compareTrees(a, path.join(target, a)), []);
});

test('forget + prune through the server: no byte of the removed packs is left on its disk; append tokens cannot prune', async (t) => {
  const work = await tempDir(t);
  const server = await startTestServer(t);
  const a = path.join(work, 'a');
  const b = path.join(work, 'b');
  generate(a, 12, 31);
  generate(b, 12, 32);
  const url = `${server.url}/web1`;
  const base = { ...testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache') }), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  const append = { ...base, STOWAGE_TOKEN: await server.token('web1', 'append') };
  const admin = { ...base, STOWAGE_TOKEN: await server.token('web1', 'admin') };
  t.is((await stowage(['-r', url, 'init'], append)).code, 0);
  t.is((await stowage(['-r', url, 'backup', a], append)).code, 0);
  const dataDir = path.join(server.dataDir, 'repos', 'web1', 'data');
  const packsOf = (): Set<string> => new Set(fs.readdirSync(dataDir, { recursive: true }).map(String).filter((n) => /[0-9a-f]{64}$/.test(n)).map((n) => path.basename(n)));
  const packsA = packsOf();
  // Samples of the ciphertext of a's packs, to search for after the prune.
  const samples = [...packsA].map((name) => {
    const bytes = fs.readFileSync(path.join(dataDir, name.slice(0, 2), name));
    return bytes.subarray(Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64);
  });
  t.is((await stowage(['-r', url, 'backup', b], append)).code, 0);
  const snaps = JSON.parse((await stowage(['-r', url, '--json', 'snapshots'], append)).stdout) as { id: string; paths: string[] }[];
  const victim = snaps.find((s) => s.paths[0] === a)!.id;

  const refused = await stowage(['-r', url, 'forget', victim], append);
  t.is(refused.code, 15, 'an append token cannot forget');
  t.is((await stowage(['-r', url, 'forget', victim], admin)).code, 0);
  t.is((await stowage(['-r', url, 'prune'], append)).code, 15, 'an append token cannot prune');
  const pruned = await stowage(['-r', url, '--json', 'prune'], admin);
  t.is(pruned.code, 0, pruned.stderr);

  const left = packsOf();
  for (const p of packsA) t.false(left.has(p), `pack ${p} of the forgotten snapshot is gone`);
  const everything = fs.readdirSync(server.dataDir, { recursive: true }).map((n) => path.join(server.dataDir, String(n))).filter((p) => fs.statSync(p).isFile());
  for (const file of everything) {
    const bytes = fs.readFileSync(file);
    for (const s of samples) t.is(bytes.indexOf(s), -1, `ciphertext of a removed pack found in ${file}`);
  }
  const restored = await stowage(['-r', url, 'restore', 'latest', '--target', path.join(work, 'out')], append);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(b, path.join(work, 'out', b)), []);
});

// Serial: timing-sensitive, so no other test in this file may block the event loop meanwhile.
test.serial('prune killed at random points leaves a repository that restores; the next prune finishes and check passes', async (t) => {
  const { dir: template, work, b } = await twoDatasets(t);
  const env = cliEnv(work);
  const a2 = path.join(work, 'a');
  mutate(a2, 5);
  await backup(template, [a2]);
  const r = await openRepo(template);
  const oldest = (await listSnapshots(r))[0]!;
  await r.backend.remove({ type: 'snapshots', name: oldest.id });
  await r.close();
  const pruneArgs = (dir: string): string[] => ['-r', dir, 'prune', '--max-unused', '0%'];
  // How long a whole prune takes here, so that kills land all along it.
  const probe = path.join(work, 'probe');
  fs.cpSync(template, probe, { recursive: true });
  const started = Date.now();
  t.is((await stowage(pruneArgs(probe), env)).code, 0);
  const full = Date.now() - started;
  // Most of a short prune is starting up and opening the repository; aim the kills past that.
  const openStarted = Date.now();
  await stowage(['-r', probe, 'snapshots'], env);
  const opening = Math.min(full * 0.8, Date.now() - openStarted);
  let seed = 99;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 8; i++) {
    const dir = path.join(work, `run${i}`);
    fs.cpSync(template, dir, { recursive: true });
    const delay = Math.floor(opening * 0.9 + rand() * (full - opening * 0.9));
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(STOWAGE, pruneArgs(dir), { env, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), delay);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    t.log(`run ${i}: killed after ${delay} ms of a ${full} ms prune (${opening} ms to open; exit ${code})`);
    // The dead prune's lock is stale (its process is gone): the next command proceeds.
    const target = path.join(work, `out${i}`);
    const res = await stowage(['-r', dir, 'restore', 'latest', '--target', target], env);
    t.is(res.code, 0, res.stderr);
    t.deepEqual(compareTrees(a2, path.join(target, a2)), []);
    t.is((await stowage(pruneArgs(dir), env)).code, 0);
    const check = await stowage(['-r', dir, 'check', '--read-data'], env);
    t.is(check.code, 0, check.stdout);
    fs.rmSync(target, { recursive: true });
  }
  const dir = path.join(work, 'run0');
  const snaps = JSON.parse((await stowage(['-r', dir, '--json', 'snapshots', '--path', b], env)).stdout) as { id: string }[];
  const res = await stowage(['-r', dir, 'restore', snaps[0]!.id, '--target', path.join(work, 'final')], env);
  t.is(res.code, 0, res.stderr);
  t.deepEqual(compareTrees(b, path.join(work, 'final', b)), []);
});

/** Each fault, injected into a copy of one repository, and what check must say. */
const faults: [string, boolean, (dir: string) => Promise<void>, RegExp][] = [
  [
    'a missing pack',
    false,
    async (dir) => {
      const p = firstPack(dir);
      fs.rmSync(p);
    },
    /missing from the store/,
  ],
  [
    'a truncated pack',
    false,
    async (dir) => {
      const p = firstPack(dir);
      fs.truncateSync(p, fs.statSync(p).size - 100);
    },
    /truncated or replaced/,
  ],
  [
    'a flipped byte in a blob',
    true,
    async (dir) => {
      const p = firstPack(dir);
      const fd = fs.openSync(p, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, 100);
      b[0]! ^= 0x40;
      fs.writeSync(fd, b, 0, 1, 100);
      fs.closeSync(fd);
    },
    /does not match its name|does not decrypt/,
  ],
  [
    'an index entry pointing at a wrong offset',
    true,
    async (dir) => {
      const repo = await openRepo(dir);
      await repo.loadIndex();
      const old = (await repo.listObjects('index')).map((o) => o.name);
      const packs = [...repo.index.packs()].map((p, i) =>
        i === 0 ? { ...p, blobs: p.blobs.map((b, j) => (j === 0 ? { ...b, offset: b.offset + 16 } : b)) } : p,
      );
      await repo.replaceIndex(packs, old);
      await repo.close();
    },
    /where the pack header does not/,
  ],
  [
    'a snapshot referencing a missing tree',
    false,
    async (dir) => {
      const repo = await openRepo(dir);
      const [rec] = await listSnapshots(repo);
      await saveSnapshot(repo, { ...rec!.snapshot, tree: randomBytes(32).toString('hex') });
      await repo.close();
    },
    /tree blob [0-9a-f]{64}: snapshot [0-9a-f]{8}: \/ refers to it, but it is not in the index/,
  ],
];

function firstPack(dir: string): string {
  const shards = fs.readdirSync(path.join(dir, 'data')).sort();
  const shard = path.join(dir, 'data', shards[0]!);
  return path.join(shard, fs.readdirSync(shard).sort()[0]!);
}

test('check finds each injected fault and names the object; a healthy copy passes', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'src');
  generate(src, 12, 41);
  const { repo, dir } = await newRepo(t, { packSize: MiB });
  await repo.close();
  await backup(dir, [src]);
  const healthy = await openRepo(dir);
  t.deepEqual((await checkRepository(healthy, { kind: 'all' })).problems, []);
  await healthy.close();
  for (const [name, readData, inject, expected] of faults) {
    const copy = path.join(work, name.replace(/\W+/g, '-'));
    fs.cpSync(dir, copy, { recursive: true });
    await inject(copy);
    const r = await openRepo(copy);
    const result = await checkRepository(r, readData ? { kind: 'all' } : { kind: 'none' });
    await r.close();
    t.true(result.problems.some((p) => expected.test(`${p.object}: ${p.message}`)), `${name}: ${JSON.stringify(result.problems)}`);
  }
  const copy = path.join(work, 'fault-cli');
  fs.cpSync(dir, copy, { recursive: true });
  fs.rmSync(firstPack(copy));
  const cli = await stowage(['-r', copy, 'check'], cliEnv(work));
  t.is(cli.code, 13);
  t.regex(cli.stdout, /error: data\/[0-9a-f]{64}: indexed but missing/);
});

test('repair index rebuilds a deleted index from the packs', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'src');
  generate(src, 12, 51);
  const { repo, dir } = await newRepo(t, { packSize: MiB });
  await repo.close();
  await backup(dir, [src]);
  for (const f of fs.readdirSync(path.join(dir, 'index'))) fs.rmSync(path.join(dir, 'index', f));
  const env = cliEnv(work);
  t.is((await stowage(['-r', dir, 'check'], env)).code, 13, 'a repository without an index fails check');
  const repaired = await stowage(['-r', dir, 'repair', 'index'], env);
  t.is(repaired.code, 0, repaired.stderr);
  t.is((await stowage(['-r', dir, 'check', '--read-data'], env)).code, 0);
  const res = await stowage(['-r', dir, 'restore', 'latest', '--target', path.join(work, 'out')], env);
  t.is(res.code, 0, res.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  // A prune with an empty index would be a disaster; with a rebuilt one it finds nothing to delete.
  const dry = JSON.parse((await stowage(['-r', dir, '--json', 'prune', '--dry-run'], env)).stdout.trim().split('\n').at(-1)!);
  t.is(dry.packsToDelete, 0);
});

test('prune refuses when the index lacks blobs that snapshots use', async (t) => {
  const { dir } = await twoDatasets(t);
  const r = await openRepo(dir);
  await r.loadIndex();
  const old = (await r.listObjects('index')).map((o) => o.name);
  const packs = [...r.index.packs()];
  await r.replaceIndex(packs.slice(1), old);
  await r.close();
  const before = await duBytes(dir);
  const fresh = await openRepo(dir);
  await t.throwsAsync(prune(fresh, { maxUnused: 0.1 }), { message: /missing from the index; refusing to prune/ });
  await fresh.close();
  t.true((await duBytes(dir)) >= before, 'nothing was deleted');
});

for (const where of ['local', 'server'] as const) {
test.serial(`three backups at once into one repository all succeed; a prune meanwhile refuses, or with --wait runs after them (${where})`, async (t) => {
  const work = await tempDir(t);
  const srcs = [1, 2, 3].map((i) => path.join(work, `host${i}`));
  srcs.forEach((s, i) => generate(s, 48, 60 + i));
  let dir = path.join(work, 'repo');
  let env = cliEnv(work);
  let locks = path.join(dir, 'locks');
  if (where === 'server') {
    const server = await startTestServer(t);
    dir = `${server.url}/web`;
    env = { ...env, STOWAGE_CONFIG_DIR: path.join(work, 'cfg'), STOWAGE_SERVER_FINGERPRINT: server.fingerprint, STOWAGE_TOKEN: await server.token('web', 'admin') };
    locks = path.join(server.dataDir, 'repos', 'web', 'locks');
  }
  t.is((await stowage(['-r', dir, 'init'], env)).code, 0);
  const runs = srcs.map((s, i) => stowage(['-r', dir, 'backup', '--host', `host${i + 1}`, s], env));
  const deadline = Date.now() + 60_000;
  while (fs.readdirSync(locks).filter((n) => /^[0-9a-f]{64}$/.test(n)).length === 0) {
    if (Date.now() > deadline) return t.fail(`no backup took a lock: ${JSON.stringify(await Promise.all(runs))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const [refused, waited] = await Promise.all([stowage(['-r', dir, 'prune'], env), stowage(['-r', dir, '--json', 'prune', '--wait', '5m'], env)]);
  const results = await Promise.all(runs);
  for (const r of results) t.is(r.code, 0, r.stderr);
  t.is(refused.code, 11, `prune refuses while backups hold locks: ${refused.stderr}`);
  t.regex(refused.stderr, /locked/);
  t.is(waited.code, 0, waited.stderr);
  t.is(JSON.parse(waited.stdout.trim().split('\n').at(-1)!).snapshots, 3, 'the waiting prune ran after all three backups');
  for (const [i, s] of srcs.entries()) {
    const target = path.join(work, `out${i}`);
    const snaps = JSON.parse((await stowage(['-r', dir, '--json', 'snapshots', '--host', `host${i + 1}`], env)).stdout) as { id: string }[];
    const res = await stowage(['-r', dir, 'restore', snaps[0]!.id, '--target', target], env);
    t.is(res.code, 0, res.stderr);
    t.deepEqual(compareTrees(s, path.join(target, s)), []);
  }
  t.is((await stowage(['-r', dir, 'check', '--read-data'], env)).code, 0);
});
}

test('diff lists added, removed, modified and metadata-only changes', async (t) => {
  const work = await tempDir(t);
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'd'), { recursive: true });
  fs.writeFileSync(path.join(src, 'keep.txt'), 'same');
  fs.writeFileSync(path.join(src, 'change.txt'), 'before');
  fs.writeFileSync(path.join(src, 'gone.txt'), 'bye');
  fs.writeFileSync(path.join(src, 'd', 'mode.txt'), 'x');
  const dir = path.join(work, 'repo');
  const env = cliEnv(work);
  await stowage(['-r', dir, 'init'], env);
  await stowage(['-r', dir, 'backup', src], env);
  fs.writeFileSync(path.join(src, 'change.txt'), 'after!');
  fs.rmSync(path.join(src, 'gone.txt'));
  fs.writeFileSync(path.join(src, 'd', 'new.txt'), 'hi');
  fs.chmodSync(path.join(src, 'd', 'mode.txt'), 0o600);
  await stowage(['-r', dir, 'backup', src], env);
  const snaps = JSON.parse((await stowage(['-r', dir, '--json', 'snapshots'], env)).stdout) as { id: string }[];
  const d = await stowage(['-r', dir, '--json', 'diff', snaps[0]!.id, snaps[1]!.id], env);
  t.is(d.code, 0, d.stderr);
  const changes = (JSON.parse(d.stdout.trim()).changes as { kind: string; path: string }[]).filter((c) => c.path.startsWith(`${src}/`));
  const rel = changes.map((c) => `${c.kind} ${c.path.slice(src.length)}`).sort();
  t.deepEqual(rel, ['+ /d/new.txt', '- /gone.txt', 'M /change.txt', 'U /d', 'U /d/mode.txt'].sort());
});
