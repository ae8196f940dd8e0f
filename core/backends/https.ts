/**
 * The client of `stowage serve` (docs/server-api.md): a Backend over HTTPS.
 *
 * The server is authenticated before a byte of the request is sent: by the
 * certificate fingerprint pinned at init (or given with --server-fingerprint),
 * else by a CA bundle (--ca-file), else by the system's CAs. A server that
 * fails the check is refused with both fingerprints in the message.
 *
 * Connections are kept alive in a pool; network errors, 5xx and 503 "busy"
 * are retried with exponential backoff until a deadline, so a server
 * restarting during a backup costs a pause, not the run. Objects are
 * immutable and named by their hash, so a retried PUT is harmless.
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import { type Backend, type Body, type ByteRange, type Handle, type ObjectInfo, type ObjectType, bodyLength, bodyParts, describe, isValidName } from '../backend.ts';
import {
  BackendError,
  ForbiddenError,
  IntegrityError,
  NoSpaceError,
  ObjectExistsError,
  ObjectNotFoundError,
  QuotaExceededError,
  RepositoryExistsError,
  RepositoryNotFoundError,
  ServerIdentityError,
  UsageError,
  isStowageError,
} from '../errors.ts';
import { normalizeFingerprint } from '../fingerprint.ts';
import { pinFingerprint, pinnedFingerprint } from '../known-servers.ts';
import type { BackendOptions } from './open.ts';

/** Connections kept to the server: uploads run 4 at once, reads a few more. */
const CONNECTIONS = 8;
const DEFAULT_RETRY_SECONDS = 120;
const HEADERS_TIMEOUT_MS = 60_000;
const BODY_TIMEOUT_MS = 120_000;
const RECEIVED_AT = 'stowage-received-at';

/** How the server's certificate is checked. */
type Trust = { kind: 'pinned'; fingerprint: string } | { kind: 'ca'; ca: string | undefined };

interface ErrorBody {
  error?: string;
  message?: string;
}

interface Endpoint {
  readonly origin: string;
  readonly hostPort: string;
  readonly hostname: string;
  readonly repo: string;
}

function parseLocation(location: string): Endpoint {
  let u: URL;
  try {
    u = new URL(location);
  } catch {
    throw new UsageError(`not a valid repository URL: ${location}`);
  }
  const segments = u.pathname.split('/').filter(Boolean);
  if (u.protocol !== 'https:' || segments.length !== 1 || u.search || u.hash || u.username || u.password) {
    throw new UsageError(`repository URL must be https://HOST[:PORT]/NAME (no credentials in it): ${location}`);
  }
  const port = u.port || '443';
  const hostname = u.hostname.replace(/^\[|\]$/g, '');
  return { origin: `https://${u.host}`, hostPort: `${u.hostname}:${port}`, hostname, repo: segments[0]! };
}

interface ClientIdentity {
  readonly cert: string;
  readonly key: string;
}

async function readClientIdentity(opts: BackendOptions): Promise<ClientIdentity | null> {
  const certFile = opts.clientCert ?? opts.env['STOWAGE_CLIENT_CERT'];
  const keyFile = opts.clientKey ?? opts.env['STOWAGE_CLIENT_KEY'];
  if (!certFile && !keyFile) return null;
  if (!certFile || !keyFile) throw new UsageError('a client certificate needs both --client-cert and --client-key');
  const read = (f: string): Promise<string> =>
    readFile(f, 'utf8').catch((e: unknown) => {
      throw new UsageError(`cannot read ${f}: ${(e as Error).message}`);
    });
  return { cert: await read(certFile), key: await read(keyFile) };
}

async function readToken(opts: BackendOptions, optional: boolean): Promise<string | null> {
  const file = opts.tokenFile ?? opts.env['STOWAGE_TOKEN_FILE'];
  const token = file ? (await readFile(file, 'utf8').catch((e: unknown) => {
    throw new UsageError(`cannot read the token file ${file}: ${(e as Error).message}`);
  })).split('\n')[0]!.trim() : opts.env['STOWAGE_TOKEN']?.trim();
  if (!token) {
    if (optional) return null;
    throw new UsageError('no server token: set STOWAGE_TOKEN or pass --token-file FILE (tokens come from "stowage serve token add"), or use a client certificate');
  }
  return token;
}

export async function openHttpsBackend(location: string, opts: BackendOptions): Promise<HttpsBackend> {
  const ep = parseLocation(location);
  const identity = await readClientIdentity(opts);
  const token = await readToken(opts, identity !== null);
  const given = opts.serverFingerprint ?? opts.env['STOWAGE_SERVER_FINGERPRINT'];
  const explicit = given ? normalizeFingerprint(given) : null;
  const pinned = await pinnedFingerprint(opts.env, ep.hostPort);
  let trust: Trust;
  if (explicit ?? (pinned && !opts.caFile)) {
    trust = { kind: 'pinned', fingerprint: (explicit ?? pinned)! };
  } else {
    trust = { kind: 'ca', ca: opts.caFile ? await readFile(opts.caFile, 'utf8') : undefined };
  }
  const retrySeconds = Number(opts.env['STOWAGE_RETRY_SECONDS'] ?? DEFAULT_RETRY_SECONDS);
  return new HttpsBackend(ep, token, identity, trust, {
    retryMs: Number.isFinite(retrySeconds) && retrySeconds >= 0 ? retrySeconds * 1000 : DEFAULT_RETRY_SECONDS * 1000,
    // Remember a fingerprint the user gave once it has been seen on a real connection.
    onVerified: explicit && explicit !== pinned ? () => pinFingerprint(opts.env, ep.hostPort, explicit) : null,
  });
}

interface ClientTuning {
  readonly retryMs: number;
  readonly onVerified: (() => Promise<void>) | null;
}

export class HttpsBackend implements Backend {
  readonly location: string;
  readonly isLocal = false;
  private readonly ep: Endpoint;
  private readonly auth: Record<string, string>;
  private readonly pool: Pool;
  private readonly tuning: ClientTuning;
  private pinning: Promise<void> | null = null;

  constructor(ep: Endpoint, token: string | null, identity: ClientIdentity | null, trust: Trust, tuning: ClientTuning) {
    this.ep = ep;
    this.location = `${ep.origin}/${ep.repo}`;
    this.auth = token ? { authorization: `Bearer ${token}` } : {};
    this.tuning = tuning;
    this.pool = new Pool(ep.origin, {
      connections: CONNECTIONS,
      pipelining: 1,
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
      connect: this.verifyingConnector(trust, identity),
    });
  }

  /**
   * Checks the server's certificate once the handshake is done and before
   * the socket is handed to the pool: on a mismatch nothing is ever sent.
   */
  private verifyingConnector(trust: Trust, identity: ClientIdentity | null): buildConnector.connector {
    const base = buildConnector({
      rejectUnauthorized: false,
      ...(identity ? { cert: identity.cert, key: identity.key } : {}),
      minVersion: 'TLSv1.2',
      maxCachedSessions: 0,
      ...(trust.kind === 'ca' && trust.ca ? { ca: trust.ca } : {}),
    });
    return (options, callback) => {
      base(options, (err, socket) => {
        if (err) return callback(err, null);
        const tls = socket as TLSSocket;
        const problem = this.identityProblem(tls, trust);
        if (problem) {
          tls.destroy();
          return callback(problem, null);
        }
        if (this.tuning.onVerified && !this.pinning) this.pinning = this.tuning.onVerified().catch(() => {});
        callback(null, tls);
      });
    };
  }

  private identityProblem(tls: TLSSocket, trust: Trust): ServerIdentityError | null {
    const cert: PeerCertificate = tls.getPeerCertificate();
    const seen = cert.fingerprint256 ?? '(none)';
    if (trust.kind === 'pinned') {
      if (seen === trust.fingerprint) return null;
      return new ServerIdentityError(
        `the server at ${this.ep.hostPort} presents certificate ${seen}, but ${trust.fingerprint} is pinned for it; ` +
          'nothing was sent. If the server was given a new certificate on purpose, pass --server-fingerprint with the new one',
      );
    }
    const hostError = tls.authorized ? checkServerIdentity(this.ep.hostname, cert) : undefined;
    if (tls.authorized && !hostError) return null;
    const reason = tls.authorized ? hostError!.message : String(tls.authorizationError);
    return new ServerIdentityError(
      `the server at ${this.ep.hostPort} is not trusted (${reason}); nothing was sent. It presents certificate ${seen}: ` +
        'if that is what "stowage serve" printed, pass --server-fingerprint with it (it is then remembered)',
    );
  }

  private url(h?: Handle | ObjectType): string {
    const base = `/v1/${this.ep.repo}`;
    if (h === undefined) return base;
    if (typeof h === 'string') return `${base}/${h}/`;
    if (!isValidName(h.type, h.name)) throw new BackendError(`invalid object name ${JSON.stringify(h.name)} for type ${h.type}`);
    return `${base}/${h.type}/${h.name}`;
  }

  /** One request with retries; returns the response for statuses the caller accepts, else throws. */
  private async call(
    opts: Omit<Dispatcher.RequestOptions, 'body'>,
    accept: readonly number[],
    h: Handle | null,
    body?: readonly Uint8Array[],
  ): Promise<Dispatcher.ResponseData> {
    const deadline = Date.now() + this.tuning.retryMs;
    for (let attempt = 0; ; attempt++) {
      let res: Dispatcher.ResponseData;
      try {
        res = await this.pool.request({
          ...opts,
          headers: { ...opts.headers, ...this.auth },
          // A fresh stream per attempt: a retried PUT sends the whole body again.
          ...(body ? { body: body.length === 1 ? body[0]! : Readable.from(body, { objectMode: false }) } : {}),
        });
      } catch (e) {
        const identity = identityErrorIn(e);
        if (identity) throw identity;
        if (isStowageError(e)) throw e;
        if (Date.now() >= deadline) throw new BackendError(`cannot reach the server at ${this.ep.hostPort}: ${(e as Error).message}`, { cause: e });
        await backoff(attempt, deadline);
        continue;
      }
      if (accept.includes(res.statusCode)) return res;
      const refusal = await errorBody(res);
      if (retryable(res.statusCode) && Date.now() < deadline) {
        await backoff(attempt, deadline, Number(res.headers['retry-after']));
        continue;
      }
      throw this.errorFor(res.statusCode, refusal, h);
    }
  }

  private errorFor(status: number, body: ErrorBody, h: Handle | null): Error {
    const what = h ? describe(h) : this.location;
    const msg = body.message ?? `HTTP ${status}`;
    switch (status) {
      case 401:
        return new ForbiddenError(`the server refused the credential (${msg}); check STOWAGE_TOKEN, --token-file or --client-cert`);
      case 403:
      case 413:
      case 429:
        return new ForbiddenError(`the server refused ${what}: ${msg}`);
      case 404:
        return body.error === 'no-repository' || !h ? new RepositoryNotFoundError(this.location) : new ObjectNotFoundError(what);
      case 409:
        return body.error === 'repository-exists' ? new RepositoryExistsError(this.location) : new ObjectExistsError(what);
      case 416:
        return new IntegrityError(what, `the requested range is past the end of the object (${msg})`);
      case 507:
        return body.error === 'quota-exceeded'
          ? new QuotaExceededError(`the server refused ${what}: ${msg}. Ask the server's operator for a larger quota, or forget and prune old snapshots`)
          : new NoSpaceError(`the server refused ${what}: ${msg}`);
      default:
        return new BackendError(`the server failed on ${what}: HTTP ${status}: ${msg}`);
    }
  }

  async create(): Promise<void> {
    const res = await this.call({ method: 'POST', path: this.url() }, [200, 201], null);
    await res.body.dump();
  }

  async save(h: Handle, data: Body): Promise<void> {
    const parts = bodyParts(data);
    const res = await this.call(
      {
        method: 'PUT',
        path: this.url(h),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bodyLength(data)) },
      },
      [200, 201],
      h,
      parts,
    );
    await res.body.dump();
  }

  /**
   * Runs a request and reads its response, again (within the retry time)
   * when the connection breaks while the body arrives: `call` retries only
   * until the response's head. Past the retry time that is a BackendError
   * naming the object, as for a server that cannot be reached at all.
   */
  private async reading<T>(h: Handle | null, read: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.tuning.retryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (e) {
        if (isStowageError(e)) throw e;
        if (Date.now() >= deadline) {
          throw new BackendError(`the connection to the server at ${this.ep.hostPort} broke while reading ${h ? describe(h) : this.location}: ${(e as Error).message}`, { cause: e });
        }
        await backoff(attempt, deadline);
      }
    }
  }

  async load(h: Handle, range?: ByteRange): Promise<Buffer> {
    if (range && range.length === 0) return Buffer.alloc(0);
    const headers: Record<string, string> = range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {};
    const buf = await this.reading(h, async () => {
      const res = await this.call({ method: 'GET', path: this.url(h), headers }, range ? [206] : [200], h);
      return Buffer.from(await res.body.arrayBuffer());
    });
    if (range && buf.length !== range.length) {
      throw new IntegrityError(describe(h), `short read: wanted ${range.length} bytes at offset ${range.offset}, object ends after ${buf.length}`);
    }
    return buf;
  }

  async loadPieces(h: Handle, pieces: readonly ByteRange[]): Promise<Buffer[]> {
    if (pieces.length === 0) return [];
    const start = pieces[0]!.offset;
    const end = pieces.at(-1)!.offset + pieces.at(-1)!.length;
    if (end === start) return pieces.map(() => Buffer.alloc(0));
    return await this.reading(h, () => this.readPieces(h, pieces, start, end));
  }

  private async readPieces(h: Handle, pieces: readonly ByteRange[], start: number, end: number): Promise<Buffer[]> {
    const res = await this.call({ method: 'GET', path: this.url(h), headers: { range: `bytes=${start}-${end - 1}` } }, [206], h);
    const out = pieces.map((p) => Buffer.allocUnsafeSlow(p.length));
    let pos = start;
    let first = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      const chunkEnd = pos + chunk.length;
      if (chunkEnd > end) {
        res.body.destroy();
        throw new IntegrityError(describe(h), `the server sent more than the ${end - start} bytes asked for at offset ${start}`);
      }
      for (let i = first; i < pieces.length && pieces[i]!.offset < chunkEnd; i++) {
        const p = pieces[i]!;
        const from = Math.max(p.offset, pos);
        const to = Math.min(p.offset + p.length, chunkEnd);
        if (to > from) chunk.copy(out[i]!, from - p.offset, from - pos, to - pos);
        if (i === first && p.offset + p.length <= chunkEnd) first++;
      }
      pos = chunkEnd;
    }
    if (pos !== end) throw new IntegrityError(describe(h), `short read: wanted ${end - start} bytes at offset ${start}, object ends after ${pos - start}`);
    return out;
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    const res = await this.call({ method: 'HEAD', path: this.url(h) }, [200], h);
    await res.body.dump();
    return { name: h.name, size: Number(res.headers['content-length']), ...receivedAt(res.headers[RECEIVED_AT]) };
  }

  async *list(type: ObjectType): AsyncIterable<ObjectInfo> {
    let after: string | null = null;
    do {
      const query: string = after ? `?after=${encodeURIComponent(after)}` : '';
      const page = await this.reading(null, async () => {
        const res = await this.call({ method: 'GET', path: this.url(type) + query }, [200], null);
        return (await res.body.json()) as { objects: { name: string; size: number; receivedAt: string }[]; next: string | null };
      });
      for (const o of page.objects) {
        // A server that lists names of the wrong shape is broken or hostile: skip them.
        if (!isValidName(type, o.name) || !Number.isSafeInteger(o.size)) continue;
        yield { name: o.name, size: o.size, ...receivedAt(o.receivedAt) };
      }
      after = page.next;
    } while (after);
  }

  async remove(h: Handle): Promise<void> {
    const res = await this.call({ method: 'DELETE', path: this.url(h) }, [204], h);
    await res.body.dump();
  }

  async close(): Promise<void> {
    await this.pinning;
    await this.pool.close();
  }
}

function receivedAt(v: unknown): { receivedAt?: Date } {
  if (typeof v !== 'string') return {};
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? {} : { receivedAt: d };
}

function retryable(status: number): boolean {
  return status === 503 || status === 500 || status === 502 || status === 504 || status === 408;
}

async function errorBody(res: Dispatcher.ResponseData): Promise<ErrorBody> {
  try {
    const text = await res.body.text();
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === 'object' ? (parsed as ErrorBody) : {};
  } catch {
    return {};
  }
}

function identityErrorIn(e: unknown): ServerIdentityError | null {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (cur instanceof ServerIdentityError) return cur;
  }
  return null;
}

/** 250 ms doubling to 8 s, with jitter, never past the deadline; a server's Retry-After wins when longer. */
async function backoff(attempt: number, deadline: number, retryAfterSeconds = NaN): Promise<void> {
  let ms = Math.min(8000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
  if (Number.isFinite(retryAfterSeconds)) ms = Math.max(ms, retryAfterSeconds * 1000);
  ms = Math.max(0, Math.min(ms, deadline - Date.now()));
  await new Promise((r) => setTimeout(r, ms));
}
