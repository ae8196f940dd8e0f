/**
 * The S3 store (`stowage serve --store s3://BUCKET/PREFIX`): the same
 * contract as the filesystem store over any S3-compatible object store
 * (tested against Ceph's radosgw). Keys: `PREFIX/REPO/TYPE/NAME`, and
 * `PREFIX/REPO/.repository` marks a repository.
 *
 * An upload is streamed to a local temporary file while it is hashed, checked
 * (length, and SHA-256 against its name), and only then PUT with
 * `If-None-Match: *`: the store makes it visible atomically and create-only,
 * so a body that does not hash to its name is never visible, and an object is
 * never overwritten. Endpoint, region and credentials come from the
 * environment (S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, or the SDK's other sources).
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { type ObjectType, isValidName } from '../core/backend.ts';
import { ApiError, noRepository, notFound } from './errors.ts';
import type { StateLocation } from './state.ts';
import type { ListPage, ObjectKey, PutOutcome, Store, StoredObject } from './store.ts';

export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

/** `s3://bucket/prefix` → bucket and prefix (ending in "/" unless empty). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error(`--store wants s3://BUCKET[/PREFIX], not ${JSON.stringify(url)}`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: m[1]!, prefix: prefix ? `${prefix}/` : '' };
}

export function s3ClientFromEnv(env: NodeJS.ProcessEnv): S3Client {
  return new S3Client({
    ...(env['S3_ENDPOINT'] ? { endpoint: env['S3_ENDPOINT'] } : {}),
    region: env['AWS_REGION'] ?? env['S3_REGION'] ?? 'us-east-1',
    // From the given environment when there; otherwise the SDK's own chain (process env, files, instance roles).
    ...(env['AWS_ACCESS_KEY_ID'] && env['AWS_SECRET_ACCESS_KEY']
      ? { credentials: { accessKeyId: env['AWS_ACCESS_KEY_ID'], secretAccessKey: env['AWS_SECRET_ACCESS_KEY'], ...(env['AWS_SESSION_TOKEN'] ? { sessionToken: env['AWS_SESSION_TOKEN'] } : {}) } }
      : {}),
    forcePathStyle: (env['S3_FORCE_PATH_STYLE'] ?? 'true') !== 'false',
    // Streaming uploads with the SDK's default checksums are refused by RGW 16 (411); we verify SHA-256 ourselves.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 4,
  });
}

const MARKER = '.repository';

function status(e: unknown): number | undefined {
  return e instanceof S3ServiceException ? e.$metadata.httpStatusCode : (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

export class S3Store implements Store {
  private readonly client: S3Client;
  private readonly loc: S3Location;
  private readonly tmp: string;
  private readonly usages = new Map<string, Promise<number>>();

  constructor(client: S3Client, loc: S3Location, tmp = path.join(tmpdir(), 'stowage-s3-uploads')) {
    this.client = client;
    this.loc = loc;
    this.tmp = tmp;
  }

  /** Creates the bucket if it is missing and the local upload directory. */
  async open(): Promise<void> {
    await fs.mkdir(this.tmp, { recursive: true, mode: 0o700 });
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.loc.bucket }));
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw translate(e);
    }
  }

  private key(k: ObjectKey): string {
    if (!isValidName(k.type, k.name)) throw new ApiError(400, 'bad-name', `invalid object name for type ${k.type}`);
    return k.type === 'config' ? `${this.loc.prefix}${k.repo}/config` : `${this.loc.prefix}${k.repo}/${k.type}/${k.name}`;
  }

  private async head(key: string): Promise<{ size: number; modified: Date } | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: key }));
      return { size: r.ContentLength ?? 0, modified: r.LastModified ?? new Date(0) };
    } catch (e) {
      if (status(e) === 404) return null;
      throw translate(e);
    }
  }

  async hasRepository(repo: string): Promise<boolean> {
    return (await this.head(`${this.loc.prefix}${repo}/${MARKER}`)) !== null;
  }

  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: this.loc.prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }))
        .catch((e: unknown) => Promise.reject(translate(e)));
      for (const p of r.CommonPrefixes ?? []) {
        const name = p.Prefix!.slice(this.loc.prefix.length, -1);
        if (name !== '_server' && (await this.hasRepository(name))) out.push(name);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async createRepository(repo: string): Promise<'created' | 'exists'> {
    if (await this.hasRepository(repo)) {
      if (await this.head(`${this.loc.prefix}${repo}/config`)) throw new ApiError(409, 'repository-exists', `repository ${repo} already exists`);
      return 'exists';
    }
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.loc.bucket, Key: `${this.loc.prefix}${repo}/${MARKER}`, Body: '', IfNoneMatch: '*' }));
    } catch (e) {
      if (status(e) !== 412) throw translate(e);
    }
    return 'created';
  }

  async put(k: ObjectKey, body: AsyncIterable<Uint8Array>, length: number): Promise<PutOutcome> {
    const key = this.key(k);
    if (!(await this.hasRepository(k.repo))) throw noRepository(k.repo);
    const tmp = path.join(this.tmp, randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let received = 0;
    try {
      const fh = await fs.open(tmp, 'wx', 0o600);
      try {
        for await (const chunk of body) {
          received += chunk.length;
          if (received > length) throw new ApiError(400, 'length-mismatch', `body is longer than its Content-Length (${length})`);
          hash.update(chunk);
          await fh.write(chunk);
        }
      } finally {
        await fh.close();
      }
      if (received < length) throw new ApiError(400, 'length-mismatch', `body ended after ${received} of ${length} bytes`);
      const digest = hash.digest('hex');
      if (k.type !== 'config' && digest !== k.name) {
        if (await this.head(key)) throw new ApiError(409, 'object-exists', 'an object exists under this name with different contents; objects are never overwritten');
        throw new ApiError(400, 'digest-mismatch', 'the SHA-256 of the body is not the object name');
      }
      try {
        await this.client.send(
          new PutObjectCommand({ Bucket: this.loc.bucket, Key: key, Body: createReadStream(tmp), ContentLength: length, IfNoneMatch: '*' }),
        );
      } catch (e) {
        if (status(e) !== 412) throw translate(e);
        // Exists. Same name means same bytes, but for the config, which is compared.
        if (k.type === 'config') {
          const stored = await this.readAll(key);
          if (!stored.equals(await fs.readFile(tmp))) throw new ApiError(409, 'object-exists', 'the repository config exists with different contents');
        }
        return 'exists';
      }
      this.addUsage(k.repo, length);
      return 'created';
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  private async readAll(key: string): Promise<Buffer> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }

  async stat(k: ObjectKey): Promise<StoredObject> {
    const h = await this.head(this.key(k));
    if (!h) {
      if (!(await this.hasRepository(k.repo))) throw noRepository(k.repo);
      throw notFound(`${k.type}/${k.name}`);
    }
    return { name: k.name, size: h.size, receivedAt: h.modified };
  }

  async read(k: ObjectKey, start: number, end: number): Promise<Readable> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: this.key(k), Range: `bytes=${start}-${end}` }));
      return r.Body as Readable;
    } catch (e) {
      if (status(e) === 404) throw notFound(`${k.type}/${k.name}`);
      throw translate(e);
    }
  }

  async list(repo: string, type: ObjectType, after: string | null, limit: number): Promise<ListPage> {
    if (!(await this.hasRepository(repo))) throw noRepository(repo);
    if (type === 'config') {
      const h = await this.head(`${this.loc.prefix}${repo}/config`);
      return { objects: h && after === null ? [{ name: 'config', size: h.size, receivedAt: h.modified }] : [], next: null };
    }
    const base = `${this.loc.prefix}${repo}/${type}/`;
    const objects: StoredObject[] = [];
    let startAfter = after ? base + after : undefined;
    let truncated = true;
    while (objects.length < limit && truncated) {
      const r = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: base, MaxKeys: Math.min(1000, limit - objects.length), ...(startAfter ? { StartAfter: startAfter } : {}) }))
        .catch((e: unknown) => Promise.reject(translate(e)));
      for (const o of r.Contents ?? []) {
        const name = o.Key!.slice(base.length);
        if (isValidName(type, name)) objects.push({ name, size: o.Size ?? 0, receivedAt: o.LastModified ?? new Date(0) });
        startAfter = o.Key!;
      }
      truncated = !!r.IsTruncated && (r.Contents?.length ?? 0) > 0;
    }
    return { objects, next: truncated && objects.length > 0 ? objects.at(-1)!.name : null };
  }

  async remove(k: ObjectKey): Promise<boolean> {
    const key = this.key(k);
    if (!(await this.hasRepository(k.repo))) throw noRepository(k.repo);
    const h = await this.head(key);
    if (!h) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: key })).catch((e: unknown) => Promise.reject(translate(e)));
    this.addUsage(k.repo, -h.size);
    return true;
  }

  async usage(repo: string): Promise<number> {
    let u = this.usages.get(repo);
    if (!u) {
      u = this.sumSizes(`${this.loc.prefix}${repo}/`);
      this.usages.set(repo, u);
      u.catch(() => this.usages.delete(repo));
    }
    return await u;
  }

  private async sumSizes(prefix: string): Promise<number> {
    let total = 0;
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) total += o.Size ?? 0;
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return total;
  }

  private addUsage(repo: string, delta: number): void {
    const u = this.usages.get(repo);
    if (u) this.usages.set(repo, u.then((n) => n + delta));
  }

  sharedState(): StateLocation {
    return { s3: this.client, bucket: this.loc.bucket, prefix: this.loc.prefix };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** An S3 failure as the API reports it: the store is unavailable (503, retryable), never a silent success. */
function translate(e: unknown): Error {
  if (e instanceof ApiError) return e;
  const code = status(e);
  const message = (e as Error).message ?? String(e);
  return new ApiError(503, 'store-unavailable', `the object store failed${code ? ` (HTTP ${code})` : ''}: ${message}`, { 'retry-after': '2' });
}
