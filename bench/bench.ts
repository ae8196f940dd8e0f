/**
 * `npm run bench`: times stowage against restic and BorgBackup (when
 * installed) on the same generated dataset, in one run, and prints ratios.
 *
 *   initial backup  →  no-change backup  →  gen-dataset --mutate  →  incremental backup  →  restore
 *
 * Each tool gets its own repository on the same disk, real key derivation,
 * and its defaults (restic: zstd auto; borg: lz4, repokey-blake2). Wall time
 * and peak RSS come from getrusage of the child (through python3, which the
 * dataset generator needs anyway). Options: --size-mib N (1024), --work DIR
 * (.bench), --keep, --no-server (skip the run through `stowage serve` on loopback),
 * --rtt-ms N (add N ms of round trip between client and server, as a WAN would),
 * --no-lifecycle (skip timing prune of 50 % garbage and check --read-data),
 * --rounds N (3). Each restore is followed by a timed `sync` (restore + sync).
 *
 * The machine's speed drifts by ±20 % over minutes and the first command
 * after a burst of writes runs slower, so the initial backup, the no-change
 * backup and the restore of stowage, restic and borg are each timed
 * --rounds times, the tools in a different order each round (initial
 * backups into fresh repositories), and the median is reported; the rest
 * runs once.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnServerWith } from '../test/helpers/server.ts';
import { args, genDataset, opt, root } from './options.ts';

const sizeMib = Number(opt('--size-mib', '1024'));
/** Round-trip time added between client and server (through a delaying proxy). */
const rttMs = Number(opt('--rtt-ms', '0'));
const rounds = Math.max(1, Number(opt('--rounds', '3')));
const work = path.resolve(opt('--work', path.join(root, '.bench')));
const gen = genDataset();
/** Servers this benchmark started: stopped, and waited for, before it exits. */
const servers: { stop(): Promise<number | null> }[] = [];

const PASSWORD = 'bench passphrase';
const env = { ...process.env, STOWAGE_PASSWORD: PASSWORD, RESTIC_PASSWORD: PASSWORD, BORG_PASSPHRASE: PASSWORD, STOWAGE_NODE: process.execPath, STOWAGE_CACHE_DIR: path.join(work, 'stowage-cache'), RESTIC_CACHE_DIR: path.join(work, 'restic-cache'), BORG_BASE_DIR: path.join(work, 'borg-base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };

interface Measure {
  seconds: number;
  maxRssMib: number;
}

/** Runs a command and returns its wall time and peak RSS (ru_maxrss of the child). */
function measure(cmd: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd = work): Measure {
  const py = `import resource,subprocess,sys,time,json
t=time.time(); r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
el=time.time()-t
if r.returncode not in (0,): sys.stderr.write(r.stderr.decode()[-2000:]); sys.exit(r.returncode)
print(json.dumps({"seconds": el, "maxRssMib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))`;
  const out = execFileSync('python3', ['-c', py, ...cmd], { env: { ...env, ...extraEnv }, cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out) as Measure;
}

/** The run of median time among `runs`. */
function median(runs: readonly Measure[]): Measure {
  return [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor((runs.length - 1) / 2)]!;
}

/** `list` rotated by `n`: each round starts with another tool. */
function rotated<T>(list: readonly T[], n: number): T[] {
  const k = n % Math.max(list.length, 1);
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * The tools timed in round `round`, in the order they run: round 0 runs
 * every tool, later rounds only those that repeat, rotated among
 * themselves. Rotating the whole list instead (and then leaving out the
 * tools that do not repeat) put stowage last, after borg, in every later
 * round, and so never in the first slot after the pause, which is the
 * slowest (the host has taken back the memory freed meanwhile).
 */
function roundOrder(list: readonly Tool[], round: number): Tool[] {
  return round === 0 ? [...list] : rotated(list.filter((t) => t.repeat), round);
}

function du(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { recursive: true })) {
    const st = fs.lstatSync(path.join(dir, String(e)));
    if (st.isFile()) total += st.size;
  }
  return total;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

interface Tool {
  name: string;
  /** Timed over several rounds (a tool with a repository of its own per round); the server variants run once. */
  repeat: boolean;
  /** Where the repository's bytes are, when not at the path given to init. */
  storage?: string;
  env?: NodeJS.ProcessEnv;
  init(repo: string): void;
  backup(repo: string, data: string): string[];
  restore(repo: string, target: string): string[];
}

const stowage = path.join(root, 'cli/stowage');
const tools: Tool[] = [
  {
    name: 'stowage',
    repeat: true,
    init: (repo) => execFileSync(stowage, ['-r', repo, 'init', '-q'], { env, stdio: 'ignore' }),
    backup: (repo, data) => [stowage, '-r', repo, 'backup', data],
    restore: (repo, target) => [stowage, '-r', repo, 'restore', 'latest', '--target', target],
  },
];
if (!args.includes('--no-server')) tools.push(await serverTool());
if (!args.includes('--no-server') && have('radosgw')) tools.push(await serverTool('s3'));
if (have('restic')) {
  tools.push({
    name: 'restic',
    repeat: true,
    init: (repo) => execFileSync('restic', ['init', '-r', repo, '-q'], { env, stdio: 'ignore' }),
    backup: (repo, data) => ['restic', '-r', repo, 'backup', '-q', data],
    restore: (repo, target) => ['restic', '-r', repo, 'restore', 'latest', '--target', target, '-q'],
  });
}
/** The number of archives each borg repository has (borg names them; this benchmark names them a1, a2, …). */
const borgArchives = new Map<string, number>();
if (have('borg')) {
  tools.push({
    name: 'borg',
    repeat: true,
    init: (repo) => execFileSync('borg', ['init', '-e', 'repokey-blake2', repo], { env, stdio: 'ignore' }),
    backup: (repo, data) => {
      const n = (borgArchives.get(repo) ?? 0) + 1;
      borgArchives.set(repo, n);
      return ['borg', 'create', `${repo}::a${n}`, data];
    },
    restore: (repo, target) => {
      fs.mkdirSync(target, { recursive: true });
      return ['sh', '-c', `cd ${target} && borg extract ${repo}::a${borgArchives.get(repo)}`];
    },
  });
}

/** Starts bench/latency-proxy.ts in front of the server; returns the port to connect to. */
async function startLatencyProxy(targetPort: number, oneWayMs: number): Promise<number> {
  const child = spawn(process.execPath, [path.join(root, 'bench/latency-proxy.ts'), String(targetPort), String(oneWayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => child.kill());
  return await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
}

/** stowage through `stowage serve` on loopback: same machine, same disk, real TLS. */
async function serverTool(store: 'fs' | 's3' = 'fs'): Promise<Tool> {
  const dataDir = path.join(work, store === 's3' ? 'server-s3' : 'server');
  fs.rmSync(dataDir, { recursive: true, force: true });
  const port = 20000 + Math.floor(Math.random() * 20000);
  let serverEnv: NodeJS.ProcessEnv = env;
  const extra: string[] = [];
  if (store === 's3') {
    // Ceph's radosgw (memstore OSD) through the test suite's script, stopped when the benchmark ends.
    const rgwData = path.join(work, 'rgw');
    const rgwEnv = { ...process.env, RGW_DATA: rgwData, RGW_PORT: String(port + 1), MON_PORT: String(port + 2) };
    execFileSync(path.join(root, 'test/helpers/rgw.sh'), ['stop'], { env: rgwEnv, stdio: 'ignore' });
    const out = execFileSync(path.join(root, 'test/helpers/rgw.sh'), ['start'], { env: rgwEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    process.on('exit', () => execFileSync(path.join(root, 'test/helpers/rgw.sh'), ['stop'], { env: rgwEnv, stdio: 'ignore' }));
    serverEnv = { ...env, ...Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) };
    extra.push('--store', 's3://stowage-bench/bench');
  }
  const server = await spawnServerWith(dataDir, port, serverEnv, extra, true);
  // Stopped (and waited for) before the benchmark exits: a server whose parent is gone cannot log, and lingers.
  servers.push(server);
  const fingerprint = server.fingerprint;
  const added = execFileSync(stowage, ['serve', '--data', dataDir, ...extra, 'token', 'add', '--repo', 'bench', '--role', 'append', '--json'], { env: serverEnv, encoding: 'utf8' });
  const token = (JSON.parse(added.trim().split('\n').at(-1)!) as { token: string }).token;
  const toolEnv = { STOWAGE_TOKEN: token, STOWAGE_SERVER_FINGERPRINT: fingerprint, STOWAGE_CACHE_DIR: path.join(work, 'stowage-server-cache') };
  const clientPort = rttMs > 0 ? await startLatencyProxy(port, rttMs / 2) : port;
  const url = `https://127.0.0.1:${clientPort}/bench`;
  return {
    name: store === 's3' ? 'stowage-server-s3' : 'stowage-server',
    repeat: false,
    // On S3 the objects are in Ceph's memory: the size columns of that row are not measured (0).
    storage: store === 'fs' ? path.join(dataDir, 'repos', 'bench') : fs.mkdtempSync(path.join(work, 's3-not-measured-')),
    env: toolEnv,
    init: () => execFileSync(stowage, ['-r', url, 'init', '-q'], { env: { ...env, ...toolEnv }, stdio: 'ignore' }),
    backup: (_repo, d) => [stowage, '-r', url, 'backup', d],
    restore: (_repo, target) => [stowage, '-r', url, 'restore', 'latest', '--target', target],
  };
}

fs.mkdirSync(work, { recursive: true });
const data = path.join(work, 'data');
const leftovers = [...tools.map((t) => `${t.name}-repo`), 'data', 'stowage-cache', 'stowage-server-cache', 'restic-cache', 'borg-base', 'restore', 'spare', 'other']
  .map((d) => path.join(work, d))
  .filter((d) => fs.existsSync(d));
for (const d of leftovers) fs.rmSync(d, { recursive: true, force: true });
execFileSync('sync');
/**
 * This file system (ext4 without a journal) skips, on every file it
 * creates, each free inode of the block group that was freed in the last
 * 60 s, or in the last 6 minutes while the block of the inode table that
 * holds it is unwritten (fs/ext4/ialloc.c, recently_deleted), reading that
 * block first: perf put a quarter of a restore's CPU time there
 * (find_inode_bit → recently_deleted) 80 s after deleting a restored tree,
 * because the restore's own new inodes dirty those blocks again. Every tool
 * pays it while it lasts, which hides the differences between them, so the
 * run deletes nothing until the end and times no restore within 6 minutes of
 * the last deletion, its own or the previous run's (recorded in `deleted-at`).
 */
const DELETION_QUIET_MS = 370_000;
const deletedAtFile = path.join(work, 'deleted-at');
const previousDeletion = fs.existsSync(deletedAtFile) ? Number(fs.readFileSync(deletedAtFile, 'utf8')) || 0 : 0;
const deletedAt = Math.max(leftovers.length > 0 ? Date.now() : 0, previousDeletion);
const spare = path.join(work, 'spare');
fs.mkdirSync(spare);
console.log(`generating a ${sizeMib} MiB dataset in ${data} …`);
execFileSync('python3', [gen, '--out', data, '--size-mib', String(sizeMib)], { stdio: 'ignore' });
const digest = (dir: string): string => JSON.parse(execFileSync('python3', [gen, '--digest', dir], { encoding: 'utf8' })).digest;
const original = digest(data);

type Row = Record<string, number>;
const results: Record<string, Row> = Object.fromEntries(tools.map((t) => [t.name, {}]));
const repoOf = (t: Tool, round = 0): string => path.join(work, round === 0 ? `${t.name}-repo` : `${t.name}-repo-${round}`);
const initialRuns = new Map<string, Measure[]>();
const nochangeRuns = new Map<string, Measure[]>();
for (let round = 0; round < rounds; round++) {
  for (const t of roundOrder(tools, round)) {
    // Round 0's repository is kept for the incremental backup and the restores; the others only time a fresh start.
    const repo = repoOf(t, round);
    fs.rmSync(repo, { recursive: true, force: true });
    t.init(repo);
    execFileSync('sync');
    const first = measure(t.backup(repo, data), t.env);
    if (round === 0) results[t.name]!['size'] = du(t.storage ?? repo);
    const nochange = measure(t.backup(repo, data), t.env);
    initialRuns.set(t.name, [...(initialRuns.get(t.name) ?? []), first]);
    nochangeRuns.set(t.name, [...(nochangeRuns.get(t.name) ?? []), nochange]);
    // Moved aside, not deleted (see deletedAt); removed with the restored trees at the end.
    if (round > 0) fs.renameSync(repo, path.join(spare, `${t.name}-${round}`));
    console.log(`${t.name}: initial ${first.seconds.toFixed(2)} s, no-change ${nochange.seconds.toFixed(2)} s${rounds > 1 ? ` (round ${round + 1})` : ''}`);
  }
}
for (const t of tools) {
  const first = median(initialRuns.get(t.name)!);
  Object.assign(results[t.name]!, { initial: first.seconds, initialRss: first.maxRssMib, nochange: median(nochangeRuns.get(t.name)!).seconds });
}
execFileSync('python3', [gen, '--mutate', '--out', data], { stdio: 'ignore' });
const mutated = digest(data);
for (const t of tools) {
  const repo = repoOf(t);
  const before = du(t.storage ?? repo);
  execFileSync('sync');
  const inc = measure(t.backup(repo, data), t.env);
  results[t.name]!['incremental'] = inc.seconds;
  results[t.name]!['growth'] = du(t.storage ?? repo) - before;
  console.log(`${t.name}: incremental ${inc.seconds.toFixed(2)} s (+${(results[t.name]!['growth']! / 2 ** 20).toFixed(1)} MiB)`);
}
const restoreRuns = new Map<string, Measure[]>();
/** Each restore's time plus that of the `sync` after it: until the restored bytes are on the disk. */
const restoreDurableRuns = new Map<string, Measure[]>();
/**
 * Every restore starts with nothing in the page cache (as root): a restore
 * happens on a new host or long after the backup, and a tool that wrote its
 * packs around the cache (stowage does, see docs/operations.md) would
 * otherwise read them from the disk while the others read theirs from
 * memory. Without root the restores run warm, and the summary says so.
 */
function dropCaches(): boolean {
  execFileSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}
let coldRestores = true;
const settle = deletedAt + DELETION_QUIET_MS - Date.now();
if (settle > 0) {
  console.log(`waiting ${(settle / 1000).toFixed(0)} s: no restore within 6 minutes of deleting files (see deletedAt)`);
  await new Promise((r) => setTimeout(r, settle));
}
for (let round = 0; round < rounds; round++) {
  for (const t of roundOrder(tools, round)) {
    const target = path.join(work, 'restore', `${t.name}-${round}`);
    coldRestores = dropCaches() && coldRestores;
    const res = measure(t.restore(repoOf(t), target), t.env);
    restoreRuns.set(t.name, [...(restoreRuns.get(t.name) ?? []), res]);
    // A tool that exits with the restored bytes still in the page cache has not put them on the disk yet: the sync
    // that follows is timed too, and reported as a second figure (restic writes through the cache, stowage around it).
    const syncStart = performance.now();
    execFileSync('sync');
    const durable = res.seconds + (performance.now() - syncStart) / 1000;
    restoreDurableRuns.set(t.name, [...(restoreDurableRuns.get(t.name) ?? []), { ...res, seconds: durable }]);
    const ok = digest(path.join(target, data)) === mutated;
    if (!ok) results[t.name]!['verified'] = 0;
    console.log(`${t.name}: restore ${res.seconds.toFixed(2)} s (${durable.toFixed(2)} s with the sync after it), restored tree ${ok ? 'identical' : 'DIFFERENT'}${rounds > 1 ? ` (round ${round + 1})` : ''}`);
  }
}
for (const t of tools) {
  const res = median(restoreRuns.get(t.name)!);
  Object.assign(results[t.name]!, { restore: res.seconds, restoreRss: res.maxRssMib, restoreDurable: median(restoreDurableRuns.get(t.name)!).seconds });
}
void original;
// Restored trees and the spare repositories are removed only now (see deletedAt).
fs.rmSync(path.join(work, 'restore'), { recursive: true, force: true });
fs.rmSync(spare, { recursive: true, force: true });
const noteDeletion = (): void => fs.writeFileSync(deletedAtFile, String(Date.now()));
noteDeletion();

// Lifecycle: the same amount of other data, backed up then forgotten, leaves 50 % garbage to prune.
interface Lifecycle {
  prune: number;
  before: number;
  after: number;
  check: number;
  checked: number;
}
const lifecycle: Record<string, Lifecycle> = {};
if (!args.includes('--no-lifecycle')) {
  const other = path.join(work, 'other');
  fs.rmSync(other, { recursive: true, force: true });
  execFileSync('python3', [gen, '--out', other, '--size-mib', String(sizeMib), '--seed', '2'], { stdio: 'ignore' });
  const ops: Record<string, { forget(repo: string): void; prune(repo: string): string[]; check(repo: string): string[] }> = {
    stowage: {
      forget: (repo) => {
        const snaps = JSON.parse(execFileSync(stowage, ['-r', repo, '--json', 'snapshots', '--path', other], { env, encoding: 'utf8' })) as { id: string }[];
        execFileSync(stowage, ['-r', repo, 'forget', snaps[0]!.id], { env, stdio: 'ignore' });
      },
      prune: (repo) => [stowage, '-r', repo, 'prune'],
      check: (repo) => [stowage, '-r', repo, 'check', '--read-data'],
    },
    restic: {
      forget: (repo) => {
        const snaps = JSON.parse(execFileSync('restic', ['-r', repo, 'snapshots', '--json', '--path', other], { env, encoding: 'utf8' })) as { id: string }[];
        execFileSync('restic', ['-r', repo, 'forget', snaps[0]!.id, '-q'], { env, stdio: 'ignore' });
      },
      prune: (repo) => ['restic', '-r', repo, 'prune', '-q'],
      check: (repo) => ['restic', '-r', repo, 'check', '--read-data', '-q'],
    },
  };
  for (const t of tools) {
    const op = ops[t.name];
    if (!op) continue;
    const repo = path.join(work, `${t.name}-repo`);
    measure(t.backup(repo, other), t.env);
    op.forget(repo);
    const before = du(repo);
    const pr = measure(op.prune(repo), t.env);
    const after = du(repo);
    const ck = measure(op.check(repo), t.env);
    lifecycle[t.name] = { prune: pr.seconds, before, after, check: ck.seconds, checked: after };
    console.log(`${t.name}: prune ${pr.seconds.toFixed(2)} s (${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB), check --read-data ${ck.seconds.toFixed(2)} s`);
  }
  fs.rmSync(other, { recursive: true, force: true });
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
const rate = (s: number): string => `${((sizeMib / s)).toFixed(0)} MiB/s`;
console.log(
  `\nDataset: ${sizeMib} MiB from gen-dataset.py (seed 1), then --mutate. Times are wall seconds of one run${rounds > 1 ? `; initial, no-change and restore of ${tools.filter((t) => t.repeat).map((t) => t.name).join(', ')} are the median of ${rounds} rounds` : ''}. Restores start ${coldRestores ? 'with an empty page cache (repositories read from disk)' : 'warm (not root: the page cache could not be dropped)'}.\n`,
);
const cols = ['initial backup', 'throughput', 'peak RSS', 'repo size', 'no-change', 'incremental', 'growth', 'restore', 'restore + sync', 'restore RSS'];
console.log(['tool', ...cols].join(' | '));
for (const [name, r] of Object.entries(results)) {
  console.log(
    [name, `${r['initial']!.toFixed(2)} s`, rate(r['initial']!), `${r['initialRss']!.toFixed(0)} MiB`, mib(r['size']!), `${r['nochange']!.toFixed(2)} s`, `${r['incremental']!.toFixed(2)} s`, mib(r['growth']!), `${r['restore']!.toFixed(2)} s`, `${r['restoreDurable']!.toFixed(2)} s`, `${r['restoreRss']!.toFixed(0)} MiB`].join(' | '),
  );
}
const s = results['stowage']!;
const viaServer = results['stowage-server'];
if (viaServer) {
  console.log(`\nThrough the server on loopback${rttMs > 0 ? ` with ${rttMs} ms added round trip` : ''} (local / server time; that is, server throughput as a share of local):`);
  console.log(`  initial backup: ${(s['initial']! / viaServer['initial']!).toFixed(2)} (goal >= 0.9)`);
  console.log(`  incremental backup: ${(s['incremental']! / viaServer['incremental']!).toFixed(2)}`);
  console.log(`  restore: ${(s['restore']! / viaServer['restore']!).toFixed(2)}`);
}
const viaS3 = results['stowage-server-s3'];
if (viaServer && viaS3) {
  console.log('\nThrough the server onto S3 (radosgw, memstore) against onto its filesystem store (fs time / S3 time):');
  console.log(`  initial backup: ${(viaServer['initial']! / viaS3['initial']!).toFixed(2)} (${(sizeMib / viaS3['initial']!).toFixed(0)} vs ${(sizeMib / viaServer['initial']!).toFixed(0)} MiB/s)`);
  console.log(`  restore: ${(viaServer['restore']! / viaS3['restore']!).toFixed(2)}`);
}
const others = Object.entries(results).filter(([n]) => !n.startsWith('stowage'));
void viaS3;
if (others.length > 0) {
  console.log('\nRatios (stowage / other; below 1 is better for stowage):');
  const fastest = Math.min(...others.map(([, r]) => r['initial']!));
  console.log(`  initial backup vs the faster of ${others.map(([n]) => n).join(' and ')}: ${(s['initial']! / fastest).toFixed(2)} (goal <= 0.8)`);
  const r = results['restic'];
  if (r) {
    console.log(`  no-change backup vs restic: ${(s['nochange']! / r['nochange']!).toFixed(2)} (goal <= 1.0)`);
    console.log(`  restore vs restic: ${(s['restore']! / r['restore']!).toFixed(2)} (goal <= 0.8)`);
    console.log(`  restore until on disk (restore, then sync) vs restic: ${(s['restoreDurable']! / r['restoreDurable']!).toFixed(2)}`);
    console.log(`  repository size vs restic: ${(s['size']! / r['size']!).toFixed(3)} (goal <= 1.01)`);
    console.log(`  growth after --mutate vs restic: ${(s['growth']! / r['growth']!).toFixed(2)} (goal <= 0.5)`);
  }
  const b = results['borg'];
  if (b) console.log(`  growth after --mutate vs borg: ${(s['growth']! / b['growth']!).toFixed(2)}`);
}
if (Object.keys(lifecycle).length > 0) {
  console.log('\nLifecycle (a second dataset of the same size backed up, then forgotten: 50 % garbage):');
  console.log('tool | prune | repository before → after | check --read-data | read rate');
  for (const [name, l] of Object.entries(lifecycle)) {
    console.log([name, `${l.prune.toFixed(2)} s`, `${mib(l.before)} → ${mib(l.after)}`, `${l.check.toFixed(2)} s`, `${(l.checked / 2 ** 20 / l.check).toFixed(0)} MiB/s`].join(' | '));
  }
  const sl = lifecycle['stowage'];
  const rl = lifecycle['restic'];
  if (sl && rl) console.log(`  prune vs restic: ${(sl.prune / rl.prune).toFixed(2)}; check --read-data vs restic: ${(sl.check / rl.check).toFixed(2)}`);
}
fs.writeFileSync(path.join(work, 'results.json'), JSON.stringify({ sizeMib, rttMs, results, lifecycle }, null, 2));
if (!args.includes('--keep')) {
  for (const t of tools) fs.rmSync(t.storage ?? path.join(work, `${t.name}-repo`), { recursive: true, force: true });
  fs.rmSync(data, { recursive: true, force: true });
}
noteDeletion();
await Promise.all(servers.map((s) => s.stop()));
process.exit(0);
