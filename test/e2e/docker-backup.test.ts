/**
 * Container-aware backup against a real Docker Engine that the test starts
 * (its own data root and socket; never the user's Docker).
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerSpec } from '../../core/docker/spec.ts';
import type { DockerState } from '../../core/docker/state.ts';
import { stowage, testEnv } from '../helpers/cli.ts';
import { type Daemon, importBusybox, requireDocker, startDaemon } from '../helpers/docker.ts';
import { compareTrees } from '../helpers/tree-compare.ts';
import { freePort } from '../helpers/server.ts';
import { tempDir } from '../helpers/tmp.ts';

interface App {
  readonly d: Daemon;
  readonly work: string;
  readonly env: NodeJS.ProcessEnv;
  readonly repo: string;
  readonly bindDir: string;
  /** Host ports web publishes (random: several apps run at once). */
  readonly ports: readonly [number, number];
}

/** The two-container app of the issue: db with a named volume, web with a bind mount, on a custom network. */
async function startApp(t: ExecutionContext): Promise<App> {
  const d = await startDaemon(t);
  const work = await tempDir(t);
  await importBusybox(d, 'test/app:1', ['ENV IMAGE_VAR=1', 'LABEL image.label=yes', 'EXPOSE 9000', 'WORKDIR /', 'CMD ["sleep","3600"]']);
  await d.docker('network', 'create', '--driver', 'bridge', '--subnet', '10.77.0.0/24', '--label', 'owner=test', 'appnet');
  await d.docker('volume', 'create', '--label', 'tier=db', '--label', 'com.docker.compose.config-hash=abc123', 'dbdata');
  const script = [
    'mkdir -p /var/lib/db/sub /var/lib/db/private',
    'echo primary > /var/lib/db/role.txt',
    'dd if=/dev/urandom of=/var/lib/db/sub/blob.bin bs=1k count=300 2>/dev/null',
    'ln -s sub/blob.bin /var/lib/db/link',
    'chmod 700 /var/lib/db/private && echo secret > /var/lib/db/private/key && chmod 600 /var/lib/db/private/key',
    'echo owned > /var/lib/db/app.txt && chown 1000:1000 /var/lib/db/app.txt',
    'touch -d "2024-02-29 12:34:56" /var/lib/db/role.txt',
    'touch /var/lib/db/ready',
    'exec sleep 3600',
  ].join(' && ');
  await d.docker(
    'run', '-d', '--name', 'db',
    '--network', 'appnet', '--network-alias', 'database', '--ip', '10.77.0.10',
    '-v', 'dbdata:/var/lib/db',
    '--restart', 'on-failure:3',
    '-e', 'DB_MODE=primary',
    '--label', 'com.docker.compose.project=shop', '--label', 'com.docker.compose.service=db',
    '--health-cmd', 'test -f /var/lib/db/ready', '--health-interval', '1s', '--health-retries', '3',
    '--cap-add', 'NET_ADMIN', '--ulimit', 'nofile=1024:2048', '--tmpfs', '/run:size=1m',
    '--dns', '9.9.9.9', '--add-host', 'extra.local:10.0.0.1', '--memory', '64m',
    '--workdir', '/var/lib/db', '--log-opt', 'max-size=1m',
    'test/app:1', 'sh', '-c', script,
  );
  const ports = [await freePort(), await freePort()] as const;
  const bindDir = path.join(work, 'site');
  fs.mkdirSync(bindDir);
  fs.writeFileSync(path.join(bindDir, 'index.html'), '<h1>shop</h1>');
  await d.docker(
    'run', '-d', '--name', 'web',
    '--network', 'appnet', '--network-alias', 'www',
    '-p', `${ports[0]}:80`, '-p', `127.0.0.1:${ports[1]}:81/udp`,
    '-v', `${bindDir}:/srv:ro`,
    '--restart', 'unless-stopped',
    '--label', 'com.docker.compose.project=shop', '--label', 'com.docker.compose.service=web',
    '--label', 'com.docker.compose.depends_on=db:service_started:false',
    '-e', 'IMAGE_VAR=overridden',
    'test/app:1',
  );
  // The db has written its files once it reports ready.
  for (let i = 0; i < 100 && !(await d.docker('exec', 'db', 'sh', '-c', 'test -f /var/lib/db/ready && echo ok').catch(() => '')).includes('ok'); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const repo = path.join(work, 'repo');
  const env = testEnv({ DOCKER_HOST: d.host, STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  const init = await stowage(['-r', repo, 'init'], env);
  if (init.code !== 0) throw new Error(init.stderr);
  return { d, work, env, repo, bindDir, ports };
}

async function lastDockerState(app: App): Promise<{ id: string; docker: DockerState; errors?: unknown[] }> {
  const r = await stowage(['-r', app.repo, '--json', 'snapshots'], app.env);
  const snaps = JSON.parse(r.stdout) as { id: string; docker: DockerState; errors?: unknown[] }[];
  return snaps.at(-1)!;
}

const spec = (s: DockerState, name: string): ContainerSpec => s.containers.find((c) => c.name === name)!;

test('the two-container app is captured field by field, without image defaults or runtime state', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startApp(t);
  const r = await stowage(['-r', app.repo, '--json', 'backup', '--containers', 'all', '--volume-mode', 'api'], app.env);
  t.is(r.code, 0, r.stderr + r.stdout);
  const { docker } = await lastDockerState(app);
  const db = spec(docker, 'db');
  t.deepEqual(db.config['Env'], ['DB_MODE=primary'], 'the image-set IMAGE_VAR is not repeated');
  t.deepEqual(db.config['Labels'], { 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'db' });
  t.is(db.config['ExposedPorts'], undefined, "the image's EXPOSE is not repeated");
  t.is(db.config['Hostname'], undefined, 'the generated hostname is dropped');
  t.is(db.config['WorkingDir'], '/var/lib/db');
  t.deepEqual(db.config['Healthcheck'], { Test: ['CMD-SHELL', 'test -f /var/lib/db/ready'], Interval: 1_000_000_000, Retries: 3 });
  t.is((db.config['Cmd'] as string[])[0], 'sh');
  const h = db.hostConfig;
  t.deepEqual(h['RestartPolicy'], { Name: 'on-failure', MaximumRetryCount: 3 });
  t.deepEqual(h['CapAdd'], ['CAP_NET_ADMIN'], 'as the daemon spells it; create accepts it');
  t.deepEqual(h['Ulimits'], [{ Name: 'nofile', Soft: 1024, Hard: 2048 }]);
  t.deepEqual(h['Tmpfs'], { '/run': 'size=1m' });
  t.deepEqual(h['Dns'], ['9.9.9.9']);
  t.deepEqual(h['ExtraHosts'], ['extra.local:10.0.0.1']);
  t.is(h['Memory'], 64 * 1024 * 1024);
  t.deepEqual(h['LogConfig'], { Type: 'json-file', Config: { 'max-size': '1m' } });
  t.deepEqual(h['Binds'], ['dbdata:/var/lib/db']);
  t.is(h['NetworkMode'], 'appnet');
  for (const k of ['MaskedPaths', 'ReadonlyPaths', 'ConsoleSize', 'Runtime', 'ShmSize']) t.false(k in h, `${k} is a daemon default`);
  t.deepEqual(db.networks, [{ name: 'appnet', aliases: ['database'], ipv4Address: '10.77.0.10', links: [] }]);
  t.true(db.running);
  t.true(db.mounts.some((m) => m.type === 'volume' && m.source === 'dbdata' && m.target === '/var/lib/db' && !m.readOnly));

  const web = spec(docker, 'web');
  t.deepEqual(web.config['Env'], ['IMAGE_VAR=overridden'], 'an overridden image value is kept');
  t.deepEqual(web.hostConfig['PortBindings'], { '80/tcp': [{ HostIp: '', HostPort: String(app.ports[0]) }], '81/udp': [{ HostIp: '127.0.0.1', HostPort: String(app.ports[1]) }] });
  t.deepEqual(web.hostConfig['RestartPolicy'], { Name: 'unless-stopped', MaximumRetryCount: 0 });
  t.deepEqual(web.hostConfig['Binds'], [`${app.bindDir}:/srv:ro`]);
  t.is((web.config['Labels'] as Record<string, string>)['com.docker.compose.depends_on'], 'db:service_started:false');
  t.is(web.config['Cmd'], undefined, "the image's CMD is not repeated");

  const net = docker.networks.find((n) => n.name === 'appnet')!;
  t.is(net.driver, 'bridge');
  t.deepEqual(net.labels, { owner: 'test' });
  t.is(net.ipam.config[0]?.['Subnet'], '10.77.0.0/24');
  const vol = docker.volumes.find((v) => v.name === 'dbdata')!;
  t.deepEqual(vol.labels, { tier: 'db' }, "compose's config-hash is dropped from volume labels");
  t.is(vol.mode, 'api');
  t.deepEqual(docker.images.map((i) => i.tags), [['test/app:1']]);
  t.deepEqual(docker.binds.map((b) => b.source), [app.bindDir]);
});

for (const mode of ['api', 'direct'] as const) {
  test(`volume contents in the snapshot equal what the container wrote (${mode} mode)`, async (t) => {
    if (!requireDocker(t)) return;
    const app = await startApp(t);
    const r = await stowage(['-r', app.repo, 'backup', '--containers', 'db', '--volume-mode', mode], app.env);
    t.is(r.code, 0, r.stderr + r.stdout);
    t.regex(r.stdout, mode === 'api' ? /dbdata: read through the Docker API/ : /dbdata: read from disk \(direct mode\)/);
    const target = path.join(app.work, 'out');
    const res = await stowage(['-r', app.repo, 'restore', 'latest', '--path', '/volumes/dbdata', '--target', target], app.env);
    t.is(res.code, 0, res.stderr);
    const mountpoint = (await app.d.docker('volume', 'inspect', '-f', '{{.Mountpoint}}', 'dbdata')).trim();
    t.deepEqual(compareTrees(mountpoint, target, { mtimeSeconds: mode === 'api' }), []);
    t.is(fs.readlinkSync(path.join(target, 'link')), 'sub/blob.bin');
    t.is(fs.statSync(path.join(target, 'app.txt')).uid, 1000);
    t.is(fs.statSync(path.join(target, 'private')).mode & 0o777, 0o700);
  });
}
