/**
 * Spreads the CPU work of blobs over worker threads. Backing up, the main
 * thread reads and chunks; workers hash, compress and seal; the main thread
 * packs and uploads. Restoring, workers open and verify blobs. A byte budget
 * bounds the chunk data in flight, so a fast disk cannot fill memory while a
 * slow upload drains.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CompressionSettings } from './compression.ts';
import { chunkBuffers, ownBuffer } from './buffer-pool.ts';
import type { BlobType } from './envelope.ts';
import type { SealedBlob } from './pack.ts';
import type { SealReply, SealRequest, SealWorkerInit } from './seal-worker.ts';

export interface PoolKeys {
  readonly idKey: Buffer;
  readonly contentKey: Buffer;
  readonly compression: CompressionSettings;
}

/** What the pool needs from the repository to store blobs. */
export interface BlobSink {
  claim(idHex: string): boolean;
  addSealedBlob(blob: SealedBlob, plaintextLength: number): Promise<void>;
  waitForUploadRoom(): Promise<void>;
}

/** Chunks smaller than this are sealed on the calling thread: a round trip would cost more. */

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
  hash: { seq: number; data: ArrayBuffer; length: number }[];
  keep: number[];
  drop: number[];
  open: { seq: number; type: BlobType; id: Uint8Array; key: Uint8Array; sealed: ArrayBuffer }[];
  batchBytes: number;
  scheduled: boolean;
}

/** A batch is sent at the end of the current event loop turn, or sooner once this big. */
const BATCH_BYTES = 4 * 1024 * 1024;

type Waiter = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

export class SealPool {
  private readonly keys: PoolKeys;
  private readonly sink: BlobSink | null;
  private readonly threads: number;
  private workers: PoolWorker[] = [];
  private readonly waiting = new Map<number, Waiter>();
  private seq = 0;
  private readonly budget: ByteBudget;
  private failed: unknown = null;
  private closed = false;

  constructor(keys: PoolKeys, sink: BlobSink | null, opts: { threads?: number; budgetBytes?: number } = {}) {
    this.keys = keys;
    this.sink = sink;
    this.threads = opts.threads ?? Math.max(1, availableParallelism());
    this.budget = new ByteBudget(opts.budgetBytes ?? 12 * 1024 * 1024);
  }

  private start(): void {
    if (this.closed) throw new Error('the seal pool is closed');
    if (this.workers.length > 0) return;
    const init: SealWorkerInit = { idKey: this.keys.idKey, contentKey: this.keys.contentKey, compression: this.keys.compression };
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(new URL('./seal-worker.ts', import.meta.url), { workerData: init });
      worker.on('message', (m: SealReply) => this.onMessage(m));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`seal worker exited with code ${code}`));
      });
      this.workers.push({ worker, outstanding: 0, hash: [], keep: [], drop: [], open: [], batchBytes: 0, scheduled: false });
    }
  }

  private settle(seq: number, value: unknown): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    w.resolve(value);
  }

  private onMessage(m: SealReply): void {
    switch (m.op) {
      case 'ids':
        m.seqs.forEach((seq, i) => this.settle(seq, Buffer.from(m.ids, i * 32, 32)));
        break;
      case 'done':
        for (const ab of m.recycled) chunkBuffers.give(ab);
        m.seqs.forEach((seq, i) => this.settle(seq, m.sealed[i]));
        break;
      case 'opened':
        for (const it of m.items) this.settle(it.seq, 'failure' in it ? it.failure : Buffer.from(it.plain));
        break;
    }
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
      w.worker.postMessage({ op: 'hash', items } satisfies SealRequest, items.map((i) => i.data));
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
  }

  /**
   * Stores one chunk as a data blob unless the sink already has it. `id`
   * resolves to the blob's ID once it is stored (or known); `admitted`
   * resolves as soon as the chunk is within the pool's memory budget, which
   * is when a reader may go on to the next file. A chunk with its own whole
   * ArrayBuffer (as the chunker makes them) is transferred to a worker: the
   * caller must not touch it afterwards.
   */
  store(chunk: Uint8Array): { admitted: Promise<void>; id: Promise<Buffer> } {
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    const id = this.storeAdmitted(chunk, admit);
    id.catch(() => admit());
    return { admitted, id };
  }

  private async storeAdmitted(chunk: Uint8Array, admit: () => void): Promise<Buffer> {
    const sink = this.sink;
    if (!sink) throw new Error('this pool was made for reading only');
    await sink.waitForUploadRoom();
    const n = chunk.length;
    await this.budget.acquire(n);
    admit();
    const w = this.pick();
    w.outstanding += n;
    try {
      const seq = ++this.seq;
      const hashed = this.wait<Buffer>(seq);
      w.hash.push({ seq, ...transferableView(chunk) });
      this.schedule(w, n);
      const id = await hashed;
      if (!sink.claim(id.toString('hex'))) {
        w.drop.push(seq);
        this.schedule(w, 0);
        return id;
      }
      const done = this.wait<{ parts: ArrayBuffer[]; length: number; raw: number }>(seq);
      w.keep.push(seq);
      this.schedule(w, 0);
      const sealed = await done;
      await sink.addSealedBlob({ type: 'data', id, parts: sealed.parts.map((p) => new Uint8Array(p)), length: sealed.length }, sealed.raw);
      return id;
    } finally {
      w.outstanding -= n;
      this.budget.release(n);
    }
  }

  /** Has every worker hand back its partly filled pack. */
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
   * Opens a sealed blob and checks its ID on a worker. Resolves to the
   * plaintext, or to the reason it failed ('decrypt' or 'id').
   */
  async open(type: BlobType, id: Buffer, key: Buffer, sealed: Uint8Array): Promise<Buffer | 'decrypt' | 'id'> {
    const n = sealed.length;
    await this.budget.acquire(n);
    const w = this.pick();
    w.outstanding += n;
    try {
      const seq = ++this.seq;
      const opened = this.wait<Buffer | 'decrypt' | 'id'>(seq);
      // id and key are often views into a larger buffer (Node's 8 KiB pool):
      // structured clone would copy that whole buffer, so send small copies.
      w.open.push({ seq, type, id: standalone(id), key: standalone(key), sealed: ownBuffer(sealed) });
      this.schedule(w, n);
      return await opened;
    } finally {
      w.outstanding -= n;
      this.budget.release(n);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

/**
 * A chunk that starts its own ArrayBuffer (the chunker's pooled buffers) is
 * sent whole with its length, without a copy; anything else is copied.
 */
function transferableView(b: Uint8Array): { data: ArrayBuffer; length: number } {
  if (b.byteOffset === 0 && b.buffer instanceof ArrayBuffer) return { data: b.buffer, length: b.byteLength };
  return { data: ownBuffer(b), length: b.byteLength };
}

/** A copy with its own small ArrayBuffer. */
function standalone(b: Uint8Array): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}
