import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { stowage, testEnv } from './helpers/cli.ts';
import { tempDir } from './helpers/tmp.ts';

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  return n;
}

async function initRepo(t: Parameters<typeof tempDir>[0]) {
  const work = await tempDir(t);
  const repo = path.join(work, 'repo');
  const env = testEnv({ STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const r = await stowage(['-r', repo, 'init'], env);
  t.is(r.code, 0, r.stderr);
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(src, 'dir', 'file.txt'), 'hello');
  return { work, repo, env, src };
}

test('init, backup, snapshots, ls, restore and cat work end to end with --json', async (t) => {
  const { work, repo, env, src } = await initRepo(t);
  const keys = fs.readdirSync(path.join(repo, 'keys'));
  t.is(fs.statSync(path.join(repo, 'keys', keys[0]!)).mode & 0o777, 0o600);
  const b = await stowage(['-r', repo, '--json', 'backup', src, '--tag', 'one'], env);
  t.is(b.code, 0, b.stderr);
  const summary = JSON.parse(b.stdout.trim().split('\n').at(-1)!);
  t.is(summary.type, 'summary');
  t.is(summary.stats.filesNew, 1);
  const list = JSON.parse((await stowage(['-r', repo, '--json', 'snapshots'], env)).stdout);
  t.is(list.length, 1);
  t.deepEqual(list[0].tags, ['one']);
  t.is(list[0].id, summary.snapshot);
  const ls = await stowage(['-r', repo, 'ls', list[0].short_id, path.join(src, 'dir')], env);
  t.deepEqual(ls.stdout.trim().split('\n'), [path.join(src, 'dir'), path.join(src, 'dir/file.txt')]);
  const target = path.join(work, 'out');
  const r = await stowage(['-r', repo, 'restore', 'latest', '--target', target, '--path', path.join(src, 'dir')], env);
  t.is(r.code, 0, r.stderr);
  t.is(fs.readFileSync(path.join(target, 'file.txt'), 'utf8'), 'hello');
  const cfg = JSON.parse((await stowage(['-r', repo, 'cat', 'config'], env)).stdout);
  t.is(cfg.version, 1);
  t.is(cfg.chunker.algorithm, 'fastcdc');
});

test('a wrong passphrase exits 12 and writes nothing', async (t) => {
  const { repo, env, src } = await initRepo(t);
  const before = fs.readdirSync(repo, { recursive: true }).sort();
  const r = await stowage(['-r', repo, 'backup', src], { ...env, STOWAGE_PASSWORD: 'wrong' });
  t.is(r.code, 12);
  t.regex(r.stderr, /wrong passphrase/);
  t.deepEqual(fs.readdirSync(repo, { recursive: true }).sort(), before);
});

test('the passphrase comes from a file or a command, never from argv', async (t) => {
  const { work, repo, env } = await initRepo(t);
  const { STOWAGE_PASSWORD: pw, ...noPw } = env;
  fs.writeFileSync(path.join(work, 'pw'), `${pw}\n`);
  t.is((await stowage(['-r', repo, '--password-file', path.join(work, 'pw'), 'snapshots'], noPw)).code, 0);
  t.is((await stowage(['-r', repo, '--password-command', `cat ${path.join(work, 'pw')}`, 'snapshots'], noPw)).code, 0);
  const none = await stowage(['-r', repo, 'snapshots'], noPw);
  t.is(none.code, 2);
  t.regex(none.stderr, /no passphrase/);
  t.is((await stowage(['-r', repo, '--password', 'x', 'snapshots'], noPw)).code, 2);
});

test('distinct exit codes: no repository 10, locked 11, plain HTTP and unknown snapshot 2', async (t) => {
  const { work, repo, env } = await initRepo(t);
  const missing = await stowage(['-r', path.join(work, 'nothing'), 'snapshots'], env);
  t.is(missing.code, 10);
  t.regex(missing.stderr, /no stowage repository/);
  const http = await stowage(['-r', 'http://127.0.0.1:1/repo', 'snapshots'], env);
  t.is(http.code, 2);
  t.regex(http.stderr, /plain HTTP/);
  const snap = await stowage(['-r', repo, 'ls', 'deadbeef'], env);
  t.is(snap.code, 2);
  // An exclusive lock held by a live process (this test's pid) on this host blocks a backup.
  const { openRepo } = await import('./helpers/repo.ts');
  const r = await openRepo(repo, env['STOWAGE_PASSWORD']!);
  const { RepositoryLock } = await import('../core/lock.ts');
  const lock = await RepositoryLock.acquire(r, { exclusive: true, operation: 'prune' });
  const locked = await stowage(['-r', repo, 'backup', work], env);
  t.is(locked.code, 11);
  t.regex(locked.stderr, /locked.*prune/);
  await lock.release();
});

test('--help lists the exit codes', async (t) => {
  const r = await stowage(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /Exit codes:[\s\S]*130  interrupted/);
});

test('a repository written with the WebAssembly libsodium is read and deduplicated by the compiled one, and the reverse', async (t) => {
  const { work, repo, env, src } = await initRepo(t);
  for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(src, `big-${i}`), randomBytes((1 + i) << 20));
  const wasm = { ...env, STOWAGE_SODIUM: 'wasm' };
  const first = await stowage(['-r', repo, '--json', 'backup', src], wasm);
  t.is(first.code, 0, first.stderr);
  // New mtimes make the other build read every file again; the same blob IDs mean nothing but trees is stored.
  const before = treeBytes(repo);
  for (let i = 0; i < 3; i++) fs.utimesSync(path.join(src, `big-${i}`), new Date(), new Date(2000 + i, 1, 1));
  const second = await stowage(['-r', repo, 'backup', src], env);
  t.is(second.code, 0, second.stderr);
  t.true(treeBytes(repo) - before < 64 * 1024, `grew by ${treeBytes(repo) - before} bytes`);
  for (const [name, e] of [['native', env], ['wasm', wasm]] as const) {
    const target = path.join(work, `out-${name}`);
    const r = await stowage(['-r', repo, 'restore', first.stdout.trim().split('\n').at(-1)!.match(/"snapshot":"(\w+)"/)![1]!, '--target', target], e);
    t.is(r.code, 0, r.stderr);
    for (let i = 0; i < 3; i++) t.deepEqual(fs.readFileSync(path.join(target, src, `big-${i}`)), fs.readFileSync(path.join(src, `big-${i}`)), `${name} big-${i}`);
  }
});
