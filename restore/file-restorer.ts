/**
 * Restores a snapshot's tree, or a part of it, into a directory.
 *
 *   resolve the start node (the root, or the node at --path)
 *   walk its trees: check every name, create directories, list files
 *   for each file, a few at a time:
 *     create it (never through a symlink), then for each blob in order:
 *       read, open and verify the blob (on a worker), then write it
 *     set owner, mode, xattrs, times
 *   create symlinks and hard links
 *   set directory metadata deepest first (writing into a directory changes its mtime)
 *
 * A blob that fails verification stops its file: the bytes before it were
 * verified and stay, nothing after it is written, and the error names the
 * blob and its pack.
 */
import * as fss from 'node:fs';
import * as fs from 'node:fs/promises';
import { BackendError, IntegrityError, NoSpaceError, UnsafePathError, errnoCode, isStowageError } from '../core/errors.ts';
import { type Counters, type ProgressReporter, newCounters, silentProgress } from '../core/progress.ts';
import type { Repository } from '../core/repository.ts';
import { blobIntegrityError, mapLimit } from '../core/repository.ts';
import { FileQueue } from './file-queue.ts';
import type { FileOutcome, LaneBlob } from './file-lane.ts';
import type { RestoreStepRequest, SealPool } from '../core/seal-pool.ts';
import type { RestoreOutcome } from '../core/seal-worker.ts';
import { type TreeNode, findNode, loadTree, nameBytes, targetBytes } from '../core/tree.ts';
import { removeEntry } from '../core/fresh-file.ts';
import { ReadAhead } from './read-ahead.ts';
import { writeXattrs } from '../core/xattr.ts';
import { checkName, splitSnapshotPath } from './safe-name.ts';

export interface FileRestoreOptions {
  readonly repo: Repository;
  readonly pool: SealPool;
  readonly target: string;
  /** Path inside the snapshot to restore instead of everything. */
  readonly path?: string;
  readonly progress?: ProgressReporter;
  /** Restore owners (uid, gid); default: when running as root. */
  readonly owners?: boolean;
  /**
   * Write files of 1 MiB or more around the page cache (O_DIRECT,
   * core/direct-write.ts): less kernel time where filling the cache is dear,
   * but the restore then waits for the disk (docs/operations.md).
   */
  readonly directIo?: boolean;
  /** Packs of a local repository known to be in the page cache (core/pack-warmer.ts): their blobs are read without a thread switch. */
  readonly cachedPacks?: ReadonlySet<string>;
}

export interface RestoreProblem {
  readonly path: string;
  readonly message: string;
  /** True when content is missing or wrong; false for metadata that could not be set. */
  readonly content: boolean;
  readonly code?: string;
}

export interface FileRestoreResult {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  /** Entries that could not be restored fully (metadata or content). */
  readonly problems: readonly RestoreProblem[];
}

interface FileJob {
  readonly path: Buffer;
  readonly display: string;
  readonly node: TreeNode;
}

interface DirJob {
  readonly path: Buffer;
  readonly display: string;
  readonly node: TreeNode | null;
  readonly depth: number;
}

/**
 * Files of a local repository handed to the workers at a time (each worker
 * writes its own one after another); over a network, files restored at a
 * time. With 8 local ones, a worker that finished a small file often had nothing
 * queued and slept until the main thread sent the next: 40,824 small files
 * took 5.4-5.5 s, with 16 or 32 4.6-4.8 s (docs/benchmarks.md).
 */
const FILE_CONCURRENCY = 16;
const REMOTE_FILE_CONCURRENCY = 8;
/** Blobs fetched ahead within one file (over a network). */
const BLOB_PREFETCH = 4;
/** Blobs of one file handed to its worker and not yet written. */
const BLOB_WINDOW = 8;
/** One-blob files over a network: the longest pack range read at once, the widest gap bridged, and ranges read at a time. */
const RANGE_MAX = 16 << 20;
const RANGE_GAP = 1 << 20;
const RANGE_READS = 2;

/** A file's only blob, read already as part of a larger range. */
interface PreloadedBlob {
  readonly pack: string;
  readonly key: Buffer;
  readonly checkId: boolean;
  readonly sealed: Buffer;
  /** Nothing else uses `sealed`: it may be moved to a worker rather than copied. */
  readonly owned?: boolean;
}

export async function restoreFiles(opts: FileRestoreOptions, rootTree: string): Promise<FileRestoreResult> {
  return await new FileRestorer(opts).run(rootTree);
}

class FileRestorer {
  private readonly opts: FileRestoreOptions;
  private readonly progress: ProgressReporter;
  private readonly counters: Counters = newCounters();
  private readonly files: FileJob[] = [];
  private readonly links: FileJob[] = [];
  private readonly symlinks: FileJob[] = [];
  private readonly dirs: DirJob[] = [];
  private readonly problems: RestoreProblem[] = [];
  private readonly owners: boolean;
  private readonly hardlinkFirst = new Map<string, FileJob>();
  /** Files to restore as planning finds them (local repositories). */
  private queue: FileQueue<FileJob> | null = null;

  constructor(opts: FileRestoreOptions) {
    this.opts = opts;
    this.progress = opts.progress ?? silentProgress;
    this.owners = opts.owners ?? process.getuid?.() === 0;
  }

  async run(rootTree: string): Promise<FileRestoreResult> {
    const target = Buffer.from(this.opts.target);
    await fs.mkdir(target, { recursive: true });
    this.progress.phase('planning');
    // From a local repository, files are restored while the rest of the tree is planned (restore/file-queue.ts).
    // Over a network the plan comes first: files of one blob are fetched grouped by where they lie in the packs.
    const queue = this.opts.repo.remote ? null : new FileQueue<FileJob>((f) => f.node.size ?? 0);
    this.queue = queue;
    const restoring = queue ? this.drain(queue) : null;
    // Awaited after planning; a failure before then must not count as unhandled.
    restoring?.catch(() => {});
    try {
      await this.planAll(rootTree, target);
    } catch (e) {
      queue?.abandon();
      await restoring?.catch(() => {});
      throw e;
    }
    this.counters.totalFiles = this.files.length + this.links.length + this.symlinks.length;
    this.counters.totalBytes = this.files.reduce((s, f) => s + (f.node.size ?? 0), 0);
    this.progress.phase('restore');
    if (queue) {
      queue.end();
      await restoring;
    } else {
      // Largest first: one worker writes each file, so a large file started late leaves the other workers idle at the
      // end (a volume's bytes are mostly in a few large files: in the benchmark's data, five files hold 92 %).
      const files = [...this.files].sort((a, b) => (b.node.size ?? 0) - (a.node.size ?? 0));
      // Over a network, more files at once keep the connections busy while each waits.
      const single = files.filter((f) => f.node.content?.length === 1);
      const other = files.filter((f) => f.node.content?.length !== 1);
      await Promise.all([this.restoreSingleBlobFiles(single), mapLimit(other, REMOTE_FILE_CONCURRENCY, (f) => this.restoreRemoteFile(f))]);
    }
    for (const s of this.symlinks) await this.restoreSymlink(s);
    for (const l of this.links) await this.restoreHardlink(l);
    this.dirs.sort((a, b) => b.depth - a.depth);
    for (const d of this.dirs) if (d.node) await this.applyMeta(d.path, d.display, d.node);
    this.progress.update(this.counters);
    return { files: this.counters.files, dirs: this.dirs.length, bytes: this.counters.bytes, problems: this.problems };
  }

  private async planAll(rootTree: string, target: Buffer): Promise<void> {
    const start = await this.resolveStart(rootTree);
    if (start.node === null || start.node.type === 'dir') {
      const subtree = start.node ? start.node.subtree : rootTree;
      if (!subtree) throw new IntegrityError(start.display, 'directory has no subtree');
      if (start.node) this.dirs.push({ path: target, display: start.display, node: start.node, depth: 0 });
      await this.plan(subtree, target, start.display, 1);
    } else {
      this.addLeaf(start.node, Buffer.concat([target, Buffer.from('/'), nameBytes(start.node)]), start.display);
    }
  }

  /** Restores the queue's files, FILE_CONCURRENCY at a time, until it ends; the first failure ends it for all. */
  private async drain(queue: FileQueue<FileJob>): Promise<void> {
    const runner = async (): Promise<void> => {
      for (let job = await queue.take(); job; job = await queue.take()) await this.restoreLocalFile(job);
    };
    await Promise.all(
      Array.from({ length: FILE_CONCURRENCY }, () =>
        runner().catch((e: unknown) => {
          queue.abandon();
          throw e;
        }),
      ),
    );
  }

  private async resolveStart(rootTree: string): Promise<{ node: TreeNode | null; display: string }> {
    if (!this.opts.path) return { node: null, display: '' };
    const parts = splitSnapshotPath(this.opts.path);
    const node = await findNode(this.opts.repo, rootTree, parts);
    return { node, display: parts.map((p) => `/${p}`).join('') };
  }

  private async plan(treeId: string, dir: Buffer, display: string, depth: number): Promise<void> {
    // A file that failed beyond its own problems (a full disk) ends the restore: no point reading further.
    if (this.queue?.abandoned) return;
    const tree = await loadTree(this.opts.repo, treeId);
    const seen = new Set<string>();
    for (const node of tree.nodes) {
      const name = nameBytes(node);
      checkName(name, display);
      const key = name.toString('latin1');
      if (seen.has(key)) throw new UnsafePathError(`tree ${treeId.slice(0, 12)} names "${node.name}" twice in ${display || '/'}`);
      seen.add(key);
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const d = `${display}/${node.name}`;
      if (node.type === 'dir') {
        this.makeDir(p, d);
        this.dirs.push({ path: p, display: d, node, depth });
        if (!node.subtree) throw new IntegrityError(d, 'directory has no subtree');
        await this.plan(node.subtree, p, d, depth + 1);
      } else this.addLeaf(node, p, d);
    }
  }

  private addLeaf(node: TreeNode, p: Buffer, display: string): void {
    const job = { path: p, display, node };
    if (node.type === 'symlink') this.symlinks.push(job);
    else if (node.type === 'file') {
      const key = (node.links ?? 1) > 1 && node.inode ? `${node.device ?? ''}:${node.inode}` : null;
      if (key && this.hardlinkFirst.has(key)) this.links.push(job);
      else {
        if (key) this.hardlinkFirst.set(key, job);
        this.files.push(job);
        this.queue?.push(job);
      }
    } else this.problem(display, `${node.type} not restored: device nodes need mknod, which this restore does not do`, true);
  }

  /** mkdir that refuses to reuse anything but a real directory. */
  private makeDir(p: Buffer, display: string): void {
    try {
      fss.mkdirSync(p, { mode: 0o700 });
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
      const st = fss.lstatSync(p);
      if (!st.isDirectory()) {
        if (st.isSymbolicLink()) throw new UnsafePathError(`${display} exists in the target as a symlink; refusing to restore through it`);
        fss.rmSync(p);
        fss.mkdirSync(p, { mode: 0o700 });
      }
    }
  }

  private problem(display: string, message: string, content = false, code?: string): void {
    this.problems.push({ path: display || '/', message, content, ...(code ? { code } : {}) });
    this.counters.errors++;
    this.progress.warn(`${display}: ${message}`);
  }

  /**
   * Restores a file over a network: this thread reads its blobs (by pack
   * span, PackReads) and one seal worker creates the file, opens, verifies
   * and writes the blobs in order, then sets its metadata (core/seal-worker.ts,
   * RestoreStep), so that no per-file system call passes through this
   * thread and the workers create and fill files in parallel.
   */
  private async restoreRemoteFile(job: FileJob, preloaded?: PreloadedBlob): Promise<void> {
    const { repo, pool } = this.opts;
    const ids = job.node.content ?? [];
    const assigned = pool.assignFile(job.node.size ?? 0);
    const worker = assigned.worker;
    const file = pool.newFile();
    const created = pool.restoreStep(worker, { kind: 'create', file, path: job.path, size: job.node.size ?? 0, direct: this.opts.directIo ?? false });
    // A preloaded blob is the file's only one.
    const reads = preloaded ? null : new PackReads(repo, ids);
    const ahead = reads ? new ReadAhead(ids.length, BLOB_PREFETCH, (i) => reads.sealed(ids[i]!)) : null;
    const sent: { id: string; pack: string; outcome: Promise<RestoreOutcome> }[] = [];
    let pos = 0;
    let stop: { at: number; error: Error } | null = null;
    let settled = 0;
    let closed: RestoreOutcome;
    // Closes the file whatever happened before; it sets the metadata too, which a file cut short gets as well.
    let finished: Promise<RestoreOutcome> | null = null;
    const finish = (): Promise<RestoreOutcome> =>
      (finished ??= pool.restoreStep(worker, {
        kind: 'finish',
        file,
        ...(this.owners ? { owner: { uid: job.node.uid, gid: job.node.gid } } : {}),
        mode: job.node.mode,
        mtime: nsToSeconds(job.node.mtime),
      }));
    // Takes the blobs' outcomes in order, up to (not including) blob n.
    const settleUpTo = async (n: number): Promise<void> => {
      for (; settled < n; settled++) {
        const s = sent[settled]!;
        const o = await s.outcome;
        if ('written' in o) {
          pos += o.written;
          this.counters.bytes += o.written;
          this.progress.update(this.counters, job.display);
        } else if (!stop && 'at' in o && !('failure' in o && o.failure === 'skipped')) stop = { at: o.at, error: outcomeError(o, s.id, s.pack) };
      }
    };
    try {
      for (let i = 0; i < ids.length && !stop; i++) {
        await settleUpTo(i - BLOB_WINDOW + 1);
        if (stop) break;
        const id = ids[i]!;
        let step: RestoreStepRequest;
        let pack: string;
        try {
          const r = preloaded && i === 0 ? preloaded : await ahead!.take();
          pack = r.pack;
          step = { kind: 'blob', file, type: 'data', id: Buffer.from(id, 'hex'), key: r.key, checkId: r.checkId, sealed: r.sealed, sealedOwned: r.owned === true, offset: 0, length: r.sealed.length };
        } catch (e) {
          if (!isStowageError(e)) throw e;
          // The blobs already sent are written first: the file then stops where this one would begin.
          await settleUpTo(sent.length);
          stop ??= { at: pos, error: e };
          break;
        }
        sent.push({ id, pack, outcome: pool.restoreStep(worker, step) });
      }
      // Sent before the blobs' outcomes are in: a worker that has written a small file's only blob closes it at once,
      // without a round trip to this thread in between (the worker skips the blobs after a failed one by itself).
      // (Awaited below; a failure of the pool itself is reported there.)
      if (!stop) finish().catch(() => {});
      await settleUpTo(sent.length);
    } finally {
      await ahead?.settled();
      closed = await finish();
      assigned.done();
    }
    await this.conclude(job, await created, closed, stop);
  }

  /**
   * Restores a file of a local repository whole on one worker
   * (restore/file-lane.ts): the worker reads its blobs from the packs
   * itself, so neither file contents nor per-file system calls pass through
   * this thread, and it reads ahead across its files. A blob missing from
   * the index stops the file there: the blobs before it are written.
   */
  private async restoreLocalFile(job: FileJob): Promise<void> {
    const { repo, pool } = this.opts;
    const ids = job.node.content ?? [];
    const blobs: LaneBlob[] = [];
    let stop: { at: number; error: Error } | null = null;
    for (const id of ids) {
      let f: ReturnType<Repository['blobFile']>;
      try {
        f = repo.blobFile('data', id);
      } catch (e) {
        if (!isStowageError(e)) throw e;
        stop = { at: 0, error: e };
        break;
      }
      if (!f) throw new Error('restoreLocalFile: the repository keeps no pack files');
      blobs.push({ type: 'data', id: Buffer.from(id, 'hex'), key: f.key, checkId: f.checkId, path: f.path, offset: f.offset, length: f.length, cached: this.opts.cachedPacks?.has(f.pack) ?? false });
    }
    const assigned = pool.assignFile(job.node.size ?? 0);
    let reported = 0;
    let outcome: FileOutcome;
    try {
      outcome = await pool.restoreWholeFile(
        assigned.worker,
        {
          path: job.path,
          size: job.node.size ?? 0,
          direct: this.opts.directIo ?? false,
          blobs,
          ...(this.owners ? { owner: { uid: job.node.uid, gid: job.node.gid } } : {}),
          mode: job.node.mode,
          mtime: nsToSeconds(job.node.mtime),
        },
        (bytes) => {
          reported += bytes;
          this.counters.bytes += bytes;
          this.progress.update(this.counters, job.display);
        },
      );
    } finally {
      assigned.done();
    }
    // What progress did not hear of yet.
    this.counters.bytes += outcome.written - reported;
    if (outcome.failed) {
      const o = outcome.failed.outcome;
      const id = ids[outcome.failed.index]!;
      if ('at' in o) stop = { at: o.at, error: outcomeError(o, id, repo.locateBlob('data', id).pack) };
    } else if (stop) stop = { at: outcome.written, error: stop.error }; // the blobs before the missing one are in
    await this.conclude(job, outcome.created, outcome.finished, stop);
  }

  /**
   * Reports how a file's restore ended: created or not, cut short (by a
   * blob, a read or a write), metadata set or not; throws when the failure
   * ends the whole run (a full disk, an unreachable store).
   */
  private async conclude(job: FileJob, created: RestoreOutcome, closed: RestoreOutcome, blobStop: { at: number; error: Error } | null): Promise<void> {
    let stop = blobStop;
    let notCreated: Error | null = null;
    if ('stage' in created) {
      const e = outcomeError(created, '', '');
      if (errnoCode(e) === 'ENOSPC') throw new NoSpaceError(`no space left on the target's disk to create ${job.display}; free space and run the restore again`);
      if (!errnoCode(e)) throw e;
      notCreated = e;
    }
    if ('problem' in closed && closed.problem) this.problem(job.display, `metadata not fully restored: ${closed.problem}`);
    // The last bytes of a file written around the page cache go out at the close: it holds only what made it.
    if ('stage' in closed) stop = { at: Math.min(closed.at, stop?.at ?? closed.at), error: stop?.error ?? outcomeError(closed, '', '') };
    // The file system refused the file (a read-only or immutable directory, say): that file is missing, the rest go on.
    if (notCreated) {
      this.problem(job.display, `not restored: ${notCreated.message}`, true, errnoCode(notCreated));
      return;
    }
    const failure = stop as { at: number; error: Error } | null;
    if (failure) {
      const e = failure.error;
      // Every file after this one would fail the same way: the run ends, saying how to go on.
      if (errnoCode(e) === 'ENOSPC') throw new NoSpaceError(`no space left on the target's disk while writing ${job.display}, which holds only the ${failure.at} bytes before it; free space and run the restore again`);
      if (!(isStowageError(e) || errnoCode(e)) || endsTheRun(e)) throw e;
      this.problem(job.display, `${e.message}; the file holds only the ${failure.at} bytes verified before it`, true, errnoCode(e));
      return;
    }
    this.counters.files++;
    if (job.node.xattrs && job.node.xattrs.length > 0) {
      const problem = await writeXattrs(job.path, job.node.xattrs);
      if (problem) this.problem(job.display, `extended attributes not restored: ${problem}`);
    }
  }

  /**
   * Over a network, files of one blob (most files of most volumes) are read
   * by pack: the blobs of such files that lie near each other in a pack come
   * in one ranged request, not one request each. A range that cannot be read
   * leaves its files to be read one by one, so each reports its own error.
   */
  private async restoreSingleBlobFiles(files: readonly FileJob[]): Promise<void> {
    const { repo } = this.opts;
    const byPack = new Map<string, { job: FileJob; offset: number; length: number; key: Buffer; checkId: boolean }[]>();
    const alone: FileJob[] = [];
    for (const job of files) {
      const id = job.node.content![0]!;
      if (!repo.index.get(id)) {
        alone.push(job);
        continue;
      }
      const loc = repo.locateBlob('data', id);
      let list = byPack.get(loc.pack);
      if (!list) byPack.set(loc.pack, (list = []));
      list.push({ job, offset: loc.offset, length: loc.length, key: loc.key, checkId: loc.checkId });
    }
    const ranges: { pack: string; start: number; end: number; members: { job: FileJob; offset: number; length: number; key: Buffer; checkId: boolean }[] }[] = [];
    for (const [pack, list] of byPack) {
      list.sort((a, b) => a.offset - b.offset);
      let cur: (typeof ranges)[number] | null = null;
      for (const m of list) {
        const end = m.offset + m.length;
        if (cur && end - cur.start <= RANGE_MAX && m.offset - cur.end <= RANGE_GAP) {
          cur.end = Math.max(cur.end, end);
          cur.members.push(m);
        } else ranges.push((cur = { pack, start: m.offset, end, members: [m] }));
      }
    }
    await mapLimit(ranges, RANGE_READS, async (r) => {
      // Files with the same content share one blob: it is read once.
      const pieces = [...new Map(r.members.map((m) => [m.offset, { offset: m.offset, length: m.length }])).values()];
      let bytes: Map<number, Buffer> | null = null;
      try {
        const read = await repo.readPackPieces(r.pack, pieces);
        bytes = new Map(pieces.map((p, i) => [p.offset, read[i]!]));
      } catch (e) {
        if (!isStowageError(e) || endsTheRun(e)) throw e;
      }
      const uses = new Map<number, number>();
      for (const m of r.members) uses.set(m.offset, (uses.get(m.offset) ?? 0) + 1);
      await mapLimit(r.members, REMOTE_FILE_CONCURRENCY, (m) =>
        this.restoreRemoteFile(m.job, bytes ? { pack: r.pack, key: m.key, checkId: m.checkId, sealed: bytes.get(m.offset)!, owned: uses.get(m.offset) === 1 } : undefined),
      );
    });
    await mapLimit(alone, REMOTE_FILE_CONCURRENCY, (f) => this.restoreRemoteFile(f));
  }

  private async restoreSymlink(job: FileJob): Promise<void> {
    removeEntry(job.path);
    fss.symlinkSync(targetBytes(job.node), job.path);
    this.counters.files++;
    await this.applyMeta(job.path, job.display, job.node);
  }

  private async restoreHardlink(job: FileJob): Promise<void> {
    const key = `${job.node.device ?? ''}:${job.node.inode}`;
    const first = this.hardlinkFirst.get(key)!;
    removeEntry(job.path);
    fss.linkSync(first.path, job.path);
    this.counters.files++;
  }

  private async applyMeta(p: Buffer, display: string, node: TreeNode): Promise<void> {
    const isLink = node.type === 'symlink';
    try {
      if (this.owners) (isLink ? fss.lchownSync : fss.chownSync)(p, node.uid, node.gid);
      if (!isLink) fss.chmodSync(p, node.mode);
      if (node.xattrs && node.xattrs.length > 0) {
        const problem = await writeXattrs(p, node.xattrs);
        if (problem) this.problem(display, `extended attributes not restored: ${problem}`);
      }
      const mtime = nsToSeconds(node.mtime);
      (isLink ? fss.lutimesSync : fss.utimesSync)(p, mtime, mtime);
    } catch (e) {
      this.problem(display, `metadata not fully restored: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** The longest span of a pack read at once for one file. */
const MAX_SPAN = 24 << 20;

interface Span {
  readonly pack: string;
  readonly start: number;
  readonly end: number;
  /** Blobs of the file still to take from this span; the bytes are dropped at zero. */
  remaining: number;
  /** How many times the file takes each blob of the span, by offset: a blob taken once is given away. */
  uses: Map<number, number>;
  /** The distinct blobs of the span, by offset, once read. */
  blobs: readonly { offset: number; length: number }[];
  bytes: Promise<Map<number, Buffer>> | null;
}

/**
 * A file's blobs, read over the network by pack: a large file's chunks share
 * a few packs (in random order within each, by design), so one ranged read
 * per pack replaces a dozen small ones. (Locally, the workers read the packs
 * themselves.) Each blob is still authenticated on its own when opened.
 */
class PackReads {
  private readonly repo: Repository;
  private readonly spans = new Map<string, Span>();

  constructor(repo: Repository, ids: readonly string[]) {
    this.repo = repo;
    if (ids.length < 2) return;
    // One pass: each pack's span, its distinct blobs (by offset), and how many times the file takes each.
    const byPack = new Map<string, { start: number; end: number; blobs: Map<number, number>; uses: Map<number, number>; total: number }>();
    for (const id of ids) {
      const loc = repo.index.get(id);
      if (!loc) continue;
      let s = byPack.get(loc.pack);
      if (!s) byPack.set(loc.pack, (s = { start: loc.offset, end: loc.offset + loc.length, blobs: new Map(), uses: new Map(), total: 0 }));
      s.start = Math.min(s.start, loc.offset);
      s.end = Math.max(s.end, loc.offset + loc.length);
      s.blobs.set(loc.offset, loc.length);
      s.uses.set(loc.offset, (s.uses.get(loc.offset) ?? 0) + 1);
      s.total++;
    }
    for (const [pack, s] of byPack) {
      if (s.blobs.size < 2 || s.end - s.start > MAX_SPAN) continue;
      const blobs = [...s.blobs].map(([offset, length]) => ({ offset, length })).sort((a, b) => a.offset - b.offset);
      this.spans.set(pack, { pack, start: s.start, end: s.end, remaining: s.total, uses: s.uses, blobs, bytes: null });
    }
  }

  async sealed(id: string): Promise<PreloadedBlob> {
    const loc = this.repo.locateBlob('data', id);
    const span = this.spans.get(loc.pack);
    // A blob read on its own is in a buffer of its own.
    if (!span) return { ...(await this.repo.loadSealedBlob('data', id)), owned: true };
    span.bytes ??= this.repo.readPackPieces(span.pack, span.blobs).then((pieces) => new Map(span.blobs.map((b, i) => [b.offset, pieces[i]!])));
    try {
      const bytes = await span.bytes;
      return { pack: loc.pack, key: loc.key, checkId: loc.checkId, sealed: bytes.get(loc.offset)!, owned: span.uses.get(loc.offset) === 1 };
    } finally {
      if (--span.remaining === 0) span.bytes = null;
    }
  }
}

/**
 * A store that stays unreachable past the retry time fails every file after
 * it too: the restore stops there (the file in progress holds what was
 * verified) instead of spending the retry time again on each file left.
 * A blob that fails its checks is that file's problem, and the rest go on.
 */
function endsTheRun(e: Error): boolean {
  return e instanceof BackendError;
}

/** The error a blob's failed outcome stands for: integrity is the blob's; reading or writing a file keeps its errno code. */
function outcomeError(o: Extract<RestoreOutcome, { at: number }>, id: string, pack: string): Error {
  if ('failure' in o) return blobIntegrityError('data', id, pack, o.failure === 'id' ? 'id' : 'decrypt');
  if (o.stage === 'read') return new IntegrityError(`data blob ${id} in data/${pack}`, `cannot be read from the pack: ${o.error}`);
  return Object.assign(new Error(o.error), o.code ? { code: o.code } : {});
}

/** Seconds as a double: the best Node's utimes takes (about 0.25 µs at today's dates). */
function nsToSeconds(ns: string): number {
  const n = BigInt(ns);
  return Number(n / 1_000_000_000n) + Number(n % 1_000_000_000n) / 1e9;
}
