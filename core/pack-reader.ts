/**
 * Reading blobs out of local pack files for a restore's workers, into one
 * arena per reader allocated once: its size bounds the bytes read ahead,
 * and nothing is allocated per read (fresh pages cost more than the copy on
 * a virtual machine whose host reclaims freed guest memory, and buffers
 * made and dropped per read left a restore's RSS at 540–640 MiB until V8
 * collected them).
 *
 * Reads go through the page cache. Around it (O_DIRECT), the kernel time of
 * reading fell (0.06–0.09 s against 0.32–0.46 s for the benchmark's 826 MiB
 * of packs read cold in 1 MiB pieces), but a restore read 1,353 MiB instead
 * of 940: a span read for one file's blobs also holds other files' blobs,
 * which through the cache are read once and found there later, and the
 * disk was busy 1.9–2.0 s instead of 1.2 s; restores took 3.5 s against
 * 2.9–3.0 s (docs/benchmarks.md).
 */
import * as fs from 'node:fs';
import { ChunkArena } from './chunk-arena.ts';

/** Pack files kept open (objects never change). */
const OPEN_FILES = 32;

/** Bytes read, lent until release(). */
export interface ReadBytes {
  readonly bytes: Buffer;
  release(): void;
}

interface OpenPack {
  readonly fd: number;
  /** Reads in flight; the descriptor stays open until they are over. */
  reading: number;
  /** Forgotten by the reader: closed when the last read ends. */
  closed: boolean;
}

export class PackReader {
  private readonly fds = new Map<string, OpenPack>();
  /** Regions handed out first fit and given back in any order (the same free list a backup's chunks use). */
  private readonly arena: ChunkArena;
  private readonly bytes: Buffer;

  /** `arenaBytes`: what may be read and not yet released at once, except for forced reads. */
  constructor(arenaBytes: number) {
    this.arena = new ChunkArena(arenaBytes);
    this.bytes = Buffer.from(this.arena.buffer);
  }

  /**
   * Reads `length` bytes at `offset` of the pack file at `path` into the
   * arena, on libuv's threads, or on this one when the pack is `cached` (in
   * the page cache); null when the arena has no room for it now, unless
   * `force`: then into memory of its own (the caller waits on this read,
   * and the bytes that fill the arena are given back only after it).
   */
  read(path: string, offset: number, length: number, force: boolean, cached = false): Promise<ReadBytes> | null {
    const region = this.arena.tryAlloc(length);
    if (region === null && !force) return null;
    const into = region === null ? Buffer.allocUnsafeSlow(length) : this.bytes.subarray(region.offset, region.offset + length);
    const release = region === null ? () => {} : () => this.arena.release(region.offset, length);
    let f: OpenPack;
    try {
      f = this.open(path);
    } catch (e) {
      // A pack that cannot be opened fails this read, as one that cannot be read does.
      release();
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    if (cached) return this.readHere(f, into, offset, release);
    return this.readInto(f, into, offset, release);
  }

  /** A read on this thread: the bytes are a copy from the page cache away, cheaper than the two thread switches of a read on libuv's threads. */
  private readHere(f: OpenPack, into: Buffer, offset: number, release: () => void): Promise<ReadBytes> {
    try {
      let got = 0;
      while (got < into.length) {
        const n = fs.readSync(f.fd, into, got, into.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      if (got < into.length) throw shortRead(into.length, offset, got);
      return Promise.resolve({ bytes: into, release });
    } catch (e) {
      release();
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private async readInto(f: OpenPack, into: Buffer, offset: number, release: () => void): Promise<ReadBytes> {
    f.reading++;
    try {
      const got = await readFully(f.fd, into, offset);
      if (got < into.length) throw shortRead(into.length, offset, got);
      return { bytes: into, release };
    } catch (e) {
      release();
      throw e;
    } finally {
      if (--f.reading === 0 && f.closed) fs.closeSync(f.fd);
    }
  }

  private open(path: string): OpenPack {
    let f = this.fds.get(path);
    if (f) this.fds.delete(path);
    else {
      f = { fd: fs.openSync(path, fs.constants.O_RDONLY), reading: 0, closed: false };
      for (const [old, g] of this.fds) {
        if (this.fds.size < OPEN_FILES) break;
        // Forgotten; its descriptor is closed once its reads in flight are over.
        this.fds.delete(old);
        g.closed = true;
        if (g.reading === 0) fs.closeSync(g.fd);
      }
    }
    this.fds.set(path, f);
    return f;
  }
}

/** Fills `into` from `position` until it is full or the file ends; the count read. */
async function readFully(fd: number, into: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < into.length) {
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, into, got, into.length - got, position + got, (e, k) => (e ? reject(e) : resolve(k))));
    if (n === 0) break;
    got += n;
  }
  return got;
}

export function shortRead(length: number, offset: number, got: number): Error {
  return Object.assign(new Error(`short read: wanted ${length} bytes at offset ${offset}, the pack ends after ${got}`), { code: 'SHORT_READ' });
}
