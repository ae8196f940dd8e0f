/** The two-container app of the container tests: "db" with a named volume, "web" with a bind mount, on a custom network. */
import type { ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stowage, testEnv } from './cli.ts';
import { type Daemon, importBusybox, startDaemon } from './docker.ts';
import { freePort } from './server.ts';
import { tempDir } from './tmp.ts';

export interface App {
  readonly d: Daemon;
  readonly work: string;
  readonly env: NodeJS.ProcessEnv;
  readonly repo: string;
  readonly bindDir: string;
  /** Host ports web publishes (random: several apps run at once). */
  readonly ports: readonly [number, number];
}

/** The two-container app of the issue: db with a named volume, web with a bind mount, on a custom network. */
export async function startApp(t: ExecutionContext, given?: Daemon): Promise<App> {
  const d = given ?? (await startDaemon(t));
  const work = await tempDir(t);
  await importBusybox(d, 'test/app:1', ['ENV IMAGE_VAR=1', 'LABEL image.label=yes', 'EXPOSE 9000', 'WORKDIR /', 'CMD ["sleep","3600"]']);
  await d.docker('network', 'create', '--driver', 'bridge', '--subnet', '10.77.0.0/24', '--label', 'owner=test', 'appnet');
  await d.docker('volume', 'create', '--label', 'tier=db', '--label', 'com.docker.compose.config-hash=abc123', 'dbdata');
  // Initialises its data on first start only, as a database does: a restored db must find it and leave it be.
  const firstRun = [
    'mkdir -p /var/lib/db/sub /var/lib/db/private',
    'echo primary > /var/lib/db/role.txt',
    'dd if=/dev/urandom of=/var/lib/db/sub/blob.bin bs=1k count=300 2>/dev/null',
    'ln -s sub/blob.bin /var/lib/db/link',
    'chmod 700 /var/lib/db/private && echo secret > /var/lib/db/private/key && chmod 600 /var/lib/db/private/key',
    'echo owned > /var/lib/db/app.txt && chown 1000:1000 /var/lib/db/app.txt',
    'touch -d "2024-02-29 12:34:56" /var/lib/db/role.txt',
    'touch /var/lib/db/ready',
  ].join(' && ');
  const script = `if [ ! -f /var/lib/db/ready ]; then ${firstRun}; fi; trap "exit 0" TERM; while :; do sleep 1; done`;
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

