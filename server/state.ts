/**
 * Where a server keeps its own state (token hashes, quotas, client
 * certificates and their CA): files in DATA/state by default, or, with an
 * S3 store, objects under `PREFIX/_server/` in the same bucket, so that
 * several `serve` processes behind one address share it (each caches what it
 * read for a few seconds; see docs/server-api.md). Writes are
 * compare-and-swap, so two `token add` at once lose nothing.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export interface StateDoc {
  /** How long a reader may trust what it read before looking again. */
  readonly recheckMs: number;
  read(): Promise<{ text: string; version: string } | null>;
  /** The stored version tag, or null when absent: a cheap change probe. */
  version(): Promise<string | null>;
  /** Writes if the stored version is still `expect` (null: only if absent); false on a conflict. */
  write(text: string, expect: string | null): Promise<boolean>;
}

/** A state directory, or a bucket and prefix of an S3 store. */
export type StateLocation = string | { readonly s3: S3Client; readonly bucket: string; readonly prefix: string };

/** Shared state is re-read after this long: a token revoked through one server is refused by all within it. */
export const SHARED_STATE_TTL_MS = 5000;

export function stateDoc(loc: StateLocation, name: string): StateDoc {
  return typeof loc === 'string' ? new FileDoc(path.join(loc, name)) : new S3Doc(loc.s3, loc.bucket, `${loc.prefix}_server/${name}`);
}

class FileDoc implements StateDoc {
  readonly recheckMs = 1000;
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  async version(): Promise<string | null> {
    try {
      const st = await fs.stat(this.file);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async read(): Promise<{ text: string; version: string } | null> {
    const version = await this.version();
    if (version === null) return null;
    return { text: await fs.readFile(this.file, 'utf8'), version };
  }

  async write(text: string, expect: string | null): Promise<boolean> {
    if ((await this.version()) !== expect) return false;
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${randomBytes(6).toString('hex')}`;
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
    return true;
  }
}

const status = (e: unknown): number | undefined => (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
// RGW refuses a quoted ETag in If-Match (412 always); the bare value works there and elsewhere.
const bare = (etag: string | undefined): string => (etag ?? '').replace(/"/g, '');

class S3Doc implements StateDoc {
  readonly recheckMs = SHARED_STATE_TTL_MS;
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly key: string;

  constructor(s3: S3Client, bucket: string, key: string) {
    this.s3 = s3;
    this.bucket = bucket;
    this.key = key;
  }

  async version(): Promise<string | null> {
    try {
      return bare((await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key }))).ETag);
    } catch (e) {
      if (status(e) === 404) return null;
      throw e;
    }
  }

  async read(): Promise<{ text: string; version: string } | null> {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key }));
      return { text: await r.Body!.transformToString('utf8'), version: bare(r.ETag) };
    } catch (e) {
      if (status(e) === 404) return null;
      throw e;
    }
  }

  async write(text: string, expect: string | null): Promise<boolean> {
    try {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: text, ContentType: 'application/json', ...(expect === null ? { IfNoneMatch: '*' } : { IfMatch: expect }) }),
      );
      return true;
    } catch (e) {
      if (status(e) === 412) return false;
      throw e;
    }
  }
}
