/**
 * A seal worker's files to restore from a local repository, each handed over
 * whole (every blob's place in its pack) and written one after another,
 * while the blobs of this file and the next ones are read ahead on libuv's
 * threads, into the worker's read arena (core/pack-reader.ts). A worker
 * keeps two lanes, one for small files and one for large ones, so that
 * small files are not held behind a large one (core/seal-worker.ts).
 *
 * Handed over blob by blob, in batches, a worker waited for the main thread
 * between batches and read only as far ahead as its batch went: in a cold
 * 1 GiB restore each worker spent 0.6–0.85 s waiting for its next batch and
 * 0.35–0.9 s for reads, and the cores were 55–65 % busy
 * (docs/benchmarks.md). Whole, a file costs the main thread one message
 * out and one back, and the reads run ahead across file boundaries: cold
 * 1 GiB restores took 2.68–2.86 s against 2.95–3.13 s (alternating runs).
 */
import type { ReadBytes } from '../core/pack-reader.ts';
import type { RestoreOutcome, RestoreStep } from '../core/seal-worker.ts';

/** A blob of a file, where it lies in a local pack file. */
export interface LaneBlob {
  readonly type: 'data';
  readonly id: Uint8Array;
  readonly key: Uint8Array;
  /** Whether the plaintext must hash to the ID (Repository.blobNeedsIdCheck). */
  readonly checkId: boolean;
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** Its pack is in the page cache: read on the worker's own thread (a thread switch costs more than the copy). */
  readonly cached: boolean;
}

/** A file to restore whole: create it, write its blobs in order, set its metadata and close it. */
export interface LaneFile {
  readonly seq: number;
  readonly path: Uint8Array;
  /** The bytes the file will hold; with `direct`, it decides how the file is written (fresh-file.ts, createRestored). */
  readonly size: number;
  /** Write it around the page cache if it is large enough (FileRestoreOptions.directIo). */
  readonly direct: boolean;
  readonly blobs: readonly LaneBlob[];
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly mode: number;
  /** Seconds since the epoch, as utimes takes them. */
  readonly mtime: number;
}

/**
 * What became of a LaneFile: the outcomes of its create and finish steps,
 * and of the first blob that did not go in (later ones are not tried, so
 * nothing lies past the last verified byte).
 */
export interface FileOutcome {
  readonly seq: number;
  /** Bytes verified and written. */
  readonly written: number;
  readonly created: RestoreOutcome;
  readonly failed?: { readonly index: number; readonly outcome: RestoreOutcome };
  readonly finished: RestoreOutcome;
}

export interface LaneParts {
  /**
   * Reads `length` bytes at `offset` of the pack file at `path`, off this
   * thread unless `cached`; null when there is no room for it now, unless
   * `force` (core/pack-reader.ts, PackReader).
   */
  read(path: string, offset: number, length: number, force: boolean, cached: boolean): Promise<ReadBytes> | null;
  /** One restore step of the worker (core/seal-worker.ts), a blob's bytes given as read. */
  step(step: RestoreStep, read?: Buffer | Error): Promise<RestoreOutcome>;
  /** Bytes of file `seq` written since the last call. */
  progress(seq: number, bytes: number): void;
}

/**
 * One read from a pack: a single blob, or a span holding several blobs of
 * the same file. Its bytes are kept until the last of its blobs is written
 * (or dropped).
 */
class ReadUnit {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** The pack is in the page cache (LaneBlob.cached). */
  readonly cached: boolean;
  /** Holds more than one blob of its file (a span). */
  readonly span: boolean;
  /** Blobs still to take from it. */
  remaining: number;
  /** Its file stopped before any of its blobs: never to be read. */
  dropped = false;
  /** The consumer waits on it: it is read even when the reader has no room, so that the lane always moves. */
  wanted = false;
  private result: Promise<ReadBytes | Error> | null = null;
  private wake: ((r: ReadBytes | Error) => void) | null = null;

  constructor(path: string, offset: number, length: number, blobs: number, cached: boolean) {
    this.path = path;
    this.offset = offset;
    this.length = length;
    this.cached = cached;
    this.remaining = blobs;
    this.span = blobs > 1;
  }

  get started(): boolean {
    return this.result !== null;
  }

  start(read: Promise<ReadBytes>): void {
    this.result = settle(read);
    if (this.wake) void this.result.then(this.wake);
  }

  /** The bytes (or the error), once started and read. */
  take(): Promise<ReadBytes | Error> {
    if (this.result) return this.result;
    this.wanted = true;
    return new Promise((resolve) => (this.wake = resolve));
  }
}

/** Where a file's blob is read from: a unit, and the blob's place in it. */
interface BlobRead {
  readonly unit: ReadUnit;
  readonly at: number;
}

/**
 * The longest span of a pack read at once for several blobs of a file; the
 * span's bytes per blob below which one read beats one per blob whatever
 * lies between them (a read of 16 MiB takes about as long as 64 random
 * reads of 64 KiB here); and the most a file may hold in spans taken far
 * apart in it (the blobs an incremental backup added, all through a file).
 * A span must fit the worker's read arena with room to spare (LANE_BYTES in
 * core/seal-worker.ts): one that does not is read into memory of its own.
 */
const MAX_SPAN = 8 * 1024 * 1024;
const SPAN_PER_BLOB = 256 * 1024;
const FAR_SPANS = 8 * 1024 * 1024;
/** Longest a lane runs without letting its thread's event loop turn (FileLane.breathe). */
const BREATHE_MS = 10;

/**
 * How a file's blobs are read. A large file's chunks lie in a few packs, in
 * random order within each (by design, format §5), and its fixed-size
 * chunks of a database are small (64 KiB): read one by one, the largest
 * file of the benchmark (a 256 MiB PostgreSQL relation, 4,096 blobs in 19
 * packs, among other files' blobs) took a worker 1.6 s, 1.1 s of it
 * waiting for reads. So the blobs of a file that a pack holds close
 * together, and that the file takes close together, are read in one span:
 * 280 reads for that file. The bytes of other files in a span are read
 * through the page cache, where those files find them.
 */
export function planReads(blobs: readonly LaneBlob[]): BlobRead[] {
  const byPack = new Map<string, { start: number; end: number; bytes: number; first: number; last: number; count: number; cached: boolean }>();
  blobs.forEach((b, i) => {
    const g = byPack.get(b.path);
    if (!g) byPack.set(b.path, { start: b.offset, end: b.offset + b.length, bytes: b.length, first: i, last: i, count: 1, cached: b.cached });
    else {
      g.start = Math.min(g.start, b.offset);
      g.end = Math.max(g.end, b.offset + b.length);
      g.bytes += b.length;
      g.last = i;
      g.count++;
    }
  });
  const spans = new Map<string, ReadUnit>();
  let far = 0;
  for (const [path, g] of byPack) {
    const span = g.end - g.start;
    if (g.count < 2 || span > MAX_SPAN) continue;
    // Cheaper than a read per blob: dense, or small blobs (database pages) among other files' blobs.
    if (g.bytes < span / 2 && span > g.count * SPAN_PER_BLOB) continue;
    // Taken close together in the file: the span's bytes are not held while the file goes through other packs.
    const close = g.last - g.first < 3 * g.count + 16;
    if (!close && far + span > FAR_SPANS) continue;
    if (!close) far += span;
    spans.set(path, new ReadUnit(path, g.start, span, g.count, g.cached));
  }
  return blobs.map((b) => {
    const unit = spans.get(b.path);
    return unit ? { unit, at: b.offset - unit.offset } : { unit: new ReadUnit(b.path, b.offset, b.length, 1, b.cached), at: 0 };
  });
}

/** Files created ahead of the one being written. */
const CREATE_AHEAD = 4;

/** A file added to a lane, and its creation once started. */
interface LaneEntry {
  readonly file: LaneFile;
  created: Promise<RestoreOutcome> | null;
}

export class FileLane {
  private breathedAt = performance.now();
  private readonly breatheMs: number;
  private readonly parts: LaneParts;
  /** Reads in flight at most: libuv's four threads also carry the direct writes, which must not wait behind a long queue. */
  private readonly maxReads: number;
  /** Units not yet read, in the order they are first needed. */
  private readonly queue: ReadUnit[] = [];
  private reading = 0;
  private last: Promise<unknown> = Promise.resolve();
  /** Files added and not yet finished, in order; the next one is created while the one before is written. */
  private readonly files: LaneEntry[] = [];

  /** `breatheMs`: see breathe (BREATHE_MS unless given). */
  constructor(parts: LaneParts, opts: { maxReads: number; breatheMs?: number }) {
    this.parts = parts;
    this.maxReads = opts.maxReads;
    this.breatheMs = opts.breatheMs ?? BREATHE_MS;
  }

  /** Queues a file; it is restored after those added before it. */
  add(file: LaneFile): Promise<FileOutcome> {
    const reads = planReads(file.blobs);
    for (const r of new Set(reads.map((r) => r.unit))) this.queue.push(r);
    this.pump();
    const entry: LaneEntry = { file, created: null };
    this.files.push(entry);
    if (this.files.length <= CREATE_AHEAD + 1) void this.create(entry);
    const outcome = this.last.then(() => this.restore(entry, reads));
    this.last = outcome.catch(() => {});
    return outcome;
  }

  /** Starts the next reads, in order, while the reader has room (see ReadUnit.wanted). */
  private pump(): void {
    while (this.queue.length > 0 && this.reading < this.maxReads) {
      const u = this.queue[0]!;
      if (u.dropped) {
        this.queue.shift();
        continue;
      }
      const read = this.parts.read(u.path, u.offset, u.length, u.wanted, u.cached);
      if (!read) break;
      this.queue.shift();
      this.reading++;
      read.then(
        () => this.readEnded(),
        () => this.readEnded(),
      );
      u.start(read);
    }
  }

  private readEnded(): void {
    this.reading--;
    this.pump();
  }

  /** One blob of `u` is done with (written, or skipped after a failure): the unit is given back after its last. */
  private async release(u: ReadUnit, got?: ReadBytes | Error): Promise<void> {
    if (--u.remaining > 0) return;
    if (!u.started) {
      u.dropped = true;
      this.pump();
      return;
    }
    const r = got ?? (await u.take());
    if (!(r instanceof Error)) r.release();
    this.pump();
  }

  /** Creates a file (fresh-file.ts, createRestored), ahead of its turn. */
  private create(entry: LaneEntry): Promise<RestoreOutcome> {
    return (entry.created ??= this.parts.step({ kind: 'create', seq: 0, file: entry.file.seq, path: entry.file.path, size: entry.file.size, direct: entry.file.direct }));
  }

  private async restore(entry: LaneEntry, reads: readonly BlobRead[]): Promise<FileOutcome> {
    const file = entry.file;
    for (const next of this.files.slice(1, CREATE_AHEAD + 1)) void this.create(next);
    try {
      return await this.write(file, await this.create(entry), reads);
    } finally {
      this.files.shift();
    }
  }

  /**
   * Lets the worker's event loop turn if the lane has held it for
   * BREATHE_MS: blobs of packs in the page cache are read, opened and
   * written without a wait, so a large file would otherwise hold it to its
   * end, and no progress report, nor any file the main thread sends, would
   * be heard meanwhile.
   */
  private async breathe(): Promise<void> {
    if (performance.now() - this.breathedAt < this.breatheMs) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.breathedAt = performance.now();
  }

  private async write(file: LaneFile, created: RestoreOutcome, reads: readonly BlobRead[]): Promise<FileOutcome> {
    let written = 0;
    let failed: FileOutcome['failed'];
    for (const [index, r] of reads.entries()) {
      // Never read past a failure: what is not started is dropped; what is in flight is given back when it lands.
      if (failed || 'stage' in created) {
        await this.release(r.unit);
        continue;
      }
      const taking = r.unit.take();
      // A unit waited on now may go past the budget: see pump.
      if (!r.unit.started) this.pump();
      const got = await taking;
      const b = file.blobs[index]!;
      // A span that could not be read whole (a pack cut short, a bad sector) is read blob by blob: the file keeps
      // every blob up to the first that cannot be read, as if each were read on its own.
      const own = got instanceof Error && r.unit.span ? await settle(this.parts.read(b.path, b.offset, b.length, true, b.cached)!) : null;
      let o: RestoreOutcome;
      try {
        const bytes = own ? (own instanceof Error ? own : own.bytes) : got instanceof Error ? got : got.bytes.subarray(r.at, r.at + b.length);
        o = await this.parts.step({ kind: 'blob', seq: 0, file: file.seq, type: b.type, id: b.id, key: b.key, checkId: b.checkId, offset: b.offset, length: b.length }, bytes);
      } finally {
        if (own && !(own instanceof Error)) own.release();
        await this.release(r.unit, got);
      }
      if ('written' in o) {
        written += o.written;
        this.parts.progress(file.seq, o.written);
      } else failed = { index, outcome: o };
      await this.breathe();
    }
    const finished = await this.parts.step({ kind: 'finish', seq: 0, file: file.seq, ...(file.owner ? { owner: file.owner } : {}), mode: file.mode, mtime: file.mtime });
    return { seq: file.seq, written, created, ...(failed ? { failed } : {}), finished };
  }
}

/** A read's bytes, or its failure as an Error. */
function settle(read: Promise<ReadBytes>): Promise<ReadBytes | Error> {
  return read.then(
    (r) => r,
    (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
  );
}
