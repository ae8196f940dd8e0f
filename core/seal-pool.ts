/**
 * Spreads the CPU work of blobs over worker threads: keyed hashing, zstd and
 * sealing on the way in, opening and ID checks on the way out. The main
 * thread keeps reading, chunking and packing. A byte budget bounds how much
 * chunk data is in flight, so a fast disk cannot fill memory.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CompressionSettings } from './compression.ts';
import { blobId } from './crypto.ts';
import { type BlobType, sealBlob } from './envelope.ts';
import type { SealedBlob } from './pack.ts';
import type { SealReply, SealRequest, SealWorkerInit } from './seal-worker.ts';

export interface PoolKeys {
  readonly idKey: Buffer;
  readonly contentKey: Buffer;
  readonly metaKey: Buffer;
  readonly compression: CompressionSettings;
}

/** What the pool needs from the repository to store a blob. */
export interface BlobSink {
  claim(idHex: string): boolean;
  addSealedBlob(blob: SealedBlob, plaintextLength: number): Promise<void>;
}

/** Chunks smaller than this are sealed on the calling thread: a round trip would cost more. */
const INLINE_BELOW = 16 * 1024;

class ByteBudget {
  private used = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  async acquire(n: number): Promise<void> {
    if (this.used === 0 || (this.used + n <= this.limit && this.waiters.length === 0)) {
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
}

export class SealPool {
  private readonly keys: PoolKeys;
  private readonly threads: number;
  private workers: PoolWorker[] = [];
  private readonly waiting = new Map<number, { resolve: (r: SealReply) => void; reject: (e: unknown) => void }>();
  private seq = 0;
  private readonly budget: ByteBudget;
  private failed: unknown = null;

  constructor(keys: PoolKeys, opts: { threads?: number; budgetBytes?: number } = {}) {
    this.keys = keys;
    this.threads = opts.threads ?? Math.max(1, availableParallelism());
    this.budget = new ByteBudget(opts.budgetBytes ?? 48 * 1024 * 1024);
  }

  private start(): void {
    if (this.workers.length > 0) return;
    const init: SealWorkerInit = {
      idKey: this.keys.idKey,
      contentKey: this.keys.contentKey,
      metaKey: this.keys.metaKey,
      compression: this.keys.compression,
    };
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(new URL('./seal-worker.ts', import.meta.url), { workerData: init });
      worker.on('message', (r: SealReply) => {
        const w = this.waiting.get(r.seq);
        if (!w) return;
        this.waiting.delete(r.seq);
        w.resolve(r);
      });
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`seal worker exited with code ${code}`));
      });
      this.workers.push({ worker, outstanding: 0 });
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

  private request(w: PoolWorker, msg: SealRequest, transfer: ArrayBuffer[] = []): Promise<SealReply> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<SealReply>((resolve, reject) => {
      this.waiting.set(msg.seq, { resolve, reject });
      w.worker.postMessage(msg, transfer);
    });
  }

  /**
   * Stores one chunk as a blob unless the sink already has it; returns the
   * blob's ID. The chunk may be a view into a larger buffer: it is copied.
   */
  async store(type: BlobType, chunk: Uint8Array, sink: BlobSink): Promise<Buffer> {
    if (chunk.length < INLINE_BELOW) return await this.storeInline(type, chunk, sink);
    const n = chunk.length;
    await this.budget.acquire(n);
    const w = this.pick();
    w.outstanding += n;
    let workerDone = false;
    const leaveWorker = (): void => {
      if (!workerDone) w.outstanding -= n;
      workerDone = true;
    };
    try {
      const seq = ++this.seq;
      const data = new ArrayBuffer(n);
      new Uint8Array(data).set(chunk);
      const hashed = await this.request(w, { op: 'hash', seq, data }, [data]);
      const id = Buffer.from((hashed as { id: Uint8Array }).id);
      if (!sink.claim(id.toString('hex'))) {
        w.worker.postMessage({ op: 'drop', seq } satisfies SealRequest);
        return id;
      }
      const reply = await this.request(w, { op: 'seal', seq, type });
      leaveWorker();
      await sink.addSealedBlob({ type, id, sealed: Buffer.from((reply as { sealed: ArrayBuffer }).sealed) }, n);
      return id;
    } finally {
      leaveWorker();
      this.budget.release(n);
    }
  }

  private async storeInline(type: BlobType, chunk: Uint8Array, sink: BlobSink): Promise<Buffer> {
    const id = blobId(this.keys.idKey, chunk);
    if (sink.claim(id.toString('hex'))) {
      const key = type === 'tree' ? this.keys.metaKey : this.keys.contentKey;
      await sink.addSealedBlob({ type, id, sealed: sealBlob(key, type, id, chunk, this.keys.compression) }, chunk.length);
    }
    return id;
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
      const data = ownCopy(sealed);
      const reply = await this.request(w, { op: 'open', seq: ++this.seq, type, id, key, sealed: data }, [data]);
      if ('failure' in reply) return reply.failure;
      return Buffer.from((reply as { plain: ArrayBuffer }).plain);
    } finally {
      w.outstanding -= n;
      this.budget.release(n);
    }
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

function ownCopy(b: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}
