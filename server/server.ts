/**
 * The backup server: HTTPS only (there is no plain-HTTP listener at all),
 * TLS 1.2 at least and 1.3 preferred, in front of the Api and a Store. It
 * holds no repository key and imports nothing that does.
 *
 * Its data directory: `state/` (TLS identity, token hashes, settings, the
 * secret that keys client-address hashes in logs; all 0600) and `repos/`
 * (the filesystem store).
 */
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pino, type Logger } from 'pino';
import { Api, type ClientCertMode, DEFAULT_LIMITS, type Limits } from './api.ts';
import { ClientAuthority } from './client-certs.ts';
import { BanList, type BanPolicy } from './ban-list.ts';
import { Metrics } from '../core/metrics.ts';
import { FsStore } from './fs-store.ts';
import { loadIdentity } from './identity.ts';
import { RepoSettings } from './settings.ts';
import type { StateLocation } from './state.ts';
import type { Store } from './store.ts';
import { TokenStore } from './tokens.ts';

export interface ServerOptions {
  readonly dataDir: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly limits?: Partial<Limits>;
  readonly ban?: Partial<BanPolicy>;
  /** Prometheus metrics on a separate plain-HTTP listener (opt-in; they carry no secrets). */
  readonly metricsListen?: { host: string; port: number };
  /** Mutual TLS with certificates from `stowage serve client add` (default off). */
  readonly clientCerts?: ClientCertMode;
  /** Default: JSON lines on stdout at info. */
  readonly log?: Logger;
  /** Default: the filesystem store under DATA/repos. */
  readonly store?: Store;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly fingerprint: string;
  readonly generatedIdentity: boolean;
  /** The metrics listener's port, when one was asked for. */
  readonly metricsPort: number | null;
  close(): Promise<void>;
}

export const DEFAULT_BAN: BanPolicy = { maxFailures: 10, windowMs: 10 * 60_000, banMs: 15 * 60_000 };

/** Timeouts: a slow or stalled client cannot hold a connection for ever. */
const HEADERS_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 10 * 60_000;
const IDLE_TIMEOUT_MS = 60_000;
const KEEP_ALIVE_MS = 65_000;
const MAX_CONNECTIONS = 512;

export function stateDirOf(dataDir: string): string {
  return path.join(dataDir, 'state');
}

export function storeDirOf(dataDir: string): string {
  return path.join(dataDir, 'repos');
}

async function serverSecret(stateDir: string): Promise<Buffer> {
  const file = path.join(stateDir, 'secret');
  try {
    return await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await fs.writeFile(file, randomBytes(32), { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return await fs.readFile(file);
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const stateDir = stateDirOf(opts.dataDir);
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const identity = await loadIdentity(stateDir, opts.certFile, opts.keyFile);
  const secret = await serverSecret(stateDir);
  let store = opts.store;
  if (!store) {
    const fsStore = new FsStore(storeDirOf(opts.dataDir));
    await fsStore.open();
    store = fsStore;
  }
  const log = opts.log ?? pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime });
  // Tokens, quotas and client certificates live with the objects when the store is shared (S3).
  const state: StateLocation = store.sharedState?.() ?? stateDir;
  const clientCertMode = opts.clientCerts ?? 'off';
  const clients = clientCertMode === 'off' ? null : new ClientAuthority(state);
  const clientCa = clients ? await clients.ensureCaCert() : null;
  const metrics = opts.metricsListen ? new Metrics() : undefined;
  if (metrics) {
    metrics.onCollect(async () => {
      for (const repo of await store!.listRepositories()) {
        metrics.set('stowage_server_stored_bytes', 'Bytes stored per repository.', await store!.usage(repo), { repo });
      }
    });
  }
  const metricsServer = metrics && opts.metricsListen ? await metrics.listen(opts.metricsListen.host, opts.metricsListen.port) : null;
  const api = new Api({
    ...(metrics ? { metrics } : {}),
    store,
    tokens: new TokenStore(state),
    settings: new RepoSettings(state),
    bans: new BanList({ ...DEFAULT_BAN, ...opts.ban }),
    clients,
    clientCertMode,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    log,
    clientTag: (addr) => createHmac('sha256', secret).update(addr).digest('hex').slice(0, 16),
  });
  const server: Server = createServer(
    {
      cert: identity.cert,
      key: identity.key,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      // Client certificates are checked per request (Api.authenticate), so a refusal is an HTTP answer that says why.
      ...(clientCa ? { requestCert: true, rejectUnauthorized: false, ca: [clientCa] } : {}),
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_MS,
    },
    api.handle,
  );
  server.maxConnections = MAX_CONNECTIONS;
  server.setTimeout(IDLE_TIMEOUT_MS);
  // A plain-HTTP or broken handshake just closes: no HTTP answer is ever sent in clear.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `https://${hostPart}:${port}`,
    port,
    fingerprint: identity.fingerprint,
    generatedIdentity: identity.generated,
    metricsPort: metricsServer?.port ?? null,
    close: async () => {
      await metricsServer?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
    },
  };
}
