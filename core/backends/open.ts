/**
 * Turns a repository location into a backend: a local path (or `local:PATH`)
 * or an `https://host:port/NAME` URL served by `stowage serve`. Plain HTTP is
 * refused outright: there is no unencrypted transport to fall back to.
 */
import { UsageError } from '../errors.ts';
import type { Backend } from '../backend.ts';
import { LocalBackend } from './local.ts';

export interface BackendOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly tokenFile?: string;
  readonly serverFingerprint?: string;
  readonly caFile?: string;
  /** Mutual TLS: a certificate from `stowage serve client add`, and its key. */
  readonly clientCert?: string;
  readonly clientKey?: string;
}

export async function openBackend(location: string, opts: BackendOptions): Promise<Backend> {
  if (/^http:\/\//i.test(location)) {
    throw new UsageError(`refusing plain HTTP repository ${location}: stowage servers speak HTTPS only (use https://)`);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase();
  if (scheme === 'https') {
    // Loaded only when used: a local backup never pays for the HTTP client.
    const { openHttpsBackend } = await import('./https.ts');
    return await openHttpsBackend(location, opts);
  }
  if (scheme) throw new UsageError(`unsupported repository location ${location} (use a directory or https://HOST:PORT/NAME)`);
  const local = location.startsWith('local:') ? location.slice(6) : location;
  if (local.length === 0) throw new UsageError('empty repository location');
  return new LocalBackend(local);
}
