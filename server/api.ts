/**
 * The HTTP API (docs/server-api.md is its specification): routing,
 * authentication, roles, limits and quotas in front of a Store. Every
 * refusal is an ApiError answered as JSON `{"error": code, "message": text}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { type ObjectType, OBJECT_TYPES, isValidName } from '../core/backend.ts';
import type { BanList } from './ban-list.ts';
import { ApiError, notFound } from './errors.ts';
import type { RepoSettings } from './settings.ts';
import { type ObjectKey, type Store, isValidRepoName } from './store.ts';
import type { TLSSocket } from 'node:tls';
import type { Metrics } from '../core/metrics.ts';
import type { ClientAuthority } from './client-certs.ts';
import type { Role, TokenStore } from './tokens.ts';

/** Who a request is from: a token's or a client certificate's holder, scoped to one repository and role. */
export interface Principal {
  readonly id: string;
  readonly repo: string;
  readonly role: Role;
}

/** off: tokens only; optional: a client certificate or a token; required: a client certificate on every request. */
export type ClientCertMode = 'off' | 'optional' | 'required';

export interface Limits {
  /** Largest object body accepted (bytes). */
  readonly maxObjectBytes: number;
  /** Requests handled at once; more are answered 503. */
  readonly maxConcurrent: number;
  /** Objects per list page. */
  readonly listPageMax: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxObjectBytes: 64 << 20,
  maxConcurrent: 64,
  listPageMax: 10_000,
};

export interface ApiDeps {
  readonly store: Store;
  readonly tokens: TokenStore;
  readonly settings: RepoSettings;
  readonly bans: BanList;
  readonly clients: ClientAuthority | null;
  readonly metrics?: Metrics;
  readonly clientCertMode: ClientCertMode;
  readonly limits: Limits;
  readonly log: Logger;
  /** A keyed hash of a client address: logs never carry the address itself. */
  readonly clientTag: (addr: string) => string;
}

type Route =
  | { kind: 'repo'; repo: string }
  | { kind: 'list'; repo: string; type: ObjectType }
  | { kind: 'object'; key: ObjectKey };

export const RECEIVED_AT_HEADER = 'stowage-received-at';

export class Api {
  private readonly d: ApiDeps;
  private inFlight = 0;
  /** Bytes of PUTs in flight per repository, so parallel uploads cannot pass the quota together. */
  private readonly reserved = new Map<string, number>();

  constructor(deps: ApiDeps) {
    this.d = deps;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const addr = req.socket.remoteAddress ?? 'unknown';
    const entry: Record<string, unknown> = { method: req.method, client: this.d.clientTag(addr) };
    this.inFlight++;
    res.on('close', () => {
      this.inFlight--;
      entry['status'] = res.statusCode;
      entry['ms'] = Number((process.hrtime.bigint() - started) / 1_000_000n);
      this.d.log.info(entry, 'request');
      this.d.metrics?.inc('stowage_server_requests_total', 'Requests answered, by status code.', 1, { status: String(res.statusCode) });
    });
    this.serve(req, res, addr, entry).catch((e: unknown) => this.fail(req, res, e, entry));
  };

  private async serve(req: IncomingMessage, res: ServerResponse, addr: string, entry: Record<string, unknown>): Promise<void> {
    if (this.inFlight > this.d.limits.maxConcurrent) throw new ApiError(503, 'busy', 'too many requests at once; retry shortly', { 'retry-after': '1' });
    const banned = this.d.bans.bannedFor(addr);
    if (banned > 0) throw new ApiError(429, 'banned', `too many failed authentications from this address; try again in ${banned} s`, { 'retry-after': String(banned) });
    const route = parseRoute(req.url ?? '/');
    entry['route'] = route.kind;
    const repo = route.kind === 'object' ? route.key.repo : route.repo;
    entry['repo'] = repo;
    if (route.kind !== 'repo') entry['type'] = route.kind === 'object' ? route.key.type : route.type;
    const token = await this.authenticate(req, addr, entry);
    if (token.repo !== repo) throw new ApiError(403, 'wrong-repository', 'this token does not belong to that repository');
    switch (route.kind) {
      case 'repo':
        return await this.repoRoute(req, res, repo, token);
      case 'list':
        return await this.listRoute(req, res, route.repo, route.type);
      case 'object':
        return await this.objectRoute(req, res, route.key, token, entry);
    }
  }

  private async authenticate(req: IncomingMessage, addr: string, entry: Record<string, unknown>): Promise<Principal> {
    const refuse = (message: string): never => {
      this.d.metrics?.inc('stowage_server_auth_failures_total', 'Requests refused for a missing, wrong or revoked credential.');
      if (this.d.bans.fail(addr)) this.d.log.warn({ client: entry['client'] }, 'address banned after repeated failed authentication');
      throw new ApiError(401, 'unauthorized', message);
    };
    if (this.d.clientCertMode !== 'off' && this.d.clients) {
      const socket = req.socket as TLSSocket;
      const cert = socket.getPeerCertificate();
      if (cert && cert.serialNumber) {
        if (!socket.authorized) refuse(`the client certificate was not issued by this server's CA (${String(socket.authorizationError)})`);
        const rec = await this.d.clients.lookup(cert.serialNumber);
        if (!rec) refuse('the client certificate is revoked or unknown to this server');
        entry['client_cert'] = rec!.serial.slice(0, 16);
        return { id: `cert:${rec!.serial.slice(0, 16)}`, repo: rec!.repo, role: rec!.role };
      }
      if (this.d.clientCertMode === 'required') refuse('this server requires a client certificate (stowage serve client add), and none was presented');
    }
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer (\S+)$/.exec(auth);
    const record = m ? await this.d.tokens.verify(m[1]!) : null;
    if (!record) refuse(m ? 'unknown or revoked token' : 'no token: send "Authorization: Bearer TOKEN"');
    entry['token'] = record!.id;
    return { id: record!.id, repo: record!.repo, role: record!.role };
  }

  private async repoRoute(req: IncomingMessage, res: ServerResponse, repo: string, token: Principal): Promise<void> {
    if (req.method === 'POST') {
      const outcome = await this.d.store.createRepository(repo);
      return sendJson(res, outcome === 'created' ? 201 : 200, { repository: repo, created: outcome === 'created' });
    }
    if (req.method === 'GET') {
      if (!(await this.d.store.hasRepository(repo))) throw new ApiError(404, 'no-repository', `repository ${repo} does not exist`);
      const [usedBytes, quotaBytes] = await Promise.all([this.d.store.usage(repo), this.d.settings.quota(repo)]);
      return sendJson(res, 200, { repository: repo, role: token.role, usedBytes, quotaBytes });
    }
    throw methodNotAllowed('GET, POST');
  }

  private async listRoute(req: IncomingMessage, res: ServerResponse, repo: string, type: ObjectType): Promise<void> {
    if (req.method !== 'GET') throw methodNotAllowed('GET');
    const q = new URL(req.url ?? '/', 'https://x').searchParams;
    const after = q.get('after');
    const limitParam = q.get('limit');
    const limit = limitParam === null ? this.d.limits.listPageMax : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 1 || limit > this.d.limits.listPageMax) {
      throw new ApiError(400, 'bad-request', `limit must be an integer from 1 to ${this.d.limits.listPageMax}`);
    }
    const page = await this.d.store.list(repo, type, after, limit);
    sendJson(res, 200, {
      objects: page.objects.map((o) => ({ name: o.name, size: o.size, receivedAt: o.receivedAt.toISOString() })),
      next: page.next,
    });
  }

  private async objectRoute(req: IncomingMessage, res: ServerResponse, key: ObjectKey, token: Principal, entry: Record<string, unknown>): Promise<void> {
    switch (req.method) {
      case 'HEAD':
      case 'GET':
        return await this.read(req, res, key);
      case 'PUT':
        return await this.put(req, res, key, entry);
      case 'DELETE':
        // Removing its own locks is part of a backup; anything else destroys history.
        if (token.role !== 'admin' && key.type !== 'locks') {
          throw new ApiError(403, 'forbidden', 'an append token cannot delete; deleting needs an admin token');
        }
        await this.d.store.remove(key);
        res.writeHead(204).end();
        return;
      default:
        throw methodNotAllowed('GET, HEAD, PUT, DELETE');
    }
  }

  private async read(req: IncomingMessage, res: ServerResponse, key: ObjectKey): Promise<void> {
    const info = await this.d.store.stat(key);
    const range = parseRange(req.headers.range, info.size);
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      [RECEIVED_AT_HEADER]: info.receivedAt.toISOString(),
    };
    if (range) {
      headers['content-range'] = `bytes ${range.start}-${range.end}/${info.size}`;
      headers['content-length'] = range.end - range.start + 1;
    } else {
      headers['content-length'] = info.size;
    }
    if (req.method === 'HEAD' || info.size === 0) {
      res.writeHead(range ? 206 : 200, headers).end();
      return;
    }
    const stream: Readable = await this.d.store.read(key, range?.start ?? 0, range?.end ?? info.size - 1);
    res.writeHead(range ? 206 : 200, headers);
    await pipeline(stream, res);
  }

  private async put(req: IncomingMessage, res: ServerResponse, key: ObjectKey, entry: Record<string, unknown>): Promise<void> {
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined) throw new ApiError(411, 'length-required', 'PUT needs a Content-Length');
    const length = Number(lengthHeader);
    if (!Number.isSafeInteger(length) || length < 0) throw new ApiError(400, 'bad-request', 'invalid Content-Length');
    if (length > this.d.limits.maxObjectBytes) {
      throw new ApiError(413, 'too-large', `object of ${length} bytes exceeds the server's limit of ${this.d.limits.maxObjectBytes}`);
    }
    entry['bytes'] = length;
    const repo = key.repo;
    const quota = await this.d.settings.quota(repo);
    const reserved = this.reserved.get(repo) ?? 0;
    if (quota !== null) {
      const used = await this.d.store.usage(repo);
      if (used + reserved + length > quota) {
        throw new ApiError(507, 'quota-exceeded', `repository ${repo} is over its quota: ${used} of ${quota} bytes used; this object needs ${length} more`);
      }
    }
    this.reserved.set(repo, reserved + length);
    try {
      const outcome = await this.d.store.put(key, req, length);
      sendJson(res, outcome === 'created' ? 201 : 200, { created: outcome === 'created' });
    } finally {
      const left = (this.reserved.get(repo) ?? length) - length;
      if (left > 0) this.reserved.set(repo, left);
      else this.reserved.delete(repo);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, e: unknown, entry: Record<string, unknown>): void {
    const err = e instanceof ApiError ? e : null;
    if (!err) {
      entry['error'] = e instanceof Error ? e.message : String(e);
      this.d.log.error({ client: entry['client'], err: entry['error'] }, 'internal error');
    } else {
      entry['error'] = err.code;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = err?.status ?? 500;
    const headers: Record<string, string | number> = { ...err?.headers };
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    // A body we refuse before reading: close after answering rather than read it all.
    if (req.method === 'PUT' && !req.readableEnded) headers['connection'] = 'close';
    sendJson(res, status, { error: err?.code ?? 'internal', message: err?.message ?? 'internal server error' }, headers);
    if (req.method === 'PUT' && !req.readableEnded) res.on('finish', () => req.socket.end());
  }
}

function methodNotAllowed(allow: string): ApiError {
  return new ApiError(405, 'method-not-allowed', `method not allowed; use ${allow}`, { allow });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `/v1/REPO`, `/v1/REPO/TYPE/`, `/v1/REPO/TYPE/NAME`; anything else is 404. */
export function parseRoute(url: string): Route {
  const pathname = url.split('?')[0]!;
  const parts = pathname.split('/');
  // ['', 'v1', repo, type?, name?]
  if (parts[0] !== '' || parts[1] !== 'v1' || parts.length < 3 || parts.length > 5) throw notFound('this route');
  const repo = parts[2]!;
  if (!isValidRepoName(repo)) throw new ApiError(400, 'bad-name', 'invalid repository name');
  if (parts.length === 3) return { kind: 'repo', repo };
  const type = parts[3] as ObjectType;
  if (!OBJECT_TYPES.includes(type)) throw notFound('this route');
  if (parts.length === 4 || parts[4] === '') return { kind: 'list', repo, type };
  const name = parts[4]!;
  if (!isValidName(type, name)) throw new ApiError(400, 'bad-name', `invalid object name for type ${type}`);
  return { kind: 'object', key: { repo, type, name } };
}

/** One `bytes=` range, clamped to the object; null for none; 416 when it starts past the end. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new ApiError(400, 'bad-range', 'only one range of the form bytes=START-END is supported');
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) {
    throw new ApiError(416, 'range-not-satisfiable', `range starts at ${start}, the object has ${size} bytes`);
  }
  return { start, end };
}
