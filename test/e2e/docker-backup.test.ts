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
import { type App, startApp } from '../helpers/docker-app.ts';
import { importBusybox, requireDocker, startDaemon } from '../helpers/docker.ts';
import { compareTrees } from '../helpers/tree-compare.ts';
import { freePort, startTestServer } from '../helpers/server.ts';
import { tempDir } from '../helpers/tmp.ts';

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
  t.regex(docker.images[0]!.path ?? '', /^\/images\/[0-9a-f]{64}$/, 'an image no registry knows is stored');
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

/** A daemon with one container "worker" writing into volume "work", labelled as given. */
async function startWorker(t: ExecutionContext, labels: Record<string, string>): Promise<App & { startedAt(): Promise<string> }> {
  const d = await startDaemon(t);
  const work = await tempDir(t);
  await importBusybox(d, 'test/app:1', ['CMD ["sleep","3600"]']);
  await d.docker(
    'run', '-d', '--name', 'worker', '-v', 'work:/data',
    ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    // Exits on SIGTERM (within a second), as a well-behaved service does: docker stop need not wait for its kill.
    'test/app:1', 'sh', '-c', 'echo state > /data/state; trap "exit 0" TERM; while :; do sleep 1; done',
  );
  const repo = path.join(work, 'repo');
  const env = testEnv({ DOCKER_HOST: d.host, STOWAGE_CACHE_DIR: path.join(work, 'cache') });
  t.is((await stowage(['-r', repo, 'init'], env)).code, 0);
  const startedAt = async (): Promise<string> => (await d.docker('inspect', '-f', '{{.State.Running}} {{.State.StartedAt}}', 'worker')).trim();
  return { d, work, env, repo, bindDir: '', ports: [0, 0], startedAt };
}

test('stowage.stop: the container is stopped for its read and running again after; pre and post run around the read', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startWorker(t, {
    'stowage.stop': 'true',
    'stowage.pre': 'echo pre >> /data/hooks.log',
    'stowage.post': 'echo post >> /data/hooks.log',
  });
  const before = await app.startedAt();
  const r = await stowage(['-r', app.repo, 'backup', '--containers', 'worker', '--volume-mode', 'api'], app.env);
  t.is(r.code, 0, r.stderr + r.stdout);
  const after = await app.startedAt();
  t.true(after.startsWith('true '), `running again: ${after}`);
  t.not(after, before, 'it was stopped and started');
  const target = path.join(app.work, 'out');
  t.is((await stowage(['-r', app.repo, 'restore', 'latest', '--path', '/volumes/work', '--target', target], app.env)).code, 0);
  t.is(fs.readFileSync(path.join(target, 'hooks.log'), 'utf8'), 'pre\n', 'pre ran before the read, post after it');
  t.is((await app.d.docker('exec', 'worker', 'cat', '/data/hooks.log')).trim(), 'pre\npost');
});

test('stowage.stop: the container is started again when the backup fails in the middle', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startWorker(t, { 'stowage.stop': 'true' });
  await app.d.docker('exec', 'worker', 'sh', '-c', 'dd if=/dev/urandom of=/data/big bs=1M count=24 2>/dev/null');
  // A real server whose quota runs out during the upload.
  const server = await startTestServer(t);
  const url = `${server.url}/w`;
  const env = { ...app.env, STOWAGE_TOKEN: await server.token('w', 'append'), STOWAGE_SERVER_FINGERPRINT: server.fingerprint, STOWAGE_CONFIG_DIR: path.join(app.work, 'cfg') };
  t.is((await stowage(['-r', url, 'init'], env)).code, 0);
  await server.setQuota('w', 8 << 20);
  const r = await stowage(['-r', url, 'backup', '--containers', 'worker', '--volume-mode', 'api'], env);
  t.is(r.code, 15, r.stderr);
  t.regex(r.stderr, /quota/);
  t.true((await app.startedAt()).startsWith('true '), 'running again after the failed backup');
});

test('a failing pre command leaves that container out, or with on-error=continue backs it up anyway; both are partial', async (t) => {
  if (!requireDocker(t)) return;
  const strict = await startWorker(t, { 'stowage.pre': 'echo dump failed >&2; exit 4' });
  const r1 = await stowage(['-r', strict.repo, '--json', 'backup', '--containers', 'worker', '--volume-mode', 'api'], strict.env);
  t.is(r1.code, 3, r1.stderr);
  const s1 = JSON.parse(r1.stdout.trim().split('\n').at(-1)!);
  t.regex(s1.errors[0].message, /pre command of worker failed \(exited with 4: dump failed\); its data was not backed up/);
  t.is((await stowage(['-r', strict.repo, 'ls', 'latest', '/volumes'], strict.env)).code, 2, 'no volume data in the snapshot');

  const lenient = await startWorker(t, { 'stowage.pre': 'exit 4', 'stowage.pre.on-error': 'continue' });
  const r2 = await stowage(['-r', lenient.repo, 'backup', '--containers', 'worker', '--volume-mode', 'api'], lenient.env);
  t.is(r2.code, 3);
  t.regex((await stowage(['-r', lenient.repo, 'ls', 'latest', '/volumes/work'], lenient.env)).stdout, /state/);
});

test('a second night with one changed file adds little; an unreachable daemon and an unknown container are clear errors', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startWorker(t, {});
  await app.d.docker('exec', 'worker', 'sh', '-c', 'dd if=/dev/urandom of=/data/big bs=1M count=20 2>/dev/null');
  const first = await stowage(['-r', app.repo, '--json', 'backup', '--containers', 'all'], app.env);
  t.is(first.code, 0, first.stderr);
  await app.d.docker('exec', 'worker', 'sh', '-c', 'echo changed > /data/state');
  for (const mode of ['direct', 'api']) {
    const second = await stowage(['-r', app.repo, '--json', 'backup', '--containers', 'all', '--volume-mode', mode], app.env);
    t.is(second.code, 0, second.stderr);
    const added = JSON.parse(second.stdout.trim().split('\n').at(-1)!).stats.bytesUploaded as number;
    t.log(`second night (${mode} mode): ${added} bytes uploaded`);
    t.true(added < 64 * 1024, `${mode}: ${added} bytes`);
  }
  const gone = await stowage(['-r', app.repo, 'backup', '--containers', 'nosuch'], app.env);
  t.is(gone.code, 2);
  t.regex(gone.stderr, /no container named nosuch/);
  const down = await stowage(['-r', app.repo, 'backup', '--containers', 'all'], { ...app.env, DOCKER_HOST: `unix://${app.work}/none.sock` });
  t.is(down.code, 17);
  t.regex(down.stderr, /cannot reach the Docker Engine at unix:\/\/.*none\.sock/);
});

test('a container removed during the backup makes the snapshot partial and says what is missing', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startWorker(t, {});
  // "a-slow" is read first; its pre command waits until the test has removed "worker".
  await app.d.docker('run', '-d', '--name', 'a-slow', '-v', 'slow:/data', '--label', 'stowage.pre=touch /data/started; while [ ! -f /data/go ]; do sleep 0.1; done', 'test/app:1');
  const run = stowage(['-r', app.repo, '--json', 'backup', '--containers', 'all', '--volume-mode', 'api'], app.env);
  while (!(await app.d.docker('exec', 'a-slow', 'sh', '-c', 'test -f /data/started && echo yes').catch(() => '')).includes('yes')) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await app.d.docker('rm', '-f', 'worker');
  await app.d.docker('exec', 'a-slow', 'touch', '/data/go');
  const r = await run;
  t.is(r.code, 3, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  t.true(summary.errors.some((e: { path: string; message: string }) => e.path === '/volumes/work' && /worker was removed during the backup/.test(e.message)), JSON.stringify(summary.errors));
});

test('stowage.stop stops the containers that share its namespaces first and starts them after it', async (t) => {
  if (!requireDocker(t)) return;
  const app = await startWorker(t, { 'stowage.stop': 'true' });
  await app.d.docker('run', '-d', '--name', 'side', '--network', 'container:worker', 'test/app:1', 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done');
  const started = async (name: string): Promise<string> => (await app.d.docker('inspect', '-f', '{{.State.Running}} {{.State.StartedAt}}', name)).trim();
  const before = { worker: await started('worker'), side: await started('side') };
  const r = await stowage(['-r', app.repo, 'backup', '--containers', 'worker', '--volume-mode', 'api'], app.env);
  t.is(r.code, 0, r.stderr + r.stdout);
  const after = { worker: await started('worker'), side: await started('side') };
  t.true(after.worker.startsWith('true ') && after.side.startsWith('true '), JSON.stringify(after));
  t.not(after.side, before.side, 'the dependant was stopped and started again');
  t.true(after.side.split(' ')[1]! > after.worker.split(' ')[1]!, 'and started after the container it depends on');
});
