/**
 * The filesystem store: `ROOT/NAME/` per repository, laid out like a local
 * repository (`config`, `keys/`, `data/NA/NAME`, `index/`, `snapshots/`,
 * `locks/`), plus `ROOT/NAME/tmp/` for uploads in flight. An upload is
 * hashed while it is written to tmp, fsynced, checked against its name, then
 * linked to its final name (link fails if the name exists: create-only is
 * atomic) and the directory fsynced. tmp is emptied at start, so a server
 * killed mid-upload leaves nothing behind that a listing could show.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { type ObjectType, OBJECT_TYPES, isValidName } from '../core/backend.ts';
import { ApiError, noRepository, notFound } from './errors.ts';
import type { ListPage, ObjectKey, PutOutcome, Store, StoredObject } from './store.ts';
import { DIRECT_MIN, type DirectWriter, openDirect } from '../core/direct-write.ts';
import { syncDir, writeAll } from '../core/durable.ts';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Bytes gathered before one writev: fewer syscalls than one per socket chunk. */
const WRITE_BATCH = 1 << 20;

export class FsStore implements Store {
  private readonly root: string;
  private readonly usages = new Map<string, Promise<number>>();
  /** Whether data packs are written with O_DIRECT (see openUpload); off once the file system refuses it. */
  private direct = true;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Creates the root and removes uploads left by a server that died mid-write. */
  async open(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    for (const repo of await fs.readdir(this.root)) {
      await fs.rm(path.join(this.root, repo, 'tmp'), { recursive: true, force: true });
      await fs.mkdir(path.join(this.root, repo, 'tmp'), { mode: DIR_MODE }).catch(() => {});
    }
  }

  private repoDir(repo: string): string {
    return path.join(this.root, repo);
  }

  private pathOf(k: ObjectKey): string {
    if (!isValidName(k.type, k.name)) throw new ApiError(400, 'bad-name', `invalid object name for type ${k.type}`);
    const dir = this.repoDir(k.repo);
    if (k.type === 'config') return path.join(dir, 'config');
    if (k.type === 'data') return path.join(dir, 'data', k.name.slice(0, 2), k.name);
    return path.join(dir, k.type, k.name);
  }

  async hasRepository(repo: string): Promise<boolean> {
    try {
      return (await fs.stat(path.join(this.repoDir(repo), 'tmp'))).isDirectory();
    } catch {
      return false;
    }
  }

  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    for (const e of await fs.readdir(this.root, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory() && (await this.hasRepository(e.name))) out.push(e.name);
    }
    return out.sort();
  }

  async createRepository(repo: string): Promise<'created' | 'exists'> {
    const dir = this.repoDir(repo);
    if (await this.hasRepository(repo)) {
      if (await exists(path.join(dir, 'config'))) throw new ApiError(409, 'repository-exists', `repository ${repo} already exists`);
      return 'exists';
    }
    await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
    for (const t of OBJECT_TYPES) {
      if (t !== 'config') await fs.mkdir(path.join(dir, t), { recursive: true, mode: DIR_MODE });
    }
    // tmp last: its presence is what makes the repository exist.
    await fs.mkdir(path.join(dir, 'tmp'), { recursive: true, mode: DIR_MODE });
    await syncDir(this.root);
    return 'created';
  }

  private async requireRepository(repo: string): Promise<void> {
    if (!(await this.hasRepository(repo))) throw noRepository(repo);
  }

  async put(k: ObjectKey, body: AsyncIterable<Uint8Array>, length: number): Promise<PutOutcome> {
    const target = this.pathOf(k);
    await this.requireRepository(k.repo);
    const tmp = path.join(this.repoDir(k.repo), 'tmp', randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let received = 0;
    try {
      const { fh, direct } = await this.openUpload(tmp, k.type === 'data' && length >= DIRECT_MIN);
      try {
        let batch: Uint8Array[] = [];
        let batchBytes = 0;
        for await (const chunk of body) {
          received += chunk.length;
          if (received > length) throw new ApiError(400, 'length-mismatch', `body is longer than its Content-Length (${length})`);
          hash.update(chunk);
          if (direct) {
            await direct.append(chunk);
            continue;
          }
          batch.push(chunk);
          batchBytes += chunk.length;
          if (batchBytes >= WRITE_BATCH) {
            await writeAll(fh, batch);
            batch = [];
            batchBytes = 0;
          }
        }
        if (received < length) throw new ApiError(400, 'length-mismatch', `body ended after ${received} of ${length} bytes`);
        if (direct) await direct.end();
        else await writeAll(fh, batch);
        await fh.sync();
      } finally {
        direct?.release();
        await fh.close();
      }
      const digest = hash.digest('hex');
      if (k.type !== 'config' && digest !== k.name) {
        if (await exists(target)) throw new ApiError(409, 'object-exists', 'an object exists under this name with different contents; objects are never overwritten');
        throw new ApiError(400, 'digest-mismatch', 'the SHA-256 of the body is not the object name');
      }
      if (k.type === 'data') await fs.mkdir(path.dirname(target), { recursive: true, mode: DIR_MODE });
      try {
        await fs.link(tmp, target);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // Same name, and (but for config) the body hashed to it: same bytes.
        if (k.type === 'config' && !(await sameFile(tmp, target))) {
          throw new ApiError(409, 'object-exists', 'the repository config exists with different contents');
        }
        return 'exists';
      }
      await syncDir(path.dirname(target));
      this.addUsage(k.repo, length);
      return 'created';
    } catch (e) {
      throw translate(e);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /**
   * Opens a new upload's temporary file; a data pack with O_DIRECT, around
   * the page cache (core/direct-write.ts: the server keeps bytes for others
   * and reads them back rarely), unless this file system refused it before.
   * A refusal is found on the file's first, probing write, before any of
   * the body is read, and the upload then goes through the cache.
   */
  private async openUpload(tmp: string, wantDirect: boolean): Promise<{ fh: fs.FileHandle; direct: DirectWriter | null }> {
    if (wantDirect && this.direct) {
      const d = await openDirect(tmp, FILE_MODE);
      if (d) return { fh: d.fh, direct: d.writer };
      this.direct = false;
    }
    return { fh: await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE), direct: null };
  }

  async stat(k: ObjectKey): Promise<StoredObject> {
    try {
      const st = await fs.stat(this.pathOf(k));
      return { name: k.name, size: st.size, receivedAt: st.mtime };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.requireRepository(k.repo);
        throw notFound(`${k.type}/${k.name}`);
      }
      throw translate(e);
    }
  }

  async read(k: ObjectKey, start: number, end: number): Promise<Readable> {
    const p = this.pathOf(k);
    // Open first, so a missing object is a 404 rather than a broken stream.
    const fh = await fs.open(p, 'r').catch((e: unknown) => {
      throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? notFound(`${k.type}/${k.name}`) : translate(e);
    });
    return fh.createReadStream({ start, end, highWaterMark: 1 << 20, autoClose: true });
  }

  async list(repo: string, type: ObjectType, after: string | null, limit: number): Promise<ListPage> {
    await this.requireRepository(repo);
    const dir = this.repoDir(repo);
    let names: string[];
    if (type === 'config') {
      names = (await exists(path.join(dir, 'config'))) ? ['config'] : [];
    } else if (type === 'data') {
      names = [];
      for (const shard of (await fs.readdir(path.join(dir, 'data'))).filter((d) => /^[0-9a-f]{2}$/.test(d))) {
        names.push(...(await fs.readdir(path.join(dir, 'data', shard))));
      }
    } else {
      names = await fs.readdir(path.join(dir, type));
    }
    names = names.filter((n) => isValidName(type, n) && (after === null || n > after)).sort();
    const objects: StoredObject[] = [];
    for (const name of names) {
      if (objects.length === limit) break;
      try {
        objects.push(await this.stat({ repo, type, name }));
      } catch (e) {
        // Deleted while we listed: simply gone.
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    }
    const more = names.length > objects.length && objects.length === limit;
    return { objects, next: more ? objects.at(-1)!.name : null };
  }

  async remove(k: ObjectKey): Promise<boolean> {
    const p = this.pathOf(k);
    await this.requireRepository(k.repo);
    let size: number;
    try {
      size = (await fs.stat(p)).size;
      await fs.unlink(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw translate(e);
    }
    await syncDir(path.dirname(p));
    this.addUsage(k.repo, -size);
    return true;
  }

  async usage(repo: string): Promise<number> {
    let u = this.usages.get(repo);
    if (!u) {
      u = duBytes(this.repoDir(repo), 'tmp');
      this.usages.set(repo, u);
      u.catch(() => this.usages.delete(repo));
    }
    return await u;
  }

  private addUsage(repo: string, delta: number): void {
    const u = this.usages.get(repo);
    if (u) this.usages.set(repo, u.then((n) => n + delta));
  }

  async close(): Promise<void> {}
}

/** Bytes of regular files under dir, skipping the top-level entry `skip`. */
async function duBytes(dir: string, skip: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    if (e.name === skip) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await duBytes(p, '');
    else if (e.isFile()) total += (await fs.stat(p)).size;
  }
  return total;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([fs.readFile(a), fs.readFile(b)]);
  return x.equals(y);
}


function translate(e: unknown): Error {
  if (e instanceof ApiError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ApiError(507, 'no-space', "the server's disk is full");
  return e instanceof Error ? e : new Error(String(e));
}

