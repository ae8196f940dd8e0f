/**
 * The archiver turns paths on disk into trees of blobs.
 *
 * The root tree mirrors absolute paths, as restic's does: backing up
 * /srv/app and /etc/app gives a root with "srv" and "etc", each holding the
 * way down to the backed-up directory. Directories are walked depth first;
 * entries of one directory are handled a few at a time, file contents flow
 * through the chunker into the seal pool, and a directory's tree is saved once
 * all its entries are. With a parent snapshot, a file whose size, mtime,
 * ctime and inode are unchanged keeps its old content list without being
 * read.
 *
 * An entry that cannot be read is left out and recorded as an error: the
 * snapshot is then partial (exit code 3), and every other entry is kept.
 */
import { constants as fsc, type BigIntStats } from 'node:fs';
import * as fss from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type Chunker, createChunker } from './chunker.ts';
import { errnoCode, isStowageError } from './errors.ts';
import { type Counters, type ProgressReporter, newCounters, silentProgress } from './progress.ts';
import type { Repository } from './repository.ts';
import { mapLimit } from './repository.ts';
import { PoolClosedError, type SealPool } from './seal-pool.ts';
import { type TreeNode, loadTree, nameBytes, nameFields, sameNode, saveTree, targetFields } from './tree.ts';
import { type XattrMap, readXattrs } from './xattr.ts';
import { type IdNames, loadIdNames } from './idnames.ts';
import { Semaphore } from './semaphore.ts';

/** Bytes read from a file at once. */
const READ_BLOCK = 4 * 1024 * 1024;
/**
 * Files up to this size, and all metadata, are read with synchronous calls.
 * Each asynchronous call is a round trip through libuv's thread pool, and
 * for thousands of small files those hand-offs (not the disk) dominated: a
 * strace of 5,000 files counted 166,000 futex calls. Large files are read
 * asynchronously in big blocks, where the hand-off is noise.
 */
const SYNC_READ_MAX = 1024 * 1024;
/** Large files read at the same time (small ones are read synchronously). */
const FILE_SLOTS = 2;
/** Entries of one directory handled at the same time. */
const ENTRY_CONCURRENCY = 16;

/**
 * What can be learnt of the sources before the repository is open: their
 * extended attributes (one getfattr run) and, for progress, their totals.
 * A command starts it first, so that it runs while the passphrase's key is
 * derived, which takes half a second by design.
 */
export interface SourceSurvey {
  readonly xattrs: Promise<XattrMap | null>;
  /** Files and bytes under the sources, when the walk is done. */
  readonly totals: Promise<{ files: number; bytes: number } | null>;
  /** Ends the totals walk early (the backup finished first). */
  stop(): void;
}

export function surveySources(paths: readonly string[], opts: { xattrs?: boolean } = {}): SourceSurvey {
  const sources = normaliseSources(paths);
  let stopped = false;
  const xattrs = opts.xattrs === false ? Promise.resolve(new Map() as XattrMap) : loadXattrs(sources);
  const totals = walkTotals(sources, () => stopped);
  xattrs.catch(() => {});
  return { xattrs, totals, stop: () => void (stopped = true) };
}

async function loadXattrs(sources: readonly string[]): Promise<XattrMap | null> {
  const all: XattrMap = new Map();
  for (const s of sources) {
    const map = await readXattrs(s);
    if (!map) return null;
    for (const [k, v] of map) all.set(k, v);
  }
  return all;
}

/** Walks with lstat only, yielding between directories so that other work goes on. */
async function walkTotals(sources: readonly string[], stopped: () => boolean): Promise<{ files: number; bytes: number } | null> {
  let files = 0;
  let bytes = 0;
  const stack = [...sources];
  while (stack.length > 0) {
    if (stopped()) return null;
    const p = stack.pop()!;
    let st: fss.Stats;
    try {
      st = fss.lstatSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      try {
        for (const n of fss.readdirSync(p)) stack.push(path.join(p, n));
      } catch {
        // the archiver reports unreadable directories
      }
      await new Promise((r) => setImmediate(r));
    } else {
      files++;
      if (st.isFile()) bytes += st.size;
    }
  }
  return { files, bytes };
}

export interface ArchiveOptions {
  readonly repo: Repository;
  readonly pool: SealPool;
  /** Root tree of the parent snapshot, for the unchanged-file skip. */
  readonly parentTree?: string;
  readonly progress?: ProgressReporter;
  /** True to leave an entry out; gets the snapshot path ("/srv/x"). */
  readonly exclude?: (snapshotPath: string) => boolean;
  /** Read extended attributes (default true). */
  readonly xattrs?: boolean;
  /** A survey of these sources started earlier (see surveySources); made here if absent. */
  readonly survey?: SourceSurvey;
}

export interface ArchiveError {
  readonly path: string;
  readonly message: string;
}

export interface ArchiveStats {
  files: number;
  dirs: number;
  bytes: number;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
}

export interface ArchiveResult {
  readonly tree: string;
  /** The node of each backed-up path, by its absolute path (a container backup places them elsewhere). */
  readonly sources: ReadonlyMap<string, TreeNode>;
  readonly stats: ArchiveStats;
  readonly errors: readonly ArchiveError[];
}

/** A directory of the parent snapshot: its tree's ID and its nodes by name (latin1 of the name bytes). */
interface ParentDir {
  readonly id: string;
  readonly children: Map<string, TreeNode>;
}

interface Trie {
  target: boolean;
  children: Map<string, Trie>;
}

/** Absolute, normalised, without duplicates or paths inside other given paths. */
export function normaliseSources(paths: readonly string[]): string[] {
  const abs = [...new Set(paths.map((p) => path.resolve(p)))].sort();
  return abs.filter((p) => !abs.some((q) => q !== p && (q === '/' || p.startsWith(q + '/'))));
}

export class Archiver {
  private readonly repo: Repository;
  private readonly pool: SealPool;
  private readonly opts: ArchiveOptions;
  private readonly progress: ProgressReporter;
  private readonly counters: Counters = newCounters();
  private readonly stats: ArchiveStats = { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesChanged: 0, filesUnchanged: 0 };
  private readonly errors: ArchiveError[] = [];
  private readonly fileSlots = new Semaphore(FILE_SLOTS);
  /** Read buffers, one per file slot, reused: the chunker copies what it keeps. */
  private readonly readBuffers: Buffer[] = [];
  private readonly hardlinks = new Map<string, Promise<string[]>>();
  private xattrs: XattrMap = new Map();
  private readonly sourceNodes = new Map<string, TreeNode>();
  /** The repository failure that ends this run; after it, nothing is a per-file problem any more. */
  private fatal: unknown = null;
  private names: IdNames = { users: new Map(), groups: new Map() };

  constructor(opts: ArchiveOptions) {
    this.repo = opts.repo;
    this.pool = opts.pool;
    this.opts = opts;
    this.progress = opts.progress ?? silentProgress;
  }

  async run(paths: readonly string[]): Promise<ArchiveResult> {
    const sources = normaliseSources(paths);
    const root: Trie = { target: false, children: new Map() };
    for (const p of sources) {
      let node = root;
      for (const part of p.split('/').filter(Boolean)) {
        let next = node.children.get(part);
        if (!next) node.children.set(part, (next = { target: false, children: new Map() }));
        node = next;
      }
      node.target = true;
    }
    this.names = await loadIdNames();
    const survey = this.opts.survey ?? surveySources(sources, { xattrs: this.opts.xattrs !== false });
    const xattrs = await survey.xattrs;
    if (xattrs) this.xattrs = xattrs;
    else this.progress.warn('extended attributes are not saved: install the "attr" package (getfattr) to save them');
    void survey.totals.then((t) => {
      if (!t) return;
      this.counters.totalFiles = t.files;
      this.counters.totalBytes = t.bytes;
    });
    this.progress.phase('backup');
    const parentRoot = this.opts.parentTree ? await this.parentChildren(this.opts.parentTree) : null;
    try {
      const tree = root.target ? await this.saveDirContents(Buffer.from('/'), '', parentRoot) : await this.saveTrie(root, '', parentRoot);
      this.progress.update(this.counters);
      return { tree, sources: this.sourceNodes, stats: this.stats, errors: this.errors };
    } finally {
      // Totals only serve the progress line: a walk still going when the backup is done is of no use.
      survey.stop();
    }
  }

  private recordError(snapPath: string, e: unknown): void {
    if (this.fatal) return;
    const message = e instanceof Error ? e.message : String(e);
    this.errors.push({ path: snapPath || '/', message });
    this.counters.errors++;
    this.progress.warn(`${snapPath || '/'}: ${message}`);
  }

  private async parentChildren(treeId: string): Promise<ParentDir | null> {
    try {
      const tree = await loadTree(this.repo, treeId);
      return { id: treeId, children: new Map(tree.nodes.map((n) => [nameBytes(n).toString('latin1'), n])) };
    } catch (e) {
      // A parent we cannot read only costs re-reading files.
      this.progress.warn(`parent tree ${treeId.slice(0, 12)} cannot be read (${e instanceof Error ? e.message : String(e)}); reading all files`);
      return null;
    }
  }

  /**
   * Saves a directory's tree, unless every node equals the parent's: then the
   * tree is the parent's, which is stored already, and is not encoded and
   * hashed again (most directories of a nightly backup).
   */
  private async saveDirTree(nodes: readonly TreeNode[], parent: ParentDir | null): Promise<string> {
    if (parent && nodes.length === parent.children.size && this.repo.hasBlob(parent.id)) {
      const same = nodes.every((n) => {
        const p = parent.children.get(nameBytes(n).toString('latin1'));
        return p !== undefined && sameNode(n, p);
      });
      if (same) return parent.id;
    }
    return await saveTree(this.repo, nodes);
  }

  private async saveTrie(node: Trie, fsDir: string, parent: ParentDir | null): Promise<string> {
    const nodes: TreeNode[] = [];
    for (const [name, child] of node.children) {
      const childPath = `${fsDir}/${name}`;
      const pnode = parent?.children.get(Buffer.from(name).toString('latin1'));
      if (child.target) {
        const n = await this.saveEntry(Buffer.from(childPath), childPath, Buffer.from(name), pnode);
        if (n) {
          nodes.push(n);
          this.sourceNodes.set(childPath, n);
        }
        continue;
      }
      let st: BigIntStats;
      try {
        st = fss.lstatSync(childPath, { bigint: true });
      } catch (e) {
        this.recordError(childPath, e);
        continue;
      }
      const sub = pnode?.type === 'dir' && pnode.subtree ? await this.parentChildren(pnode.subtree) : null;
      const subtree = await this.saveTrie(child, childPath, sub);
      nodes.push({ ...this.meta(Buffer.from(name), st, childPath), type: 'dir', subtree });
    }
    return await saveTree(this.repo, nodes);
  }

  private meta(name: Buffer, st: BigIntStats, snapPath: string): Omit<TreeNode, 'type'> {
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    const user = this.names.users.get(uid);
    const group = this.names.groups.get(gid);
    const xattrs = this.xattrs.get(snapPath);
    return {
      ...nameFields(name),
      mode: Number(st.mode) & 0o7777,
      uid,
      gid,
      ...(user !== undefined ? { user } : {}),
      ...(group !== undefined ? { group } : {}),
      mtime: st.mtimeNs.toString(),
      ctime: st.ctimeNs.toString(),
      inode: st.ino.toString(),
      device: st.dev.toString(),
      links: Number(st.nlink),
      ...(xattrs && xattrs.length > 0 ? { xattrs } : {}),
    };
  }

  private async saveDirContents(fsDir: Buffer, snapDir: string, parent: ParentDir | null): Promise<string> {
    let names: Buffer[];
    try {
      names = fss.readdirSync(fsDir, { encoding: 'buffer' });
    } catch (e) {
      this.recordError(snapDir, e);
      names = [];
    }
    names.sort(Buffer.compare);
    const sep = fsDir.length > 0 && fsDir[fsDir.length - 1] === 0x2f ? Buffer.alloc(0) : Buffer.from('/');
    const nodes = await mapLimit(names, ENTRY_CONCURRENCY, (name) =>
      this.saveEntry(Buffer.concat([fsDir, sep, name]), `${snapDir}/${name.toString('utf8')}`, name, parent?.children.get(name.toString('latin1'))),
    );
    return await this.saveDirTree(
      nodes.filter((n): n is TreeNode => n !== null),
      parent,
    );
  }

  private async saveEntry(fsPath: Buffer, snapPath: string, name: Buffer, parentNode: TreeNode | undefined): Promise<TreeNode | null> {
    if (this.opts.exclude?.(snapPath)) return null;
    let st: BigIntStats;
    try {
      st = fss.lstatSync(fsPath, { bigint: true });
    } catch (e) {
      this.recordError(snapPath, e);
      return null;
    }
    const base = this.meta(name, st, snapPath);
    if (st.isDirectory()) {
      const sub = parentNode?.type === 'dir' && parentNode.subtree ? await this.parentChildren(parentNode.subtree) : null;
      const subtree = await this.saveDirContents(fsPath, snapPath, sub);
      this.stats.dirs++;
      this.counters.dirs++;
      return { ...base, type: 'dir', subtree };
    }
    if (st.isSymbolicLink()) {
      try {
        const target = fss.readlinkSync(fsPath, { encoding: 'buffer' });
        this.countFile(0, snapPath);
        return { ...base, type: 'symlink', ...targetFields(target) };
      } catch (e) {
        this.recordError(snapPath, e);
        return null;
      }
    }
    if (st.isFile()) return await this.saveFileNode(fsPath, snapPath, st, base, parentNode);
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      this.countFile(0, snapPath);
      return { ...base, type: st.isCharacterDevice() ? 'chardev' : 'blockdev', rdev: st.rdev.toString() };
    }
    this.progress.warn(`${snapPath}: skipped ${st.isFIFO() ? 'FIFO' : 'socket'} (its contents are not data)`);
    return null;
  }

  private countFile(bytes: number, snapPath: string): void {
    this.stats.files++;
    this.stats.bytes += bytes;
    this.counters.files++;
    this.counters.bytes += bytes;
    this.progress.update(this.counters, snapPath);
  }

  private unchanged(st: BigIntStats, p: TreeNode | undefined): p is TreeNode & { content: readonly string[] } {
    return (
      p !== undefined &&
      p.type === 'file' &&
      p.content !== undefined &&
      p.size === Number(st.size) &&
      p.mtime === st.mtimeNs.toString() &&
      p.ctime === st.ctimeNs.toString() &&
      p.inode === st.ino.toString() &&
      p.content.every((id) => this.repo.hasBlob(id))
    );
  }

  private async saveFileNode(fsPath: Buffer, snapPath: string, st: BigIntStats, base: Omit<TreeNode, 'type'>, parentNode: TreeNode | undefined): Promise<TreeNode | null> {
    if (this.unchanged(st, parentNode)) {
      this.stats.filesUnchanged++;
      this.countFile(Number(st.size), snapPath);
      return { ...base, type: 'file', size: Number(st.size), content: parentNode.content };
    }
    if (parentNode) this.stats.filesChanged++;
    else this.stats.filesNew++;
    try {
      const linkKey = st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
      let content: Promise<{ ids: string[]; size: number }>;
      const existing = linkKey ? this.hardlinks.get(linkKey) : undefined;
      if (existing) content = existing.then((ids) => ({ ids, size: Number(st.size) }));
      else {
        content = this.readContent(fsPath, snapPath, st);
        if (linkKey) this.hardlinks.set(linkKey, content.then((c) => c.ids));
      }
      const { ids, size } = await content;
      this.countFile(size, snapPath);
      return { ...base, type: 'file', size, content: ids };
    } catch (e) {
      // The repository failing (server down, quota, refused) ends the run; only reading the file is this file's
      // problem. Once the run is ending, what fails in files still in flight (their chunks' sealing is torn down)
      // follows the first failure rather than being reported on its own.
      if (isStowageError(e) || this.fatal || e instanceof PoolClosedError) {
        this.fatal ??= e;
        throw e;
      }
      this.recordError(snapPath, e);
      return null;
    }
  }

  private async readContent(fsPath: Buffer, snapPath: string, st: BigIntStats): Promise<{ ids: string[]; size: number }> {
    const { stores, size } = await this.fileSlots.run(() => this.readChunks(fsPath, snapPath, Number(st.size)));
    const ids = await Promise.all(stores);
    return { ids: ids.map((id) => id.toString('hex')), size };
  }

  /**
   * Reads a file block by block through its chunker into the pool. Each
   * block's chunks are in the pool's arena before the next block is read, so
   * a reader holds no more than the arena allows, whatever the file's size;
   * it returns (freeing its slot for the next file) once its last chunks are
   * in.
   */
  private async readChunks(fsPath: Buffer, snapPath: string, expected: number): Promise<{ stores: Promise<Buffer>[]; size: number }> {
    const fh = expected <= SYNC_READ_MAX ? SyncFile.open(fsPath) : await AsyncFile.open(fsPath);
    const buf = this.readBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BLOCK);
    try {
      let pos = 0;
      let chunker: Chunker | null = null;
      const stores: Promise<Buffer>[] = [];
      for (;;) {
        // Ask for one byte more than the size: a file that grew is read to its end.
        const want = Math.max(Math.min(READ_BLOCK, expected - pos + 1), Math.min(64 * 1024, READ_BLOCK));
        const got = await readFully(fh, buf, want, pos);
        const block = buf.subarray(0, got);
        chunker ??= createChunker(this.repo.chunkPolicy.choose(snapPath, expected, block).params);
        pos += got;
        stores.push(...(await this.pool.feed(chunker, block)));
        if (got < want) {
          stores.push(...(await this.pool.feed(chunker, null)));
          return { stores, size: pos };
        }
      }
    } finally {
      this.readBuffers.push(buf);
      await fh.close();
    }
  }
}

interface OpenFile {
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW;

class SyncFile implements OpenFile {
  private readonly fd: number;
  private constructor(fd: number) {
    this.fd = fd;
  }
  static open(p: Buffer): SyncFile {
    try {
      return new SyncFile(fss.openSync(p, READ_FLAGS | fsc.O_NOATIME));
    } catch (e) {
      // O_NOATIME needs ownership or CAP_FOWNER; without them, open without it rather than fail.
      if (errnoCode(e) !== 'EPERM') throw e;
      return new SyncFile(fss.openSync(p, READ_FLAGS));
    }
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return fss.readSync(this.fd, buf, offset, length, position);
  }
  async close(): Promise<void> {
    fss.closeSync(this.fd);
  }
}

class AsyncFile implements OpenFile {
  private readonly fh: fs.FileHandle;
  private constructor(fh: fs.FileHandle) {
    this.fh = fh;
  }
  static async open(p: Buffer): Promise<AsyncFile> {
    try {
      return new AsyncFile(await fs.open(p, READ_FLAGS | fsc.O_NOATIME));
    } catch (e) {
      if (errnoCode(e) !== 'EPERM') throw e;
      return new AsyncFile(await fs.open(p, READ_FLAGS));
    }
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(buf, offset, length, position)).bytesRead;
  }
  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function readFully(f: OpenFile, buf: Buffer, want: number, position: number): Promise<number> {
  let got = 0;
  while (got < want) {
    const n = await f.read(buf, got, want - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
