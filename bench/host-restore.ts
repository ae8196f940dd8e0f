/**
 * `npm run bench:host`: the wall time of a blank-host restore, split by
 * step. A source Docker daemon runs one container whose volume holds a
 * generated dataset (1 GiB by default); it is backed up, stopped, and
 * restored onto a second, blank daemon. Options: --size-mib N, --work DIR.
 * Needs dockerd and busybox-static (see .ci/run).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { genDataset, opt, root } from './options.ts';
import { importBusybox, launchDaemon } from '../test/helpers/docker.ts';

const sizeMib = Number(opt('--size-mib', '1024'));
const work = path.resolve(opt('--work', '/tmp/stowage-bench-host'));
const gen = genDataset();
const stowage = path.join(root, 'cli/stowage');

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(path.join(work, 's'), { recursive: true });
fs.mkdirSync(path.join(work, 'b'), { recursive: true });
const source = await launchDaemon(path.join(work, 's'));
const blank = await launchDaemon(path.join(work, 'b'));
try {
  await importBusybox(source, 'bench/app:1', ['CMD ["sleep","3600"]']);
  await source.docker('volume', 'create', 'data');
  const mount = (await source.docker('volume', 'inspect', '-f', '{{.Mountpoint}}', 'data')).trim();
  console.log(`generating ${sizeMib} MiB into the volume …`);
  execFileSync('python3', [gen, '--out', mount, '--size-mib', String(sizeMib)], { stdio: 'ignore' });
  await source.docker('run', '-d', '--name', 'app', '-v', 'data:/data', '--health-cmd', 'test -d /data', '--health-interval', '1s', 'bench/app:1');
  const env = { ...process.env, STOWAGE_PASSWORD: 'bench passphrase', STOWAGE_NODE: process.execPath, STOWAGE_CACHE_DIR: path.join(work, 'cache') };
  const repo = path.join(work, 'repo');
  execFileSync(stowage, ['-r', repo, 'init', '-q'], { env, stdio: 'ignore' });
  let t0 = Date.now();
  execFileSync(stowage, ['-r', repo, 'backup', '--containers', 'all', '-q'], { env: { ...env, DOCKER_HOST: source.host }, stdio: 'ignore' });
  const backupS = (Date.now() - t0) / 1000;
  await source.docker('stop', '-t', '1', 'app');
  t0 = Date.now();
  const out = execFileSync(stowage, ['-r', repo, '--json', 'restore', 'latest', '--to-host'], { env: { ...env, DOCKER_HOST: blank.host }, encoding: 'utf8' });
  const wall = (Date.now() - t0) / 1000;
  const report = JSON.parse(out.trim().split('\n').at(-1)!) as { steps: { step: string; ms: number }[]; failed: unknown[] };
  console.log(`\nBlank-host restore of one container with a ${sizeMib} MiB volume (backup took ${backupS.toFixed(1)} s):`);
  console.log('step | seconds');
  for (const s of report.steps) console.log(`${s.step} | ${(s.ms / 1000).toFixed(2)}`);
  const stepsTotal = report.steps.reduce((n, s) => n + s.ms, 0) / 1000;
  console.log(`(start-up, opening the repository, planning) | ${(wall - stepsTotal).toFixed(2)}`);
  console.log(`total wall | ${wall.toFixed(2)}  (${(sizeMib / wall).toFixed(0)} MiB/s)`);
  if (report.failed.length > 0) console.log(`failed: ${JSON.stringify(report.failed)}`);
  const dst = (await blank.docker('volume', 'inspect', '-f', '{{.Mountpoint}}', 'data')).trim();
  const digest = (dir: string): string => JSON.parse(execFileSync('python3', [gen, '--digest', dir], { encoding: 'utf8' })).digest;
  console.log(`volume contents ${digest(mount) === digest(dst) ? 'identical' : 'DIFFERENT'}`);
} finally {
  await source.stop();
  await blank.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
process.exit(0);
