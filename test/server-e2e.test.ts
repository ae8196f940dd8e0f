/**
 * The CLI against `stowage serve` running as its own process on loopback:
 * pinning at init, a server killed in the middle of a backup, a quota.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openHttpsBackend } from '../core/backends/https.ts';
import { Repository } from '../core/repository.ts';
import { listSnapshots, saveSnapshot } from '../core/snapshot.ts';
import { stowage, testEnv } from './helpers/cli.ts';
import { generate } from './helpers/dataset.ts';
import { type SpawnedServer, freePort, spawnServer } from './helpers/server.ts';
import { compareTrees } from './helpers/tree-compare.ts';
import { tempDir } from './helpers/tmp.ts';

async function tokenFor(dataDir: string, repo: string, role: string, env: NodeJS.ProcessEnv): Promise<string> {
  const r = await stowage(['serve', '--data', dataDir, 'token', 'add', '--repo', repo, '--role', role, '--json'], env);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!).token as string;
}

function dataPuts(log: string): { status: number }[] {
  return log
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { method?: string; type?: string; status: number })
    .filter((e) => e.method === 'PUT' && e.type === 'data');
}

/** A server of its own on a free port, with repository web1 made through it by the CLI. */
async function serverWithRepo(t: ExecutionContext, work: string): Promise<{ server: SpawnedServer; repoUrl: string; clientEnv: NodeJS.ProcessEnv }> {
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const dataDir = path.join(work, 'server');
  const server = await spawnServer(dataDir, await freePort(), env);
  t.teardown(() => server.stop());
  const repoUrl = `${server.url}/web1`;
  const clientEnv = { ...env, STOWAGE_TOKEN: await tokenFor(dataDir, 'web1', 'append', env), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  t.is((await stowage(['-r', repoUrl, 'init'], clientEnv)).code, 0);
  return { server, repoUrl, clientEnv };
}

/** Backs `src` up through the server, restores the latest snapshot into work/out, and checks it is identical. */
async function backupAndRestore(t: ExecutionContext, work: string, repoUrl: string, clientEnv: NodeJS.ProcessEnv, src: string, beforeRestore: () => void = () => {}): Promise<void> {
  t.is((await stowage(['-r', repoUrl, 'backup', src], clientEnv)).code, 0);
  beforeRestore();
  const restored = await stowage(['-r', repoUrl, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
}

test('init pins the server; backup and restore through it are byte-identical; later runs need no flag', async (t) => {
  const work = await tempDir(t);
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const server = await spawnServer(path.join(work, 'server'), await freePort(), env);
  t.teardown(() => server.stop());
  const src = path.join(work, 'src');
  generate(src, 16);
  const repoUrl = `${server.url}/web1`;
  const clientEnv = { ...env, STOWAGE_TOKEN: await tokenFor(path.join(work, 'server'), 'web1', 'append', env) };
  const init = await stowage(['-r', repoUrl, '--server-fingerprint', server.fingerprint, 'init'], clientEnv);
  t.is(init.code, 0, init.stderr);
  t.is((await stowage(['-r', repoUrl, 'backup', src], clientEnv)).code, 0);
  const restored = await stowage(['-r', repoUrl, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
  const noToken = await stowage(['-r', repoUrl, 'snapshots'], env);
  t.is(noToken.code, 2, 'no token is a usage error');
  const badToken = await stowage(['-r', repoUrl, 'snapshots'], { ...env, STOWAGE_TOKEN: 'stw_0123456789abcdef_' + 'A'.repeat(43) });
  t.is(badToken.code, 15, badToken.stderr);
});

test('a network restore reads many small files with a few ranged requests, not one each', async (t) => {
  const work = await tempDir(t);
  const { server, repoUrl, clientEnv } = await serverWithRepo(t, work);
  const src = path.join(work, 'src');
  for (let i = 0; i < 400; i++) {
    fs.mkdirSync(path.join(src, `d${i % 20}`), { recursive: true });
    fs.writeFileSync(path.join(src, `d${i % 20}`, `f${i}`), `${i} `.repeat(50 + ((i * 37) % 2000)));
  }
  let before = 0;
  await backupAndRestore(t, work, repoUrl, clientEnv, src, () => (before = server.log().split('\n').length));
  const gets = server
    .log()
    .split('\n')
    .slice(before - 1)
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { method?: string; type?: string })
    .filter((e) => e.method === 'GET' && e.type === 'data');
  // Trees come from the local cache the backup filled: what is left is file contents.
  t.log(`${gets.length} data requests for 400 files`);
  t.true(gets.length > 0 && gets.length <= 10, `${gets.length} data requests`);
});

test('files with the same contents restore over the network, each from its own copy of the shared blob', async (t) => {
  const work = await tempDir(t);
  const { repoUrl, clientEnv } = await serverWithRepo(t, work);
  // One blob in the whole repository, read once by range for three files.
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  for (const name of ['a', 'b', 'c']) fs.writeFileSync(path.join(src, name), 'the same bytes in three files\n'.repeat(100));
  await backupAndRestore(t, work, repoUrl, clientEnv, src);
});

/**
 * A server with a repository and 320 MiB of data to back up into it, for
 * the tests that kill the server: enough that packs are still moving when
 * the kill lands, even on a busy machine. Retries give up after a second.
 */
async function killableSetup(t: ExecutionContext) {
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const port = await freePort();
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache'), STOWAGE_RETRY_SECONDS: '1' });
  const server = await spawnServer(dataDir, port, env);
  const src = path.join(work, 'src');
  generate(src, 320);
  const repoUrl = `${server.url}/web1`;
  const clientEnv = { ...env, STOWAGE_TOKEN: await tokenFor(dataDir, 'web1', 'append', env), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  t.is((await stowage(['-r', repoUrl, 'init'], clientEnv)).code, 0);
  return { work, dataDir, port, env, server, src, repoUrl, clientEnv };
}

test('a server killed mid-backup: the next backup completes without uploading anything twice, and restores byte-identical', async (t) => {
  const setup = await killableSetup(t);
  const { work, dataDir, port, env, src, repoUrl, clientEnv } = setup;
  let server = setup.server;

  const first = stowage(['-r', repoUrl, 'backup', src], clientEnv);
  while (dataPuts(server.log()).filter((p) => p.status === 201).length < 3) await new Promise((r) => setTimeout(r, 10));
  await server.stop('SIGKILL');
  const failed = await first;
  t.is(failed.code, 14, `the backup reports an unreachable server: ${failed.stderr}`);

  server = await spawnServer(dataDir, port, env);
  t.teardown(() => server.stop());
  const landed = fs.readdirSync(path.join(dataDir, 'repos', 'web1', 'data'), { recursive: true }).filter((n) => /[0-9a-f]{64}$/.test(String(n))).length;
  t.true(landed >= 3);
  t.deepEqual(fs.readdirSync(path.join(dataDir, 'repos', 'web1', 'tmp')), [], 'no partial upload survives a restart');
  const second = await stowage(['-r', repoUrl, '--json', 'backup', src], clientEnv);
  t.is(second.code, 0, second.stderr);
  const summary = JSON.parse(second.stdout.trim().split('\n').at(-1)!);
  t.is(summary.adoptedPacks, landed, 'every pack that landed is adopted');
  t.deepEqual(dataPuts(server.log()).filter((p) => p.status !== 201), [], 'no PUT of an object already there');

  // Nothing twice: no blob sits in two packs, and every pack on the server is indexed.
  const backend = await openHttpsBackend(repoUrl, { env: clientEnv });
  const repo = await Repository.open(backend, 'test passphrase', { cacheRoot: null });
  await repo.loadIndex();
  let entries = 0;
  for (const p of repo.index.packs()) entries += p.blobs.length;
  t.is(entries, repo.index.blobCount);
  let stored = 0;
  for await (const _ of backend.list('data')) stored++;
  t.is(stored, repo.index.packCount);
  await repo.close();

  const restored = await stowage(['-r', repoUrl, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
});

test('an exhausted quota fails the backup with a message naming it; the repository stays valid', async (t) => {
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const server = await spawnServer(dataDir, await freePort(), env);
  t.teardown(() => server.stop());
  const src = path.join(work, 'src');
  generate(src, 40);
  const repoUrl = `${server.url}/web1`;
  const clientEnv = { ...env, STOWAGE_TOKEN: await tokenFor(dataDir, 'web1', 'append', env), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  t.is((await stowage(['-r', repoUrl, 'init'], clientEnv)).code, 0);
  t.is((await stowage(['serve', '--data', dataDir, 'quota', '--repo', 'web1', '20M'], env)).code, 0);
  const over = await stowage(['-r', repoUrl, 'backup', src], clientEnv);
  t.is(over.code, 15, over.stderr);
  t.regex(over.stderr, /quota/);
  t.regex(over.stderr, /20971520/);
  t.is((await stowage(['serve', '--data', dataDir, 'quota', '--repo', 'web1', 'none'], env)).code, 0);
  const again = await stowage(['-r', repoUrl, 'backup', src], clientEnv);
  t.is(again.code, 0, again.stderr);
  const restored = await stowage(['-r', repoUrl, 'restore', 'latest', '--target', path.join(work, 'out')], clientEnv);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(compareTrees(src, path.join(work, 'out', src)), []);
});

test('a snapshot dated a year ahead cannot make forget --keep-within 90d delete the real recent ones (the server clock judges)', async (t) => {
  const work = await tempDir(t);
  const dataDir = path.join(work, 'server');
  const env = testEnv({ STOWAGE_CONFIG_DIR: path.join(work, 'config'), STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const server = await spawnServer(dataDir, await freePort(), env);
  t.teardown(() => server.stop());
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'data');
  const url = `${server.url}/web1`;
  const clientEnv = { ...env, STOWAGE_TOKEN: await tokenFor(dataDir, 'web1', 'admin', env), STOWAGE_SERVER_FINGERPRINT: server.fingerprint };
  t.is((await stowage(['-r', url, 'init'], clientEnv)).code, 0);
  for (let i = 0; i < 3; i++) t.is((await stowage(['-r', url, 'backup', src], clientEnv)).code, 0);
  // A stolen host credential writes a snapshot claiming to be from a year ahead.
  const backend = await openHttpsBackend(url, { env: clientEnv });
  const repo = await Repository.open(backend, 'test passphrase', { cacheRoot: null });
  const real = await listSnapshots(repo);
  const ahead = new Date(Date.now() + 365 * 86_400_000).toISOString();
  await saveSnapshot(repo, { ...real.at(-1)!.snapshot, time: ahead });
  await repo.close();

  const listed = await stowage(['-r', url, 'snapshots'], clientEnv);
  t.regex(listed.stdout, /\[server received it \d{4}-\d\d-\d\d/, 'snapshots shows both times where they disagree');
  const forget = await stowage(['-r', url, '--json', 'forget', '--keep-within', '90d'], clientEnv);
  t.is(forget.code, 0, forget.stderr);
  const after = JSON.parse((await stowage(['-r', url, '--json', 'snapshots'], clientEnv)).stdout) as { id: string }[];
  for (const r of real) t.true(after.some((a) => a.id === r.id), `real snapshot ${r.id.slice(0, 8)} kept`);
});

test('a server killed mid-restore: the restore ends with the server error and a clear message, and every file it finished is whole', async (t) => {
  const { work, server, src, repoUrl, clientEnv } = await killableSetup(t);
  t.teardown(() => server.stop());
  t.is((await stowage(['-r', repoUrl, 'backup', src], clientEnv)).code, 0);

  const out = path.join(work, 'out');
  const restore = stowage(['-r', repoUrl, '--json', 'restore', 'latest', '--target', out], clientEnv);
  const dataGets = (): number => server.log().split('\n').filter((l) => l.includes('"GET"') && l.includes('"data"')).length;
  while (dataGets() < 3) await new Promise((r) => setTimeout(r, 10));
  await server.stop('SIGKILL');
  const r = await restore;
  t.true(r.code === 14 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
  t.regex(r.stderr, /server|reach|connection/i);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  // Files the restore reports as restored are whole; the others are listed as problems.
  const failed = new Set<string>();
  for (const line of r.stdout.trim().split('\n').filter(Boolean)) {
    const m = JSON.parse(line) as { type?: string; problems?: { path: string }[] };
    for (const p of m.problems ?? []) failed.add(p.path);
  }
  const restoredRoot = path.join(out, src);
  for (const f of fs.existsSync(restoredRoot) ? fs.readdirSync(restoredRoot, { recursive: true }).map(String) : []) {
    const abs = path.join(restoredRoot, f);
    if (!fs.lstatSync(abs).isFile() || [...failed].some((p) => p.endsWith(f))) continue;
    const original = path.join(src, f);
    if (fs.lstatSync(abs).size === fs.lstatSync(original).size) t.deepEqual(fs.readFileSync(abs), fs.readFileSync(original), f);
  }
});
