/**
 * Reads a local repository's pack files into the page cache while the key
 * is being derived, before anything about the repository can be decrypted.
 *
 * Argon2id holds one core for about half a second at the start of every
 * command, and until it ends a restore cannot know which packs it needs:
 * the disk sits idle. A whole restore from a local repository needs most
 * of its packs (a volume's data is mostly in its own packs), so they are
 * read now, as a hint to the kernel, and the restore's own reads find them
 * in memory. Measured on the benchmark's repository (826 MiB of packs,
 * read cold): the warmer read all of it during the derivation, and a
 * restore took 2.21–2.23 s instead of 2.51–2.56 s (docs/benchmarks.md).
 *
 * It is only a hint, so it never fails: a pack that disappears (a prune
 * runs) or cannot be read is passed over, and any other error ends the
 * warming quietly. What it may waste is bounded: it stops when told (the
 * key is derived), after `budgetBytes`, and it reads packs whole, a few at
 * a time, so that the kernel's own read-ahead runs ahead of each.
 */
import * as fs from 'node:fs/promises';
import { freemem } from 'node:os';
import type { Backend, Handle } from './backend.ts';

/** What a warming read before it stopped. */
export interface WarmingResult {
  /** Packs read to their end. */
  readonly packs: number;
  readonly bytes: number;
}

export interface WarmerOptions {
  /** Bytes read at most; default a quarter of the memory the system has available. */
  readonly budgetBytes?: number;
  /** Packs read at once (4 kept the benchmark's disk busiest; 2 left it short of that). */
  readonly streams?: number;
  /** Where the names of the packs read to their end go, as they are read: a restore reads their blobs without a thread switch (restore/file-lane.ts). */
  readonly into?: Set<string>;
}

/** One read's size: the kernel reads ahead of a sequential reader, so this only sets how often the warmer looks at its stop flag. */
const READ_BYTES = 1 << 20;

export class PackWarmer {
  private stopped = false;
  private packs = 0;
  private bytes = 0;
  private readonly budget: number;
  private readonly whole: Set<string>;
  private readonly done: Promise<WarmingResult>;

  private readonly backend: Backend;
  private readonly filePath: (h: Handle) => string;

  private constructor(backend: Backend, filePath: (h: Handle) => string, opts: WarmerOptions) {
    this.backend = backend;
    this.filePath = filePath;
    this.budget = opts.budgetBytes ?? Math.floor(freemem() / 4);
    this.whole = opts.into ?? new Set();
    this.done = this.run(opts.streams ?? 4);
  }

  /** Starts warming `backend`'s packs; null for a backend whose objects are not files here (a server, S3). */
  static start(backend: Backend, opts: WarmerOptions = {}): PackWarmer | null {
    const filePath = backend.filePath?.bind(backend);
    if (!filePath) return null;
    return new PackWarmer(backend, filePath, opts);
  }

  /** Stops at the next read; resolves, once the reads in flight are over, to what was read. Callers need not wait. */
  stop(): Promise<WarmingResult> {
    this.stopped = true;
    return this.done;
  }

  /** Resolves when every pack was read, the budget spent or stop() called. */
  finished(): Promise<WarmingResult> {
    return this.done;
  }

  private get over(): boolean {
    return this.stopped || this.bytes >= this.budget;
  }

  private async run(streams: number): Promise<WarmingResult> {
    try {
      // Packs are read as the listing finds them rather than after it: listing a large repository is itself slow.
      const names = this.backend.list('data')[Symbol.asyncIterator]();
      const buffers = Array.from({ length: streams }, () => Buffer.allocUnsafe(READ_BYTES));
      const next = async (): Promise<string | null> => {
        if (this.over) return null;
        const r = await names.next();
        return r.done ? null : r.value.name;
      };
      await Promise.all(
        buffers.map(async (buf) => {
          for (let name = await next(); name !== null; name = await next()) await this.readPack(name, buf);
        }),
      );
      await names.return?.();
    } catch {
      // Only a hint: the restore reads what it needs either way, and reports what it cannot.
    }
    return { packs: this.packs, bytes: this.bytes };
  }

  private async readPack(name: string, buf: Buffer): Promise<void> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.filePath({ type: 'data', name }), 'r');
    } catch {
      return;
    }
    try {
      for (let offset = 0; !this.over; offset += buf.length) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        this.bytes += bytesRead;
        if (bytesRead < buf.length) {
          this.packs++;
          this.whole.add(name);
          break;
        }
      }
    } catch {
      // A pack that cannot be read now is the restore's to report, if it needs it.
    } finally {
      await fh.close().catch(() => {});
    }
  }
}
