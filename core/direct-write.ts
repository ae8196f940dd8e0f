/**
 * Writing files around the page cache (O_DIRECT): packs, for local
 * repositories and the server's filesystem store, and the large files a
 * restore writes (from its worker threads, over file descriptors, writing
 * behind: DirectAppender).
 *
 * A backup writes as many bytes as it reads, and nothing reads a pack back
 * soon; a restore writes a volume's worth, which its containers read later
 * if at all. Through the page cache every written page is first allocated and
 * filled, which on a host whose free memory has gone cold (a virtual machine
 * whose host took freed pages back) cost 2.2 s of kernel time per 800 MiB
 * here, against 0.07 s written directly (bench: a 1 GiB backup's libuv
 * thread was busy most of the run). It also keeps a nightly backup from
 * pushing the running containers' files out of the cache. A cold 1 GiB restore
 * spent 3.6–4.5 s of kernel time through the cache and 1.8–2.0 s around it
 * (5.1–6.2 s against 3.9–4.1 s wall, alternating runs).
 *
 * O_DIRECT wants the file offset, length and memory address of each write
 * aligned to the device's logical block. Node says nothing about addresses,
 * so each file's first write finds an aligned offset in the staging buffer
 * by trying (the one that worked last, first); a file system that refuses
 * O_DIRECT (ramfs) or every offset makes the caller write through the cache
 * instead.
 */
import * as fss from 'node:fs';
import * as fs from 'node:fs/promises';
import { errnoCode } from './errors.ts';

/** Alignment of offsets, lengths and addresses: covers logical blocks of 512 B and 4 KiB. */
const BLOCK = 4096;
/** Bytes copied into a staging buffer and written per call. */
const STAGE = 4 * 1024 * 1024;
/** Staging buffers kept between files, per thread (one per file in flight: a local repository writes three packs at once). */
const KEEP = 4;

/** The O_DIRECT flag where the platform has one. */
export const O_DIRECT: number | undefined = (fss.constants as Record<string, number | undefined>)['O_DIRECT'];
/** Data packs and restored files at least this large are written around the page cache; smaller ones are not worth it. */
export const DIRECT_MIN = 1024 * 1024;

/**
 * A staging buffer with an aligned window `view` of STAGE bytes, found by
 * trying writes (see candidates): bytes are copied in and go out a
 * full window at a time. One per file being written; kept for reuse.
 */
class Stage {
  readonly raw = Buffer.allocUnsafeSlow(STAGE + BLOCK);
  /** The window that worked last (the address alignment does not change; the file system's may). */
  view: Buffer | null = null;

  /** Offsets of `raw` to try as the window's start, the one that worked last first. */
  *candidates(): Generator<Buffer> {
    const first = this.view ? this.view.byteOffset - this.raw.byteOffset : 0;
    for (let i = -1; i < BLOCK / 16; i++) {
      const at = i < 0 ? first : i * 16;
      if (i >= 0 && at === first) continue;
      const view = this.raw.subarray(at, at + STAGE);
      // The probe writes these zeros where the window's bytes will go in the file (probeWindow); they overwrite them.
      view.fill(0, 0, BLOCK);
      yield view;
    }
  }

  static take(): Stage {
    return stages.pop() ?? new Stage();
  }

  give(): void {
    if (stages.length < KEEP) stages.push(this);
  }
}

/** Staging buffers kept between files, per thread. */
const stages: Stage[] = [];

/** Why a direct write was not possible; the caller writes through the page cache instead. */
class DirectWriteUnsupported extends Error {}

/**
 * The bytes appended to a file and not yet written: where the staging
 * window's first byte goes in the file, and how much of it is filled. The
 * writers below share it; they differ in how they call the kernel.
 */
class Appender {
  readonly view: Buffer;
  /** Bytes staged, and the file offset where the staging buffer's first byte goes. */
  fill = 0;
  at = 0;

  constructor(view: Buffer) {
    this.view = view;
  }

  /** Copies from data[from..] until the window is full or data ends; returns the new `from`. */
  stage(data: Uint8Array, from: number): number {
    const take = Math.min(data.length - from, STAGE - this.fill);
    this.view.set(data.subarray(from, from + take), this.fill);
    this.fill += take;
    return from + take;
  }

  get full(): boolean {
    return this.fill === STAGE;
  }

  /** After the window was written: it starts empty at the next offset. */
  advance(): void {
    this.at += STAGE;
    this.fill = 0;
  }

  /** The length to write for what is staged: whole blocks (the file is cut back to `length` after). */
  get padded(): number {
    return Math.ceil(this.fill / BLOCK) * BLOCK;
  }

  /** Bytes appended in all. */
  get length(): number {
    return this.at + this.fill;
  }
}

/**
 * Appends to a new, empty file opened with O_DIRECT, through an aligned
 * staging buffer: bytes go out a full buffer at a time, and end() writes
 * the rest (rounded up to a block) and cuts the file to its length.
 */
export class DirectWriter {
  private readonly fh: fs.FileHandle;
  private stage: Stage | null;
  private readonly out: Appender;

  private constructor(fh: fs.FileHandle, stage: Stage, view: Buffer) {
    this.fh = fh;
    this.stage = stage;
    this.out = new Appender(view);
  }

  /** Throws DirectWriteUnsupported where the file system refuses every aligned write. */
  static async start(fh: fs.FileHandle): Promise<DirectWriter> {
    const stage = Stage.take();
    // Checked on every file, from the offset that worked last: one 4 KiB write, and the window is known good for the
    // file system this file is on (their logical blocks differ, 512 B or 4 KiB).
    for (const view of stage.candidates()) {
      try {
        await writeFully(fh, view, BLOCK, 0);
        stage.view = view;
        return new DirectWriter(fh, stage, view);
      } catch (e) {
        if (errnoCode(e) !== 'EINVAL') {
          stage.give();
          throw e;
        }
      }
    }
    stage.give();
    throw new DirectWriteUnsupported('no buffer offset that O_DIRECT accepts');
  }

  async append(data: Uint8Array): Promise<void> {
    const out = this.out;
    for (let o = 0; o < data.length; ) {
      o = out.stage(data, o);
      if (out.full) {
        await writeFully(this.fh, out.view, STAGE, out.at);
        out.advance();
      }
    }
  }

  /** Writes what is staged and leaves the file exactly as long as what was appended; the writer is done. */
  async end(): Promise<void> {
    const out = this.out;
    if (out.fill > 0) await writeFully(this.fh, out.view, out.padded, out.at);
    // The last write was padded to a whole block (and the alignment probe wrote one): the file ends where the data does.
    await this.fh.truncate(out.length);
    this.release();
  }

  /** Gives the staging buffer back; safe to call more than once, and after end(). */
  release(): void {
    this.stage?.give();
    this.stage = null;
  }
}

/**
 * DirectWriter's twin for a restore's worker thread, over a file
 * descriptor: it writes behind. A full window goes out on libuv's threads
 * while the thread fills a second one and opens the next blobs; it waits
 * only when that one is full too and the write before has not finished (a
 * cold 1 GiB restore's workers each spent about 0.7 s waiting on their
 * writes before). The alignment probe is synchronous: one 4 KiB write.
 */
export class DirectAppender {
  private readonly fd: number;
  /** The window being filled, and the other one (being written, or free). */
  private filling: { stage: Stage; out: Appender };
  private spare: Stage | null;
  /** The write in flight: at most one, so that writes land in order and `done` only grows. */
  private inFlight: Promise<void> | null = null;
  /** Bytes surely on disk, from the start of the file. */
  private done = 0;

  private constructor(fd: number, stage: Stage, view: Buffer) {
    this.fd = fd;
    this.filling = { stage, out: new Appender(view) };
    this.spare = null;
  }

  /**
   * Starts appending to `fd`, a new, empty file opened with O_DIRECT; null
   * where the file system refuses every aligned write (the caller then
   * writes through the cache: the probe left 4 KiB of zeros, which its
   * first write covers or end() cuts).
   */
  static start(fd: number): DirectAppender | null {
    const stage = Stage.take();
    try {
      const view = probeWindow(fd, stage, 0);
      if (view) return new DirectAppender(fd, stage, view);
    } catch (e) {
      stage.give();
      throw e;
    }
    stage.give();
    return null;
  }

  /** Bytes on disk for certain: what went out before any failure. */
  get written(): number {
    return this.done;
  }

  /** Copies `data` in before it returns or first waits; throws the error of a write that failed. */
  async append(data: Uint8Array): Promise<void> {
    for (let o = 0; o < data.length; ) {
      o = this.filling.out.stage(data, o);
      if (this.filling.out.full) await this.rotate();
    }
  }

  /** Writes what is staged, waits for every write, and cuts the file to what was appended. */
  async end(): Promise<void> {
    await this.settle();
    const out = this.filling.out;
    if (out.fill > 0) await writeAt(this.fd, out.view, out.padded, out.at);
    await truncate(this.fd, out.length);
    this.done = out.length;
    this.release();
  }

  /** After a failure: drops what is staged and cuts the file to what is surely on disk. */
  async abandon(): Promise<void> {
    await this.settle().catch(() => {});
    this.release();
    await truncate(this.fd, this.done);
  }

  /** Sends the full window out and goes on in the other, once the write before has finished. */
  private async rotate(): Promise<void> {
    await this.settle();
    const { stage, out } = this.filling;
    const end = out.at + STAGE;
    // The second window, the first time: probed where its bytes will go.
    let next = this.spare;
    let view = next?.view ?? null;
    if (!next) {
      next = Stage.take();
      view = probeWindow(this.fd, next, end);
      if (!view) {
        next.give();
        throw new DirectWriteUnsupported('a second staging buffer found no offset that O_DIRECT accepts');
      }
    }
    this.spare = null;
    this.inFlight = writeAt(this.fd, out.view, STAGE, out.at).then(() => {
      this.done = end;
      this.spare = stage;
    });
    const following = new Appender(view!);
    following.at = end;
    this.filling = { stage: next, out: following };
  }

  /** Waits for the write in flight; throws its error. */
  private async settle(): Promise<void> {
    const w = this.inFlight;
    this.inFlight = null;
    if (w) await w;
  }

  private release(): void {
    this.filling.stage.give();
    this.spare?.give();
    this.spare = null;
  }
}

/**
 * The window of `stage` that O_DIRECT accepts for `fd`, found by writing
 * 4 KiB of zeros at `position` from each candidate (synchronously): where
 * the file's own bytes will go, so they overwrite the zeros or end() cuts
 * them off. Null where every candidate is refused.
 */
function probeWindow(fd: number, stage: Stage, position: number): Buffer | null {
  for (const view of stage.candidates()) {
    try {
      writeFullySync(fd, view, BLOCK, position);
      stage.view = view;
      return view;
    } catch (e) {
      if (errnoCode(e) !== 'EINVAL') throw e;
    }
  }
  return null;
}

function writeAt(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) return resolve();
      fss.write(fd, buf, done, length - done, position + done, (e, n) => {
        if (e) return reject(e);
        if (n === 0) return reject(noProgress());
        step(done + n);
      });
    };
    step(0);
  });
}

function truncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fss.ftruncate(fd, length, (e) => (e ? reject(e) : resolve())));
}

/**
 * Creates the file at `path` (which must not exist) for writing with
 * O_DIRECT and starts its writer; null, with no file left, where the file
 * system refuses O_DIRECT (at the open, or on every probing write), which
 * the caller then stops trying. Other errors are the open's own.
 */
export async function openDirect(path: string, mode: number): Promise<{ fh: fs.FileHandle; writer: DirectWriter } | null> {
  if (O_DIRECT === undefined) return null;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, fss.constants.O_WRONLY | fss.constants.O_CREAT | fss.constants.O_EXCL | O_DIRECT, mode);
  } catch (e) {
    if (errnoCode(e) !== 'EINVAL') throw e;
    // Whether the refusal came before or after the file was made depends on the file system.
    await fs.rm(path, { force: true });
    return null;
  }
  try {
    return { fh, writer: await DirectWriter.start(fh) };
  } catch (e) {
    await fh.close();
    await fs.rm(path, { force: true });
    if (e instanceof DirectWriteUnsupported) return null;
    throw e;
  }
}

async function writeFully(fh: fs.FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, done, length - done, position + done);
    if (bytesWritten === 0) throw noProgress();
    done += bytesWritten;
  }
}

function writeFullySync(fd: number, buf: Buffer, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = fss.writeSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw noProgress();
    done += n;
  }
}

function noProgress(): Error {
  return Object.assign(new Error('the write made no progress'), { code: 'EIO' });
}
