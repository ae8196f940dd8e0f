/**
 * A real stowage server for tests: HTTPS on loopback, in this process (or,
 * with spawnServer, as its own process that a test can kill), with a data
 * directory that the test removes when it ends.
 */
import type { ExecutionContext } from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pino } from 'pino';
import { openHttpsBackend, type HttpsBackend } from '../../core/backends/https.ts';
import type { BanPolicy } from '../../server/ban-list.ts';
import type { ClientCertMode, Limits } from '../../server/api.ts';
import { type RunningServer, startServer, stateDirOf } from '../../server/server.ts';
import { RepoSettings } from '../../server/settings.ts';
import type { Store } from '../../server/store.ts';
import { type Role, TokenStore } from '../../server/tokens.ts';
import { STOWAGE } from './cli.ts';
import { tempDir } from './tmp.ts';

export interface TestServer extends RunningServer {
  readonly dataDir: string;
  /** The server's JSON log lines so far. */
  readonly logFile: string;
  token(repo: string, role: Role): Promise<string>;
  setQuota(repo: string, bytes: number | null): Promise<void>;
  /** A client backend for repo with a fresh token of role (default append), pinned to this server. */
  backend(repo: string, role?: Role, env?: NodeJS.ProcessEnv): Promise<HttpsBackend>;
}

export async function startTestServer(
  t: ExecutionContext,
  opts: { limits?: Partial<Limits>; ban?: Partial<BanPolicy>; dataDir?: string; clientCerts?: ClientCertMode; store?: Store } = {},
): Promise<TestServer> {
  const dataDir = opts.dataDir ?? path.join(await tempDir(t), 'server');
  const logFile = path.join(path.dirname(dataDir), `server-${randomBytes(4).toString('hex')}.log`);
  const log = pino({ base: null }, pino.destination({ dest: logFile, sync: true }));
  const running = await startServer({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    log,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.ban ? { ban: opts.ban } : {}),
    ...(opts.clientCerts ? { clientCerts: opts.clientCerts } : {}),
    ...(opts.store ? { store: opts.store } : {}),
  });
  t.teardown(() => running.close());
  // Where this server keeps tokens and quotas: in the S3 store when it has one.
  const state = opts.store?.sharedState?.() ?? stateDirOf(dataDir);
  const server: TestServer = {
    ...running,
    dataDir,
    logFile,
    token: async (repo, role) => (await new TokenStore(state).add(repo, role)).token,
    setQuota: (repo, bytes) => new RepoSettings(state).setQuota(repo, bytes),
    backend: async (repo, role = 'append', env = {}) => {
      const be = await openHttpsBackend(`${running.url}/${repo}`, {
        env: { STOWAGE_TOKEN: await server.token(repo, role), STOWAGE_CONFIG_DIR: path.join(dataDir, '..', 'client-config'), STOWAGE_RETRY_SECONDS: '2', ...env },
        serverFingerprint: running.fingerprint,
      });
      t.teardown(() => be.close());
      return be;
    },
  };
  return server;
}

export function logLines(file: string): Record<string, unknown>[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export interface SpawnedServer {
  readonly child: ChildProcess;
  readonly url: string;
  readonly fingerprint: string;
  /** stdout (the JSON log) so far. */
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `stowage serve` as its own process, for tests that kill it. */
export async function spawnServer(dataDir: string, port: number, env: NodeJS.ProcessEnv): Promise<SpawnedServer> {
  return await spawnServerWith(dataDir, port, env, []);
}

/**
 * `stowage serve` with extra options (--store, …). With `quiet` its log is
 * discarded: a parent that blocks in synchronous calls (the benchmark) would
 * not read it, and a server whose log pipe is full waits on every request.
 */
export async function spawnServerWith(dataDir: string, port: number, env: NodeJS.ProcessEnv, extra: readonly string[], quiet = false): Promise<SpawnedServer> {
  const child = spawn(STOWAGE, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, ...extra], { env, stdio: ['ignore', quiet ? 'ignore' : 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const fingerprint = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /fingerprint \(SHA-256\): ([0-9A-F:]{95})/.exec(err);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 20);
    void exited.then(() => {
      clearInterval(timer);
      reject(new Error(`server exited before it listened: ${err}`));
    });
  });
  return {
    child,
    url: `https://127.0.0.1:${port}`,
    fingerprint,
    log: () => out,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return await exited;
    },
  };
}

/** A free loopback port (the kernel picks; we release it at once). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as import('node:net').AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
