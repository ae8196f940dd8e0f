/**
 * `stowage serve`: the backup server in the foreground, logging JSON lines
 * on stdout; the address and certificate fingerprint go to stderr for the
 * operator. SIGTERM/SIGINT close it gracefully (exit 0).
 */
import * as path from 'node:path';
import { UsageError } from '../../core/errors.ts';
import { parseDuration, parseSize } from '../../core/units.ts';
import type { ClientCertMode } from '../../server/api.ts';
import { S3Store, parseS3Url, s3ClientFromEnv } from '../../server/s3-store.ts';
import { startServer } from '../../server/server.ts';
import type { Context } from '../context.ts';
import { setStopHandler } from '../stop.ts';

export interface ServeOptions {
  readonly data?: string;
  readonly listen: string;
  readonly cert?: string;
  readonly key?: string;
  readonly maxObjectSize: string;
  readonly maxConcurrent: string;
  readonly banAfter: string;
  readonly banFor: string;
  readonly clientCerts: string;
  readonly metricsListen?: string;
  readonly store?: string;
}

export function serverDataDir(ctx: Context, given: string | undefined): string {
  return path.resolve(given ?? ctx.env['STOWAGE_SERVER_DATA'] ?? '/var/lib/stowage');
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen wants HOST:PORT (e.g. 0.0.0.0:8443 or [::]:8443), not ${JSON.stringify(text)}`);
  return { host: (m[1] ?? m[2])!, port };
}

function clientCertMode(text: string): ClientCertMode {
  if (text !== 'off' && text !== 'optional' && text !== 'required') throw new UsageError(`--client-certs takes off, optional or required, not ${JSON.stringify(text)}`);
  return text;
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} wants a positive whole number, not ${JSON.stringify(text)}`);
  return n;
}

export async function run(ctx: Context, opts: ServeOptions): Promise<number> {
  const { host, port } = parseListen(opts.listen);
  let store: S3Store | undefined;
  if (opts.store) {
    let loc;
    try {
      loc = parseS3Url(opts.store);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    store = new S3Store(s3ClientFromEnv(ctx.env), loc, path.join(serverDataDir(ctx, opts.data), 'uploads'));
    await store.open();
  }
  const server = await startServer({
    ...(store ? { store } : {}),
    dataDir: serverDataDir(ctx, opts.data),
    host,
    port,
    ...(opts.cert ? { certFile: opts.cert } : {}),
    ...(opts.key ? { keyFile: opts.key } : {}),
    limits: { maxObjectBytes: parseSize(opts.maxObjectSize), maxConcurrent: positiveInt('--max-concurrent', opts.maxConcurrent) },
    ban: { maxFailures: positiveInt('--ban-after', opts.banAfter), banMs: parseDuration(opts.banFor) },
    clientCerts: clientCertMode(opts.clientCerts),
    ...(opts.metricsListen ? { metricsListen: parseListen(opts.metricsListen) } : {}),
  });
  process.stderr.write(
    `stowage server listening on ${server.url}\n` +
      `certificate fingerprint (SHA-256): ${server.fingerprint}${server.generatedIdentity ? ' (new self-signed certificate)' : ''}\n` +
      'clients pin it with: stowage init --repo ' + `${server.url}/NAME --server-fingerprint ${server.fingerprint}\n` +
      (server.metricsPort !== null ? `metrics on http://${parseListen(opts.metricsListen!).host}:${server.metricsPort}/metrics\n` : ''),
  );
  return await new Promise<number>((resolve) => {
    setStopHandler(async () => {
      await server.close();
      resolve(0);
      return 0;
    });
  });
}
