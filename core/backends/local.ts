/**
 * A repository in a local directory. Layout: `config`, `keys/NAME`,
 * `data/NA/NAME` (sharded by the name's first two hex digits), `index/NAME`,
 * `snapshots/NAME`, `locks/NAME`. Files are 0600 and directories 0700: a
 * repository holds key files.
 *
 * Writes go to a temporary file in the target directory, are fsynced, then
 * linked to their final name (link fails if the name exists, which makes the
 * create-only rule atomic where rename would overwrite), then the directory
 * is fsynced.
 */
import { randomBytes } from 'node:crypto';
import * as fss from 'node:fs';
import { constants as fsc } from 'node:fs';
import { promisify } from 'node:util';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Backend, type Body, type ByteRange, type Handle, type ObjectInfo, type ObjectType, bodyParts, describe, isValidName, OBJECT_TYPES } from '../backend.ts';
import { BackendError, IntegrityError, NoSpaceError, ObjectExistsError, ObjectNotFoundError, RepositoryExistsError, errnoCode, isStowageError } from '../errors.ts';
import { DIRECT_MIN, openDirect } from '../direct-write.ts';
import { syncDir, writeAll } from '../durable.ts';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const TMP_PREFIX = '.tmp-';

/** Open pack files kept for range reads: a restore reads many blobs from each pack. */
const OPEN_FILES = 32;

/** A raw descriptor rather than a FileHandle: an instance never closed must not make the GC close and warn. */
interface CachedHandle {
  readonly fd: Promise<number>;
  refs: number;
}

const openFd = promisify(fss.open);
const readFd = promisify(fss.read);
const closeFd = promisify(fss.close);

export class LocalBackend implements Backend {
  /** Temporary files being written by any instance, so an interrupted process can remove them. */
  private static readonly temps = new Set<string>();

  /** Removes the temporary files of writes in flight; for a signal handler, just before exit. */
  static abandonWrites(): void {
    for (const t of LocalBackend.temps) fss.rmSync(t, { force: true });
    LocalBackend.temps.clear();
  }

  readonly location: string;
  readonly isLocal = true;
  private readonly root: string;
  private readonly handles = new Map<string, CachedHandle>();
  /** Whether data packs are written with O_DIRECT; off once the file system refuses it, or by the constructor's option. */
  private direct: boolean;

  constructor(root: string, opts: { directWrites?: boolean } = {}) {
    this.root = path.resolve(root);
    this.location = this.root;
    this.direct = opts.directWrites ?? true;
  }

  async create(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    const entries = await fs.readdir(this.root);
    if (entries.includes('config')) throw new RepositoryExistsError(this.location);
    if (entries.length > 0) {
      throw new RepositoryExistsError(`${this.location} (the directory is not empty)`);
    }
    for (const t of OBJECT_TYPES) {
      if (t !== 'config') await fs.mkdir(path.join(this.root, t), { mode: DIR_MODE });
    }
  }

  filePath(h: Handle): string {
    return this.pathOf(h);
  }

  private pathOf(h: Handle): string {
    if (!isValidName(h.type, h.name)) throw new BackendError(`invalid object name ${JSON.stringify(h.name)} for type ${h.type}`);
    if (h.type === 'config') return path.join(this.root, 'config');
    if (h.type === 'data') return path.join(this.root, 'data', h.name.slice(0, 2), h.name);
    return path.join(this.root, h.type, h.name);
  }

  async save(h: Handle, data: Body): Promise<void> {
    const target = this.pathOf(h);
    const dir = path.dirname(target);
    // A full disk can refuse the directory too: that is the same no-space error as refusing the file.
    if (h.type === 'data') await fs.mkdir(dir, { recursive: true, mode: DIR_MODE }).catch((e: unknown) => Promise.reject(translate(e, h)));
    const tmp = path.join(dir, TMP_PREFIX + randomBytes(8).toString('hex'));
    LocalBackend.temps.add(tmp);
    try {
      const parts = bodyParts(data);
      const size = parts.reduce((n, p) => n + p.length, 0);
      if (!(h.type === 'data' && size >= DIRECT_MIN && (await this.writeDirect(tmp, parts)))) {
        const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE);
        try {
          await writeAll(fh, parts);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      try {
        await fs.link(tmp, target);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
        await this.checkSame(h, target, data);
      }
      await syncDir(dir);
    } catch (e) {
      throw translate(e, h);
    } finally {
      await fs.rm(tmp, { force: true });
      LocalBackend.temps.delete(tmp);
    }
  }

  /**
   * Writes a pack to `tmp` around the page cache (core/direct-write.ts) and
   * fsyncs it; false, with no file left, where the file system does not
   * take O_DIRECT, which this backend then stops trying.
   */
  private async writeDirect(tmp: string, parts: readonly Uint8Array[]): Promise<boolean> {
    const direct = this.direct ? await openDirect(tmp, FILE_MODE) : null;
    if (!direct) {
      this.direct = false;
      return false;
    }
    const { fh, writer } = direct;
    try {
      for (const p of parts) await writer.append(p);
      await writer.end();
      // O_DIRECT bypasses the page cache, not the drive's write cache, nor the file's metadata.
      await fh.sync();
    } finally {
      writer.release();
      await fh.close();
    }
    return true;
  }

  private async checkSame(h: Handle, target: string, data: Body): Promise<void> {
    const existing = await fs.readFile(target);
    if (!existing.equals(Buffer.concat(bodyParts(data)))) throw new ObjectExistsError(describe(h));
  }

  async load(h: Handle, range?: ByteRange): Promise<Buffer> {
    const p = this.pathOf(h);
    try {
      if (!range) return await fs.readFile(p);
      return await this.withHandle(p, async (fd) => {
        const buf = Buffer.allocUnsafe(range.length);
        let got = 0;
        while (got < range.length) {
          const { bytesRead } = await readFd(fd, buf, got, range.length - got, range.offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < range.length) {
          throw new IntegrityError(describe(h), `short read: wanted ${range.length} bytes at offset ${range.offset}, object ends after ${got}`);
        }
        return buf;
      });
    } catch (e) {
      throw translate(e, h);
    }
  }

  /** Runs fn with an open handle of p, kept open for the next reads (objects never change). */
  private async withHandle<T>(p: string, fn: (fd: number) => Promise<T>): Promise<T> {
    let entry = this.handles.get(p);
    if (!entry) {
      const fd = openFd(p, 'r');
      entry = { fd, refs: 0 };
      this.handles.set(p, entry);
      fd.catch(() => this.handles.delete(p));
      this.evictHandles();
    } else {
      // Map order is use order: move to the back.
      this.handles.delete(p);
      this.handles.set(p, entry);
    }
    entry.refs++;
    try {
      return await fn(await entry.fd);
    } finally {
      entry.refs--;
      this.evictHandles();
    }
  }

  private evictHandles(): void {
    for (const [p, e] of this.handles) {
      if (this.handles.size <= OPEN_FILES) break;
      if (e.refs > 0) continue;
      this.handles.delete(p);
      void e.fd.then((fd) => closeFd(fd)).catch(() => {});
    }
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    try {
      const st = await fs.stat(this.pathOf(h));
      return { name: h.name, size: st.size, receivedAt: st.mtime };
    } catch (e) {
      throw translate(e, h);
    }
  }

  async *list(type: ObjectType): AsyncIterable<ObjectInfo> {
    if (type === 'config') {
      try {
        yield await this.stat({ type, name: 'config' });
      } catch (e) {
        if (!(e instanceof ObjectNotFoundError)) throw e;
      }
      return;
    }
    const base = path.join(this.root, type);
    const dirs = type === 'data' ? (await readdirOrEmpty(base)).filter((d) => /^[0-9a-f]{2}$/.test(d)).map((d) => path.join(base, d)) : [base];
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!isValidName(type, name)) continue;
        try {
          const st = await fs.stat(path.join(dir, name));
          yield { name, size: st.size, receivedAt: st.mtime };
        } catch (e) {
          if (errnoCode(e) !== 'ENOENT') throw translate(e, { type, name });
        }
      }
    }
  }

  async remove(h: Handle): Promise<void> {
    const p = this.pathOf(h);
    const cached = this.handles.get(p);
    if (cached) {
      this.handles.delete(p);
      void cached.fd.then((fd) => closeFd(fd)).catch(() => {});
    }
    try {
      await fs.rm(p, { force: true });
      await syncDir(path.dirname(p));
    } catch (e) {
      throw translate(e, h);
    }
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((e) => e.fd.then((fd) => closeFd(fd)).catch(() => {})));
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
}


function translate(e: unknown, h: Handle): Error {
  if (isStowageError(e)) return e;
  switch (errnoCode(e)) {
    case 'ENOENT':
      return new ObjectNotFoundError(describe(h));
    case 'ENOSPC':
    case 'EDQUOT':
      return new NoSpaceError(`no space left on the repository's disk while writing ${describe(h)}; free space and run again (nothing partial was kept)`, { cause: e });
    default:
      return new BackendError(`local repository: ${describe(h)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
