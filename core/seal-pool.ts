/**
 * Spreads the CPU work of blobs over worker threads. Backing up, the main
 * thread reads and chunks; workers hash, compress, seal and pack (each fills
 * packs of its own); the main thread uploads finished packs. Chunks reach the
 * workers through a shared arena (core/chunk-arena.ts), whose size bounds the
 * chunk data in flight; packs come back in shared buffers that the workers
 * fill again once uploaded. Restoring, workers open and verify blobs, within
 * a byte budget.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CompressionSettings } from './compression.ts';
import { copyOf, ownBuffer } from './buffer-pool.ts';
import { ChunkArena, type Region } from './chunk-arena.ts';
import type { Chunker } from './chunker.ts';
import type { BlobType } from './envelope.ts';
import type { BuiltPack, KeySlot, PackEntry } from './pack.ts';
import { workerUrl } from './program-files.ts';
import type { FileOutcome, LaneFile } from '../restore/file-lane.ts';
import type { PackMessage, RestoreOutcome, RestoreStep, SealReply, SealRequest, SealWorkerInit, VerifyRequest, VerifyResult } from './seal-worker.ts';

export interface PoolKeys {
  readonly idKey: Buffer;
  readonly contentKey: Buffer;
  readonly compression: CompressionSettings;
  readonly metaKey: Buffer;
  /** Key slot of the data packs the workers build. */
  readonly slot: KeySlot;
  readonly packSize: number;
}

/** What the pool needs from the repository to store blobs. */
export interface BlobSink {
  claim(idHex: string): boolean;
  /**
   * Takes a finished data pack for upload; resolves once the upload is over,
   * whether it succeeded or not (a failure is the sink's to report), when the
   * pack's buffer may be reused.
   */
  addPack(pack: BuiltPack, plaintextBytes: number): Promise<void>;
  waitForUploadRoom(): Promise<void>;
}

class ByteBudget {
  private used = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  async acquire(n: number): Promise<void> {
    if (this.waiters.length === 0 && (this.used === 0 || this.used + n <= this.limit)) {
      this.used += n;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
  }

  release(n: number): void {
    this.used -= n;
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (this.used !== 0 && this.used + w.n > this.limit) break;
      this.waiters.shift();
      this.used += w.n;
      w.resolve();
    }
  }
}

interface PoolWorker {
  readonly worker: Worker;
  outstanding: number;
  hash: { seq: number; offset: number; length: number }[];
  keep: number[];
  drop: number[];
  open: { seq: number; type: BlobType; id: Uint8Array; key: Uint8Array; checkId: boolean; sealed: ArrayBuffer }[];
  restore: RestoreStep[];
  files: LaneFile[];
  batchBytes: number;
  scheduled: boolean;
  /** The worker's pack buffers, by the number it gave each. */
  readonly packBuffers: Map<number, SharedArrayBuffer>;
}

/** A batch is sent at the end of the current event loop turn, or sooner once this big. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Input is chunked in slices of at most this, so that a region for it always fits the arena. */
const FEED_SLICE = 4 * 1024 * 1024;
/**
 * Room for a slice plus the largest chunk a chunker can hold back (16 MiB),
 * with padding: the most one reader asks for at once. It is also what bounds
 * chunk data in flight, and with average chunks of 1 MiB it holds enough of
 * them to keep the workers busy.
 */
const ARENA_BYTES = 24 * 1024 * 1024;
/** Chunks are placed at offsets that agree with their source modulo this (see place). */
const ALIGN = 8;

type Waiter = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

/** Work handed to a pool after close: what is still in flight when a run ends early. */
export class PoolClosedError extends Error {
  constructor() {
    super('the seal pool is closed');
  }
}

export class SealPool {
  private readonly keys: PoolKeys;
  private readonly sink: BlobSink | null;
  private readonly threads: number;
  private workers: PoolWorker[] = [];
  /** Restore: bytes of the files in progress on each worker (see assignFile). */
  private filesBytes: number[] = [];
  private readonly waiting = new Map<number, Waiter>();
  /** Files restored whole: who hears of their bytes written, by seq. */
  private readonly fileProgress = new Map<number, (bytes: number) => void>();
  private seq = 0;
  private readonly budget: ByteBudget;
  /** Chunks on their way to the workers; made with the workers, and only by pools that store. */
  private arena: ChunkArena | null = null;
  private failed: unknown = null;
  private closed = false;

  constructor(keys: PoolKeys, sink: BlobSink | null, opts: { threads?: number; budgetBytes?: number } = {}) {
    this.keys = keys;
    this.sink = sink;
    this.threads = opts.threads ?? Math.max(1, availableParallelism());
    this.budget = new ByteBudget(opts.budgetBytes ?? 12 * 1024 * 1024);
  }

  /**
   * Starts the workers now rather than with the first job, for a caller that
   * knows it will need them: their start (loading the program and
   * libsodium, 0.1 to 0.2 s) then overlaps with its loading the index and
   * planning.
   */
  warmUp(): void {
    this.start();
  }

  private start(): void {
    if (this.closed) throw new PoolClosedError();
    if (this.workers.length > 0) return;
    if (this.sink) this.arena = new ChunkArena(ARENA_BYTES);
    this.filesBytes = new Array<number>(this.threads).fill(0);
    const k = this.keys;
    const init: SealWorkerInit = {
      idKey: k.idKey,
      contentKey: k.contentKey,
      compression: k.compression,
      metaKey: k.metaKey,
      slot: k.slot,
      packSize: k.packSize,
      arena: this.arena?.buffer ?? null,
    };
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(workerUrl('seal-worker'), { workerData: init });
      const pw: PoolWorker = { worker, outstanding: 0, hash: [], keep: [], drop: [], open: [], restore: [], files: [], batchBytes: 0, scheduled: false, packBuffers: new Map() };
      // Messages can still arrive after close (a pack finished as the run failed): they are dropped.
      worker.on('message', (m: SealReply) => {
        if (!this.closed) this.onMessage(m, pw);
      });
      worker.on('error', (e) => {
        if (!this.closed) this.fail(e);
      });
      // close() terminates the workers, which makes them exit with code 1: only an exit before that is a failure.
      worker.on('exit', (code) => {
        if (code !== 0 && !this.closed) this.fail(new Error(`seal worker exited with code ${code}`));
      });
      this.workers.push(pw);
    }
  }

  private settle(seq: number, value: unknown): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    w.resolve(value);
  }

  private onMessage(m: SealReply, w: PoolWorker): void {
    switch (m.op) {
      case 'ids':
        m.seqs.forEach((seq, i) => this.settle(seq, Buffer.from(m.ids, i * 32, 32)));
        break;
      case 'done':
        for (const seq of m.seqs) this.settle(seq, undefined);
        break;
      case 'pack':
        this.takePack(m.pack, w);
        break;
      case 'opened':
        for (const it of m.items) this.settle(it.seq, 'failure' in it ? it.failure : Buffer.from(it.plain));
        break;
      case 'restored':
        for (const it of m.items) this.settle(it.seq, it);
        break;
      case 'progress':
        for (const it of m.items) this.fileProgress.get(it.seq)?.(it.bytes);
        break;
      case 'files':
        // restoreWholeFile forgets each file's progress callback once this settles it.
        for (const o of m.outcomes) this.settle(o.seq, o);
        break;
      case 'verified':
        this.settle(m.result.seq, m.result);
        break;
    }
  }

  /** Hands a worker's finished pack to the sink; its buffer goes back to the worker after the upload. */
  private takePack(m: PackMessage, w: PoolWorker): void {
    const sink = this.sink;
    if (!sink) return;
    if (m.buffer) w.packBuffers.set(m.slot, m.buffer);
    const sab = w.packBuffers.get(m.slot)!;
    const blobs = m.lengths.length - 1;
    const entries: PackEntry[] = [];
    let offset = 0;
    for (let i = 0; i < blobs; i++) {
      entries.push({ type: 'data', id: Buffer.from(m.ids, i * 32, 32), offset, length: m.lengths[i]! });
      offset += m.lengths[i]!;
    }
    const parts = m.offsets.map((o, i) => Buffer.from(sab, o, m.lengths[i]!));
    const pack: BuiltPack = { parts, size: m.size, name: m.name, entries, keySlot: this.keys.slot };
    void sink.addPack(pack, m.raw).then(() => {
      if (!this.closed) w.worker.postMessage({ op: 'recycle', slot: m.slot } satisfies SealRequest);
    });
  }

  private fail(e: unknown): void {
    this.failed ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  private pick(): PoolWorker {
    this.start();
    let best = this.workers[0]!;
    for (const w of this.workers) if (w.outstanding < best.outstanding) best = w;
    return best;
  }

  private wait<T>(seq: number): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => this.waiting.set(seq, { resolve: resolve as (v: unknown) => void, reject }));
  }

  private schedule(w: PoolWorker, bytes: number): void {
    w.batchBytes += bytes;
    if (w.batchBytes >= BATCH_BYTES) this.send(w);
    else if (!w.scheduled) {
      w.scheduled = true;
      setImmediate(() => this.send(w));
    }
  }

  private send(w: PoolWorker): void {
    w.scheduled = false;
    w.batchBytes = 0;
    if (w.hash.length > 0) {
      const items = w.hash;
      w.hash = [];
      w.worker.postMessage({ op: 'hash', items } satisfies SealRequest);
    }
    if (w.keep.length > 0 || w.drop.length > 0) {
      const msg: SealRequest = { op: 'decide', keep: w.keep, drop: w.drop };
      w.keep = [];
      w.drop = [];
      w.worker.postMessage(msg);
    }
    if (w.open.length > 0) {
      const items = w.open;
      w.open = [];
      w.worker.postMessage({ op: 'open', items } satisfies SealRequest, items.map((i) => i.sealed));
    }
    if (w.restore.length > 0) {
      const items = w.restore;
      w.restore = [];
      w.worker.postMessage({ op: 'restore', items } satisfies SealRequest, items.flatMap((i) => (i.kind === 'blob' && i.sealed ? [i.sealed] : [])));
    }
    if (w.files.length > 0) {
      const items = w.files;
      w.files = [];
      w.worker.postMessage({ op: 'files', items } satisfies SealRequest);
    }
  }

  /**
   * Cuts `data` with `chunker` (or, given null, ends the chunker's stream)
   * and starts storing each chunk as a data blob unless the sink already has
   * it. Resolves once the chunks are copied into the arena, which is when
   * `data` may be reused and a reader may go on; each of the returned
   * promises resolves to a chunk's blob ID once it is stored or known. Waits
   * first while uploads or the arena are full.
   */
  async feed(chunker: Chunker, data: Uint8Array | null): Promise<Promise<Buffer>[]> {
    const ids: Promise<Buffer>[] = [];
    if (data === null) await this.place(chunker, null, ids);
    else for (let pos = 0; pos < data.length; pos += FEED_SLICE) await this.place(chunker, data.subarray(pos, pos + FEED_SLICE), ids);
    return ids;
  }

  private async place(chunker: Chunker, data: Uint8Array | null, ids: Promise<Buffer>[]): Promise<void> {
    const sink = this.sink;
    if (!sink) throw new Error('this pool was made for reading only');
    if (this.failed) throw this.failed;
    // First: a failed upload is the reason a run ends, and the error to report.
    await sink.waitForUploadRoom();
    this.start();
    const arena = this.arena!;
    // At most what the chunker holds back plus the new bytes can come out now, plus alignment padding.
    const most = chunker.buffered + (data?.length ?? 0);
    if (most === 0) return;
    const reserve = most + ALIGN * (Math.ceil(most / chunker.minChunk) + 2);
    const region = await arena.alloc(reserve);
    const chunks: Region[] = [];
    let at = region.offset;
    const emit = (c: Uint8Array): void => {
      // Copying into shared memory goes word by word only when source and target agree modulo 8; otherwise V8 copies byte by byte.
      at += (c.byteOffset - at) & (ALIGN - 1);
      arena.bytes.set(c, at);
      chunks.push({ offset: at, length: c.length });
      at += c.length;
    };
    try {
      if (data) chunker.updateInto(data, emit);
      else chunker.finalInto(emit);
    } finally {
      // The padding between chunks goes back with them (each chunk's region starts at the previous one's end).
      arena.release(at, region.offset + reserve - at);
    }
    let from = region.offset;
    for (const c of chunks) {
      ids.push(quiet(this.storeChunk(sink, arena, { offset: from, length: c.offset + c.length - from }, c)));
      from = c.offset + c.length;
    }
  }

  /** Stores the chunk at `chunk`, then releases `held` (the chunk and the padding before it). */
  private async storeChunk(sink: BlobSink, arena: ChunkArena, held: Region, chunk: Region): Promise<Buffer> {
    let w: PoolWorker | null = null;
    try {
      w = this.pick();
      w.outstanding += chunk.length;
      const seq = ++this.seq;
      const hashed = this.wait<Buffer>(seq);
      w.hash.push({ seq, offset: chunk.offset, length: chunk.length });
      this.schedule(w, chunk.length);
      const id = await hashed;
      if (!sink.claim(id.toString('hex'))) {
        // The worker has read the chunk for the last time: its region is free from here on.
        w.drop.push(seq);
        this.schedule(w, 0);
        return id;
      }
      const sealed = this.wait<void>(seq);
      w.keep.push(seq);
      this.schedule(w, 0);
      // Sealed into the worker's pack: the ID is claimed, and the final flush uploads it before any snapshot names it.
      await sealed;
      return id;
    } finally {
      if (w) w.outstanding -= chunk.length;
      arena.release(held.offset, held.length);
    }
  }

  /** Has every worker finish its partly filled pack and hand it to the sink. */
  async flush(): Promise<void> {
    await Promise.all(
      this.workers.map((w) => {
        this.send(w);
        const seq = ++this.seq;
        const done = this.wait<void>(seq);
        w.worker.postMessage({ op: 'flush', seq } satisfies SealRequest);
        return done;
      }),
    );
  }

  /**
   * Opens a sealed blob and, unless `checkId` is false
   * (Repository.blobNeedsIdCheck), checks its ID on a worker. Resolves to
   * the plaintext, or to the reason it failed ('decrypt' or 'id').
   */
  async open(type: BlobType, id: Buffer, key: Buffer, sealed: Uint8Array, checkId = true): Promise<Buffer | 'decrypt' | 'id'> {
    const n = sealed.length;
    await this.budget.acquire(n);
    const w = this.pick();
    w.outstanding += n;
    try {
      const seq = ++this.seq;
      const opened = this.wait<Buffer | 'decrypt' | 'id'>(seq);
      // id and key are often views into a larger buffer (Node's 8 KiB pool):
      // structured clone would copy that whole buffer, so send small copies.
      w.open.push({ seq, type, id: standalone(id), key: standalone(key), checkId, sealed: ownBuffer(sealed) });
      this.schedule(w, n);
      return await opened;
    } finally {
      w.outstanding -= n;
      this.budget.release(n);
    }
  }

  /**
   * The worker a file's restore steps should all go to (see restoreStep): the one
   * with the fewest bytes of files in progress, so that large files spread
   * over the workers. Call `done` when the file is finished.
   */
  assignFile(bytes: number): { worker: number; done: () => void } {
    this.start();
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.filesBytes[i]! < this.filesBytes[best]!) best = i;
    this.filesBytes[best]! += bytes;
    let released = false;
    return {
      worker: best,
      done: () => {
        if (released) return;
        released = true;
        this.filesBytes[best]! -= bytes;
      },
    };
  }

  /**
   * Has worker `worker` do one step of restoring a file (see RestoreStep):
   * all of a file's steps go to one worker (assignFile), in order. A blob's
   * `sealed` bytes, when given, go to the worker as a copy. Resolves to what
   * happened; failing to create, read or write a file is an outcome too,
   * with its errno code.
   */
  async restoreStep(worker: number, step: RestoreStepRequest): Promise<RestoreOutcome> {
    const n = step.kind === 'blob' ? step.length : 0;
    await this.budget.acquire(n);
    this.start();
    const w = this.workers[worker]!;
    w.outstanding += n;
    try {
      const seq = ++this.seq;
      const done = this.wait<RestoreOutcome>(seq);
      w.restore.push(toWorkerStep(step, seq));
      this.schedule(w, n);
      return await done;
    } finally {
      w.outstanding -= n;
      this.budget.release(n);
    }
  }

  /**
   * Has worker `worker` restore a file of a local repository whole (see
   * restore/file-lane.ts): it reads each blob from its pack file, opens,
   * verifies and writes it, and reports the bytes written as it goes to
   * `progress`. The worker bounds the bytes it reads ahead. Resolves once
   * the file is closed.
   */
  async restoreWholeFile(worker: number, file: Omit<LaneFile, 'seq'>, progress: (bytes: number) => void): Promise<FileOutcome> {
    this.start();
    const w = this.workers[worker]!;
    const seq = ++this.seq;
    const done = this.wait<FileOutcome>(seq);
    this.fileProgress.set(seq, progress);
    // Views into a larger buffer would be cloned whole: small copies go instead.
    const blobs = file.blobs.map((b) => ({ ...b, id: standalone(b.id), key: standalone(b.key) }));
    w.files.push({ ...file, seq, path: standalone(file.path), blobs });
    this.schedule(w, 0);
    try {
      return await done;
    } finally {
      this.fileProgress.delete(seq);
    }
  }

  /**
   * Has a worker read a whole pack (from `path`, or the given bytes, which
   * are moved to it), check it against its name and open and verify each of
   * `blobs` in it: check --read-data without the pack passing through this
   * thread.
   */
  async verifyPack(req: Omit<VerifyRequest, 'seq' | 'bytes'> & { readonly bytes?: Uint8Array }): Promise<VerifyResult> {
    const w = this.pick();
    const n = req.bytes?.length ?? 0;
    await this.budget.acquire(n);
    w.outstanding += 1 + n;
    try {
      const seq = ++this.seq;
      const done = this.wait<VerifyResult>(seq);
      const bytes = req.bytes ? ownBuffer(req.bytes) : undefined;
      const blobs = req.blobs.map((b) => ({ ...b, id: standalone(b.id), key: standalone(b.key) }));
      const msg: SealRequest = { op: 'verify', pack: { seq, name: req.name, ...(req.path ? { path: req.path } : {}), ...(bytes ? { bytes } : {}), blobs } };
      w.worker.postMessage(msg, bytes ? [bytes] : []);
      return await done;
    } finally {
      w.outstanding -= 1 + n;
      this.budget.release(n);
    }
  }

  /** A number for a file's restore steps, unique in this pool. */
  newFile(): number {
    return ++this.seq;
  }

  async close(): Promise<void> {
    this.closed = true;
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

/** A restore step as the caller gives it: Buffers, and no sequence number yet. */
export type RestoreStepRequest =
  | { readonly kind: 'create'; readonly file: number; readonly path: Buffer; readonly size: number; readonly direct: boolean }
  | {
      readonly kind: 'blob';
      readonly file: number;
      readonly type: BlobType;
      readonly id: Buffer;
      readonly key: Buffer;
      readonly checkId: boolean;
      readonly sealed?: Uint8Array;
      /** The caller gives `sealed` away: moved to the worker without a copy when it fills an ArrayBuffer of its own. */
      readonly sealedOwned?: boolean;
      readonly offset: number;
      readonly length: number;
    }
  | { readonly kind: 'finish'; readonly file: number; readonly owner?: { uid: number; gid: number }; readonly mode: number; readonly mtime: number };

function toWorkerStep(step: RestoreStepRequest, seq: number): RestoreStep {
  switch (step.kind) {
    case 'create':
      return { ...step, seq, path: standalone(step.path) };
    case 'blob': {
      const { sealed, sealedOwned, ...rest } = step;
      // A copy to move unless the caller gave the bytes away: they may be shared (two files with the same blob,
      // read once), and a buffer moved to a worker is gone from this thread, or cannot be moved twice.
      const moved = sealed ? (sealedOwned ? ownBuffer(sealed) : copyOf(sealed)) : undefined;
      return { ...rest, seq, id: standalone(step.id), key: standalone(step.key), ...(moved ? { sealed: moved } : {}) };
    }
    case 'finish':
      return { ...step, seq };
  }
}

/** A copy of the bytes in an ArrayBuffer of its own. */
/** A copy with its own small ArrayBuffer. */
function standalone(b: Uint8Array): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}

/** Marks a promise as handled; whoever awaits it later still sees its rejection. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}
