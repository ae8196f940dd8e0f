/**
 * Blank-host restore between two real Docker daemons started by the test: a
 * source host and a truly blank one (no images, volumes or networks).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerSpec } from '../../core/docker/spec.ts';
import type { DockerState } from '../../core/docker/state.ts';
import { STOWAGE, stowage } from '../helpers/cli.ts';
import { type App, startApp } from '../helpers/docker-app.ts';
import { type Daemon, importBusybox, requireDocker, startDaemon } from '../helpers/docker.ts';
import { compareTrees } from '../helpers/tree-compare.ts';
import { tempDir } from '../helpers/tmp.ts';

/** The app backed up from its source host, whose containers are then stopped (as on a dead host), and a blank host. */
async function backedUpApp(t: ExecutionContext): Promise<{ app: App; blank: Daemon; blankEnv: NodeJS.ProcessEnv }> {
  const app = await startApp(t);
  const r = await stowage(['-r', app.repo, 'backup', '--containers', 'all'], app.env);
  if (r.code !== 0) throw new Error(r.stderr + r.stdout);
  await app.d.docker('stop', '-t', '1', 'db', 'web');
  const blank = await startDaemon(t);
  return { app, blank, blankEnv: { ...app.env, DOCKER_HOST: blank.host } };
}

async function specs(env: NodeJS.ProcessEnv, work: string): Promise<DockerState> {
  const repo = path.join(await fs.promises.mkdtemp(path.join(work, 'capture-')), 'repo');
  await stowage(['-r', repo, 'init'], env);
  const r = await stowage(['-r', repo, 'backup', '--containers', 'all'], env);
  if (r.code !== 0) throw new Error(r.stderr + r.stdout);
  return (JSON.parse((await stowage(['-r', repo, '--json', 'snapshots'], env)).stdout) as { docker: DockerState }[]).at(-1)!.docker;
}

/** A spec without what legitimately differs between two hosts' captures. */
const comparable = (s: ContainerSpec): unknown => ({ ...s, running: undefined });

test('the app comes back on a blank host: images from the repository, volume data identical, every spec field, web after a healthy db', async (t) => {
  if (!requireDocker(t)) return;
  const { app, blank, blankEnv } = await backedUpApp(t);
  t.is((await blank.docker('images', '-q')).trim(), '', 'the target starts blank');
  const dry = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host', '--dry-run'], blankEnv);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout, /image\s+load\s+test\/app:1/);
  t.is((await blank.docker('volume', 'ls', '-q')).trim(), '', 'a dry run changes nothing');

  const r = await stowage(['-r', app.repo, '--json', 'restore', 'latest', '--to-host'], blankEnv);
  t.is(r.code, 0, r.stderr + r.stdout);
  const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { steps: { step: string; ms: number }[]; failed: unknown[] };
  t.deepEqual(report.failed, []);
  t.log(`steps: ${report.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);

  const [srcMount, dstMount] = await Promise.all([app.d, blank].map(async (d) => (await d.docker('volume', 'inspect', '-f', '{{.Mountpoint}}', 'dbdata')).trim()));
  t.deepEqual(compareTrees(srcMount!, dstMount!, { mtimeSeconds: true }), []);

  const before = await specs(app.env, app.work);
  const after = await specs(blankEnv, app.work);
  for (const name of ['db', 'web']) {
    t.deepEqual(comparable(after.containers.find((c) => c.name === name)!), comparable(before.containers.find((c) => c.name === name)!), `${name}: every captured field matches`);
  }
  t.deepEqual(after.networks, before.networks, 'the network: driver, subnet, options, labels');
  t.deepEqual(after.volumes.map((v) => ({ ...v, directRoot: undefined })), before.volumes.map((v) => ({ ...v, directRoot: undefined })), 'the volume: driver, options, labels');
  const state = async (name: string): Promise<{ running: boolean; health: string; started: string }> => {
    const [running, health, started] = (await blank.docker('inspect', '-f', '{{.State.Running}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.StartedAt}}', name)).trim().split('|');
    return { running: running === 'true', health: health ?? '', started: started ?? '' };
  };
  const db = await state('db');
  const web = await state('web');
  t.true(db.running && web.running, 'both run');
  t.is(db.health, 'healthy');
  t.true(web.started > db.started, `web (${web.started}) started after db (${db.started})`);
  t.regex(await blank.docker('images', '--format', '{{.Repository}}:{{.Tag}}'), /test\/app:1/);
});

test("a volume whose mount path has files in the image gets exactly the snapshot's contents", async (t) => {
  if (!requireDocker(t)) return;
  const src = await startDaemon(t);
  const work = await tempDir(t);
  const rootfsExtra = path.join(src.dir, 'rootfs', 'seed');
  await importBusybox(src, 'test/plain:1');
  fs.mkdirSync(rootfsExtra, { recursive: true });
  fs.writeFileSync(path.join(rootfsExtra, 'from-image'), 'image file');
  await importBusybox(src, 'test/seeded:1', ['CMD ["sleep","3600"]']);
  // Docker copies the image's /seed into the empty volume on first use; the app then replaces it.
  await src.docker('run', '-d', '--name', 'app', '-v', 'seed:/seed', 'test/seeded:1', 'sh', '-c', 'rm /seed/from-image; echo mine > /seed/own; exec sleep 3600');
  await new Promise((r) => setTimeout(r, 500));
  const repo = path.join(work, 'repo');
  const env = { ...(await import('../helpers/cli.ts')).testEnv({ DOCKER_HOST: src.host, STOWAGE_CACHE_DIR: path.join(work, 'cache') }) };
  t.is((await stowage(['-r', repo, 'init'], env)).code, 0);
  t.is((await stowage(['-r', repo, 'backup', '--containers', 'app'], env)).code, 0);
  await src.docker('stop', '-t', '1', 'app');
  const blank = await startDaemon(t);
  const r = await stowage(['-r', repo, 'restore', 'latest', '--to-host'], { ...env, DOCKER_HOST: blank.host });
  t.is(r.code, 0, r.stderr + r.stdout);
  t.is((await blank.docker('exec', 'app', 'ls', '/seed')).trim(), 'own', 'no file of the image is mixed into the data');
});

test('conflicts: fail changes nothing, skip keeps what is there, replace puts the snapshot in its place', async (t) => {
  if (!requireDocker(t)) return;
  const { app, blank, blankEnv } = await backedUpApp(t);
  await importBusybox(blank, 'other/img:1', ['CMD ["sleep","3600"]']);
  await blank.docker('volume', 'create', 'dbdata');
  await blank.docker('run', '-d', '--name', 'db', '-v', 'dbdata:/x', 'other/img:1', 'sh', '-c', 'echo theirs > /x/theirs; exec sleep 3600');
  const fail = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host'], blankEnv);
  t.is(fail.code, 2, fail.stdout);
  t.regex(fail.stdout, /a container named db already exists/);
  t.is((await blank.docker('network', 'ls', '--filter', 'name=appnet', '-q')).trim(), '', 'fail changed nothing');

  const skip = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host', '--on-conflict', 'skip'], blankEnv);
  t.is(skip.code, 0, skip.stderr + skip.stdout);
  t.is((await blank.docker('inspect', '-f', '{{.Config.Image}}', 'db')).trim(), 'other/img:1', 'the existing db is kept');
  t.regex(await blank.docker('exec', 'db', 'ls', '/x'), /theirs/);

  const replace = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host', '--on-conflict', 'replace'], blankEnv);
  t.is(replace.code, 0, replace.stderr + replace.stdout);
  t.is((await blank.docker('inspect', '-f', '{{.Config.Image}}', 'db')).trim(), 'test/app:1');
  t.is((await blank.docker('exec', 'db', 'cat', '/var/lib/db/role.txt')).trim(), 'primary');
});

test('a restore killed at any step and run again ends as an uninterrupted one', async (t) => {
  if (!requireDocker(t)) return;
  const { app, blank, blankEnv } = await backedUpApp(t);
  const full = Date.now();
  const first = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host'], blankEnv);
  t.is(first.code, 0, first.stderr + first.stdout);
  const duration = Date.now() - full;
  const reference = (await specs(blankEnv, app.work)).containers.map(comparable);
  for (const fraction of [0.3, 0.55, 0.8]) {
    // Back to blank.
    await blank.docker('rm', '-f', 'db', 'web');
    await blank.docker('volume', 'rm', 'dbdata');
    await blank.docker('network', 'rm', 'appnet');
    await blank.docker('rmi', '-f', 'test/app:1');
    const delay = Math.floor(duration * fraction);
    await new Promise<void>((resolve) => {
      const child = spawn(STOWAGE, ['-r', app.repo, 'restore', 'latest', '--to-host'], { env: blankEnv, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), delay);
      child.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const again = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host'], blankEnv);
    t.is(again.code, 0, `killed after ${delay} ms, then: ${again.stderr}${again.stdout}`);
    t.deepEqual((await specs(blankEnv, app.work)).containers.map(comparable), reference, `killed after ${delay} ms`);
    t.is((await blank.docker('exec', 'db', 'cat', '/var/lib/db/role.txt')).trim(), 'primary');
    t.is((await blank.docker('ps', '-a', '--filter', 'label=stowage.helper', '-q')).trim(), '', 'no helper container is left');
  }
});

test("a volume's files restore to a directory or into an existing volume; ports can be mapped on the new host", async (t) => {
  if (!requireDocker(t)) return;
  const { app, blank, blankEnv } = await backedUpApp(t);
  const target = path.join(app.work, 'files');
  const files = await stowage(['-r', app.repo, 'restore', 'latest', '--volume', 'dbdata', '--target', target], app.env);
  t.is(files.code, 0, files.stderr);
  t.is(fs.readFileSync(path.join(target, 'role.txt'), 'utf8'), 'primary\n');

  await app.d.docker('volume', 'create', 'copy');
  const into = await stowage(['-r', app.repo, 'restore', 'latest', '--volume', 'dbdata', '--into-volume', 'copy'], app.env);
  t.is(into.code, 0, into.stderr);
  t.is((await app.d.docker('run', '--rm', '-v', 'copy:/c', 'test/app:1', 'cat', '/c/role.txt')).trim(), 'primary');
  const missing = await stowage(['-r', app.repo, 'restore', 'latest', '--volume', 'dbdata', '--into-volume', 'nosuch'], app.env);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /there is no volume nosuch/);

  const newPort = String(app.ports[0] + 1);
  const r = await stowage(['-r', app.repo, 'restore', 'latest', '--to-host', '--map-port', `${app.ports[0]}=${newPort}`], blankEnv);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.is((await blank.docker('inspect', '-f', '{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}}', 'web')).trim(), newPort);
});
