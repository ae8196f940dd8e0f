/**
 * Real Docker daemons for tests: each with its own data root, exec root and
 * socket (never the user's Docker), no default bridge and no iptables, so
 * several run side by side. Images are made with `docker import` from a
 * busybox-static root file system: no registry is needed.
 *
 * Without dockerd the tests are skipped, unless CI is set: then a daemon
 * that cannot start fails the run.
 */
import type { ExecutionContext } from 'ava';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './tmp.ts';

const run = promisify(execFile);

export interface Daemon {
  readonly host: string;
  readonly dir: string;
  docker(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export function haveDocker(): boolean {
  return spawnSync('sh', ['-c', 'command -v dockerd && command -v docker && test -x /bin/busybox'], { stdio: 'ignore' }).status === 0;
}

/** Skips (or, under CI, fails) a test when Docker cannot run here; returns false then. */
export function requireDocker(t: ExecutionContext): boolean {
  if (haveDocker()) return true;
  if (process.env['CI']) t.fail('dockerd, docker or /bin/busybox is missing (apt-get install docker.io busybox-static)');
  else t.log('skipped: Docker is not installed (apt-get install docker.io busybox-static)');
  if (!process.env['CI']) t.pass();
  return false;
}

export async function startDaemon(t: ExecutionContext): Promise<Daemon> {
  // Short paths: containerd's sockets live under the exec root, and socket paths are limited to 108 bytes.
  const d = await launchDaemon(await tempDir(t, 'sd-'));
  t.teardown(() => d.stop());
  return d;
}

/** Starts a dockerd whose every file is under `dir`; for tests (startDaemon) and the benchmark. */
export async function launchDaemon(dir: string): Promise<Daemon> {
  const host = `unix://${dir}/docker.sock`;
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--data-root', `${dir}/data`,
      '--exec-root', `${dir}/x`,
      '--pidfile', `${dir}/pid`,
      '-H', host,
      '--bridge', 'none',
      '--iptables=false',
      '--ip-masq=false',
      '--log-level', 'warn',
    ],
    { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'dockerd.log'), 'w')] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const docker = async (...args: string[]): Promise<string> => (await run('docker', ['-H', host, ...args], { maxBuffer: 64 << 20 })).stdout;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    // Containers first, so the daemon's shutdown is quick and leaves no mounts.
    await docker('ps', '-q').then((ids) => (ids.trim() ? docker('kill', ...ids.trim().split('\n')) : '')).catch(() => '');
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await docker('info');
      break;
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline) {
        const log = fs.readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-2000);
        await stop();
        throw new Error(`dockerd did not start: ${(e as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { host, dir, docker, stop };
}

/** A busybox image made from busybox-static, with an image config to normalise against. */
export async function importBusybox(d: Daemon, ref: string, changes: string[] = []): Promise<string> {
  const rootfs = path.join(d.dir, 'rootfs');
  if (!fs.existsSync(rootfs)) {
    fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(rootfs, 'etc'));
    fs.mkdirSync(path.join(rootfs, 'tmp'), { mode: 0o1777 });
    fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
    for (const cmd of ['sh', 'ls', 'cat', 'echo', 'sleep', 'mkdir', 'true', 'false', 'id', 'chmod', 'chown', 'ln', 'touch', 'dd', 'test', 'printf', 'rm', 'mv', 'head', 'sha256sum', 'wget', 'httpd', 'nc', 'env']) {
      fs.symlinkSync('busybox', path.join(rootfs, 'bin', cmd));
    }
    fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\napp:x:1000:\n');
  }
  const args = ['-c', `tar -C ${rootfs} -c . | docker -H ${d.host} import ${changes.map((c) => `--change '${c}'`).join(' ')} - ${ref}`];
  const { stdout } = await run('sh', args);
  return stdout.trim();
}
