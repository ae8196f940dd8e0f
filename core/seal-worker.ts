/**
 * A worker thread of the seal pool. On the way in it hashes chunks (read in
 * place from the shared chunk arena) into blob IDs, then seals (compresses,
 * encrypts) the ones the main thread says are new straight into a pack of
 * its own. A full pack is finished here (blobs shuffled, header sealed, named
 * by its SHA-256) in a shared buffer that the main thread uploads and then
 * hands back for the next pack. Chunks wait in the arena between the two
 * steps, so a duplicate is never copied. On the way out it opens and
 * verifies blobs for a restore.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { ownBuffer } from './buffer-pool.ts';
import type { CompressionSettings } from './compression.ts';
import { blobId, initCrypto } from './crypto.ts';
import { type BlobType, openVerifiedBlob, openVerifiedBlobLent, sealBlobInto, sealedBlobMax } from './envelope.ts';
import type { DirectAppender } from './direct-write.ts';
import { createRestored } from './fresh-file.ts';
import { PackReader, shortRead } from './pack-reader.ts';
import { type KeySlot, layOut, packTail, packTailMaxSize } from './pack.ts';
import { FileLane, type FileOutcome, type LaneFile } from '../restore/file-lane.ts';

export interface SealWorkerInit {
  readonly idKey: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly compression: CompressionSettings;
  /** Seals pack headers. */
  readonly metaKey: Uint8Array;
  /** The key slot of the data packs this process writes. */
  readonly slot: { readonly kind: 'none' } | { readonly kind: 'sealed'; readonly sealedKey: Uint8Array };
  /** A pack is finished once its blobs reach this many bytes. */
  readonly packSize: number;
  /** The chunk arena (null for a pool that only opens blobs). */
  readonly arena: SharedArrayBuffer | null;
}

/**
 * A finished data pack in a shared pack buffer: its blobs in pack order, each
 * at its own offset (a few bytes of padding may lie between them, see
 * finishPack), then the header and trailer.
 */
export interface PackMessage {
  /** Which of this worker's pack buffers holds it; handed back with 'recycle'. */
  readonly slot: number;
  /** The buffer itself, the first time this slot is used. */
  readonly buffer?: SharedArrayBuffer;
  readonly name: string;
  readonly size: number;
  /** 32-byte IDs end to end, in pack order. */
  readonly ids: ArrayBuffer;
  /** Each blob's offset in the buffer, then the tail's (header and trailer); in pack order. */
  readonly offsets: readonly number[];
  /** Each blob's length, then the tail's. */
  readonly lengths: readonly number[];
  /** Plaintext bytes of its blobs, for the statistics. */
  readonly raw: number;
}

/**
 * Requests come in batches: one message per chunk would cost more than
 * hashing a small chunk does.
 */
export type SealRequest =
  | { readonly op: 'hash'; readonly items: readonly { readonly seq: number; readonly offset: number; readonly length: number }[] }
  | { readonly op: 'decide'; readonly keep: readonly number[]; readonly drop: readonly number[] }
  | { readonly op: 'flush'; readonly seq: number }
  /** A pack buffer the main thread is done with (uploaded), for reuse. */
  | { readonly op: 'recycle'; readonly slot: number }
  | { readonly op: 'restore'; readonly items: readonly RestoreStep[] }
  /** Files of a local repository, each restored whole (restore/file-lane.ts). */
  | { readonly op: 'files'; readonly items: readonly LaneFile[] }
  | { readonly op: 'verify'; readonly pack: VerifyRequest }
  | {
      readonly op: 'open';
      readonly items: readonly { readonly seq: number; readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly checkId: boolean; readonly sealed: ArrayBuffer }[];
    };

/**
 * One step of restoring a regular file, which a seal worker does whole so
 * that no file content and no per-file system call passes through the main
 * thread: `create` the file (removing whatever is in its place, never
 * following a symlink), then each `blob` in order (its `sealed` bytes, or
 * for a file restored whole the bytes its lane read, opened, verified and
 * written at the file's next position), then `finish` (owner, mode,
 * times, close). A file's steps all
 * go to one worker, in order. After a blob fails, the file's later blobs are
 * skipped, so nothing is written past the last verified byte.
 */
export type RestoreStep =
  /** `size`: the bytes the file will hold; with `direct`, it decides how the file is written (fresh-file.ts, createRestored). */
  | { readonly kind: 'create'; readonly seq: number; readonly file: number; readonly path: Uint8Array; readonly size: number; readonly direct: boolean }
  | {
      readonly kind: 'blob';
      readonly seq: number;
      readonly file: number;
      readonly type: BlobType;
      readonly id: Uint8Array;
      readonly key: Uint8Array;
      /** Whether the plaintext must hash to the ID (Repository.blobNeedsIdCheck). */
      readonly checkId: boolean;
      readonly sealed?: ArrayBuffer;
      readonly offset: number;
      readonly length: number;
    }
  | {
      readonly kind: 'finish';
      readonly seq: number;
      readonly file: number;
      readonly owner?: { readonly uid: number; readonly gid: number };
      readonly mode: number;
      /** Seconds since the epoch, as utimes takes them. */
      readonly mtime: number;
    };

/** What became of a RestoreStep; `at` is the file's verified length when it stopped. */
export type RestoreOutcome =
  | { readonly seq: number; readonly done: true }
  | { readonly seq: number; readonly written: number }
  | { readonly seq: number; readonly failure: 'decrypt' | 'id' | 'skipped'; readonly at: number }
  | { readonly seq: number; readonly stage: 'create' | 'read' | 'write'; readonly error: string; readonly code?: string; readonly at: number }
  /**
   * finish: the file is closed; `problem` says which metadata could not be
   * set. (A file written around the page cache writes its last bytes here:
   * when that fails, the outcome is a 'write' failure instead.)
   */
  | { readonly seq: number; readonly finished: true; readonly problem?: string };

/**
 * A whole pack to verify (check --read-data): read from `path` (a local
 * repository) or given as `bytes`; its SHA-256 is compared with its name and
 * each listed blob is opened and its ID checked. Nothing comes back but the
 * verdicts.
 */
export interface VerifyRequest {
  readonly seq: number;
  readonly name: string;
  readonly path?: string;
  readonly bytes?: ArrayBuffer;
  readonly blobs: readonly { readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly offset: number; readonly length: number }[];
}

export interface VerifyResult {
  readonly seq: number;
  /** Bytes read; 0 when the pack could not be read (see readError). */
  readonly read: number;
  readonly readError?: string;
  readonly nameMatches: boolean;
  /** Blobs (by their index in the request) that failed, and how. */
  readonly failures: readonly { readonly index: number; readonly failure: 'decrypt' | 'id' | 'outside' }[];
}

export type OpenResult = { readonly seq: number; readonly plain: ArrayBuffer } | { readonly seq: number; readonly failure: 'decrypt' | 'id' };

export type SealReply =
  | { readonly op: 'ids'; readonly seqs: readonly number[]; readonly ids: ArrayBuffer }
  /** These seqs are sealed into this worker's pack (or, for a flush, every pack is handed over). */
  | { readonly op: 'done'; readonly seqs: readonly number[] }
  | { readonly op: 'pack'; readonly pack: PackMessage }
  | { readonly op: 'opened'; readonly items: readonly OpenResult[] }
  | { readonly op: 'restored'; readonly items: readonly RestoreOutcome[] }
  /** Bytes written into files still in progress, by file, since the last report. */
  | { readonly op: 'progress'; readonly items: readonly { readonly seq: number; readonly bytes: number }[] }
  /** Files restored whole that ended, gathered over one turn of the worker's event loop. */
  | { readonly op: 'files'; readonly outcomes: readonly FileOutcome[] }
  | { readonly op: 'verified'; readonly result: VerifyResult };

export function packIds(ids: readonly Uint8Array[]): ArrayBuffer {
  const ab = new ArrayBuffer(ids.length * 32);
  const v = new Uint8Array(ab);
  ids.forEach((id, i) => v.set(id, i * 32));
  return ab;
}

/**
 * Room for a full pack plus the largest chunk the format allows, sealed, and
 * slack for padding and the header; OpenPack.fits decides when a pack must
 * be finished before the next blob.
 */
function packCapacity(packSize: number): number {
  return packSize + sealedBlobMax(16 * 1024 * 1024) + 64 * 1024;
}

/**
 * Shared buffers that packs are sealed into and uploaded from, filled again
 * once the main thread hands them back: a pack is then written into memory
 * already in use rather than into fresh pages, which cost more than the copy
 * on a virtual machine whose host reclaims freed guest memory.
 */
class PackBuffers {
  private readonly all: SharedArrayBuffer[] = [];
  private readonly free: number[] = [];
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** A free buffer; `fresh` when the main thread has not seen it yet. */
  take(): { slot: number; buffer: SharedArrayBuffer; fresh: boolean } {
    const slot = this.free.pop();
    if (slot !== undefined) return { slot, buffer: this.all[slot]!, fresh: false };
    const buffer = new SharedArrayBuffer(this.capacity);
    this.all.push(buffer);
    return { slot: this.all.length - 1, buffer, fresh: true };
  }

  give(slot: number): void {
    this.free.push(slot);
  }
}

/**
 * The pack a worker is filling: sealed blobs in a shared pack buffer, each
 * up to 7 bytes after the one before (see sealOffset), in arrival order. The
 * pack's order is decided when it is finished; the padding is never part of
 * it, as the pack is uploaded as pieces.
 */
class OpenPack {
  readonly slot: number;
  readonly buffer: SharedArrayBuffer;
  readonly fresh: boolean;
  readonly view: Uint8Array;
  readonly blobs: { type: 'data'; id: Buffer; offset: number; length: number }[] = [];
  /** Where the next blob goes. */
  end = 0;
  /** Sealed bytes in the pack (without padding). */
  bytes = 0;
  raw = 0;

  constructor(b: { slot: number; buffer: SharedArrayBuffer; fresh: boolean }) {
    this.slot = b.slot;
    this.buffer = b.buffer;
    this.fresh = b.fresh;
    this.view = new Uint8Array(b.buffer);
  }

  /** Whether one more blob of this size fits, with the padding before it and the header that will follow. */
  fits(plaintextLength: number): boolean {
    return this.end + 7 + sealedBlobMax(plaintextLength) + packTailMaxSize(this.blobs.length + 1) <= this.view.length;
  }

  /** A blob sealed at `offset` (at most 7 bytes past `end`, see sealOffset). */
  add(id: Buffer, at: { offset: number; length: number }, raw: number): void {
    const { offset, length } = at;
    this.blobs.push({ type: 'data', id, offset, length });
    this.end = offset + length;
    this.bytes += length;
    this.raw += raw;
  }
}

/**
 * Decides the pack's order (random), seals its header into the buffer after
 * the blobs, and names it by the SHA-256 of its pieces in that order.
 */
function finishPack(open: OpenPack, init: SealWorkerInit, slot: KeySlot): PackMessage {
  const { order, entries, bytes } = layOut(open.blobs);
  const tail = packTail(entries, init.metaKey, slot);
  if (open.end + tail.length > open.view.length) throw new RangeError('pack header does not fit the pack buffer');
  open.view.set(tail, open.end);
  const pieces = [...order, { offset: open.end, length: tail.length }];
  const hash = createHash('sha256');
  for (const p of pieces) hash.update(open.view.subarray(p.offset, p.offset + p.length));
  const ids = new ArrayBuffer(entries.length * 32);
  const idView = new Uint8Array(ids);
  entries.forEach((e, i) => idView.set(e.id, i * 32));
  return {
    slot: open.slot,
    ...(open.fresh ? { buffer: open.buffer } : {}),
    name: hash.digest('hex'),
    size: bytes + tail.length,
    ids,
    offsets: pieces.map((p) => p.offset),
    lengths: pieces.map((p) => p.length),
    raw: open.raw,
  };
}

/**
 * Blobs opened for the main thread ('open') and, with the WebAssembly
 * libsodium, each slice Node's cipher encrypts or decrypts come back in new
 * buffers, which are garbage as soon as they are handed over or copied into
 * the pack (zstd's output and the blobs a restore or check opens are not:
 * they go to this thread's buffers); V8 collects such buffers only after
 * tens of MiB of them, and until then they stay resident. A young-generation
 * collection every few MiB sealed or opened costs well under a millisecond
 * and keeps them from adding up.
 */
function youngCollector(): (bytes: number) => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (opts: { type: 'minor' }) => void;
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < COLLECT_EVERY_BYTES) return;
    gc({ type: 'minor' });
    since = 0;
  };
}
const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * A restore's files restored whole: bytes read ahead per worker (room for a
 * span and the reads after it), reads in flight, and how often progress is
 * sent. The arena is small because memory touched for the first time is
 * dear: on the benchmark's virtual machine the first write to 48 MiB took
 * 145-200 ms (a fault per page, and the host's own behind it), the second
 * 14 ms; with 48 MiB arenas a cold 1 GiB restore spent ~0.3 s of CPU
 * faulting them in, as its large files started (docs/benchmarks.md).
 */
const LANE_BYTES = 16 * 1024 * 1024;
const LANE_READS = 4;
/** Files under this size are restored in a lane of their own (see 'files'). */
const SMALL_FILE = 16 * 1024 * 1024;
const PROGRESS_MS = 100;

/**
 * Whole pack files read for check --read-data, each into a buffer of this
 * worker's that the next read reuses.
 */
class PackFiles {
  private buf = Buffer.allocUnsafeSlow(1024 * 1024);

  read(path: string): Buffer {
    const fd = fs.openSync(path, fs.constants.O_RDONLY);
    try {
      const length = fs.fstatSync(fd).size;
      if (this.buf.length < length) this.buf = Buffer.allocUnsafeSlow(Math.max(length, this.buf.length * 2));
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, this.buf, got, length - got, got);
        if (n === 0) break;
        got += n;
      }
      if (got < length) throw shortRead(length, 0, got);
      return this.buf.subarray(0, length);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** A file a restore is writing, in a worker. */
interface RestoringFile {
  readonly fd: number;
  /** Set for a file written around the page cache. */
  readonly direct: DirectAppender | null;
  /** Bytes verified and written (or, direct, staged). */
  pos: number;
  /** A blob failed: later ones are skipped. */
  failed: boolean;
  /** The failure was a write (the staged bytes are not to be trusted). */
  writeFailed: boolean;
}

/**
 * Writes a direct file's staged bytes (all verified) and cuts it to its
 * length; after a failed write, cuts it to what is surely on disk. Returns
 * what was lost when the last write fails.
 */
async function finishDirect(f: RestoringFile, direct: DirectAppender): Promise<{ error: string; code?: string; at: number } | null> {
  try {
    if (f.writeFailed) await direct.abandon();
    else await direct.end();
    return null;
  } catch (e) {
    try {
      await direct.abandon();
    } catch {
      // The file is reported as cut short either way.
    }
    return { ...errorFields(e), at: direct.written };
  }
}

function errorFields(e: unknown): { error: string; code?: string } {
  const code = (e as { code?: unknown }).code;
  return { error: e instanceof Error ? e.message : String(e), ...(typeof code === 'string' ? { code } : {}) };
}

function writeFully(fd: number, data: Uint8Array, position: number): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, position + off);
}

if (parentPort) {
  await initCrypto();
  /** Counts bytes sealed or opened, which leave garbage behind; collects the young generation every few MiB. */
  const collectAfter = youngCollector();
  const init = workerData as SealWorkerInit;
  const slot: KeySlot = init.slot.kind === 'sealed' ? { kind: 'sealed', sealedKey: Buffer.from(init.slot.sealedKey) } : { kind: 'none' };
  const held = new Map<number, { offset: number; length: number; id: Buffer }>();
  const arena = init.arena ? Buffer.from(init.arena) : null;
  const hashChunk = (offset: number, length: number): Buffer => blobId(init.idKey, arena!.subarray(offset, offset + length));
  const buffers = new PackBuffers(packCapacity(init.packSize));
  let open: OpenPack | null = null;
  /** Restore: the files being written, by the number the main thread gave each. */
  const files = new Map<number, RestoringFile>();
  const packFiles = new PackFiles();
  /** Made with the first file restored whole: its arena is the bytes read ahead. */
  let packReader: PackReader | null = null;
  /** The restore batch being worked through; the next starts after it. */
  let restoring: Promise<void> = Promise.resolve();
  /** Files restored whole, and the bytes written into them not yet reported (sent every PROGRESS_MS). */
  let largeLane: FileLane | null = null;
  let smallLane: FileLane | null = null;
  const unreported = new Map<number, number>();
  // One message for the files that end together (small files end many to a turn): the main thread wakes once for them.
  let endedFiles: FileOutcome[] = [];
  const sendEndedFiles = (): void => {
    port.postMessage({ op: 'files', outcomes: endedFiles } satisfies SealReply);
    endedFiles = [];
  };
  let reportTimer: NodeJS.Timeout | null = null;

  const verifyPack = (req: VerifyRequest): VerifyResult => {
    let bytes: Uint8Array;
    try {
      bytes = req.bytes ? new Uint8Array(req.bytes) : packFiles.read(req.path!);
    } catch (e) {
      return { seq: req.seq, read: 0, readError: errorFields(e).error, nameMatches: false, failures: [] };
    }
    const nameMatches = createHash('sha256').update(bytes).digest('hex') === req.name;
    const failures: { index: number; failure: 'decrypt' | 'id' | 'outside' }[] = [];
    req.blobs.forEach((b, index) => {
      if (b.offset + b.length > bytes.length) {
        failures.push({ index, failure: 'outside' });
        return;
      }
      const r = openVerifiedBlobLent(init.idKey, b.key, b.type, Buffer.from(b.id), bytes.subarray(b.offset, b.offset + b.length));
      if (r === 'decrypt' || r === 'id') failures.push({ index, failure: r });
    });
    return { seq: req.seq, read: bytes.length, nameMatches, failures };
  };

  /** `read`: for a blob of a file restored whole, its bytes as its lane read them (or why they could not be read). */
  const restoreStep = async (step: RestoreStep, read?: Buffer | Error): Promise<RestoreOutcome> => {
    const f = files.get(step.file);
    if (step.kind === 'create') {
      try {
        const { fd, direct } = createRestored(Buffer.from(step.path), step.size, step.direct);
        files.set(step.file, { fd, direct, pos: 0, failed: false, writeFailed: false });
        return { seq: step.seq, done: true };
      } catch (e) {
        return { seq: step.seq, stage: 'create', ...errorFields(e), at: 0 };
      }
    }
    if (step.kind === 'finish') {
      if (!f) return { seq: step.seq, finished: true };
      files.delete(step.file);
      const lost = f.direct ? await finishDirect(f, f.direct) : null;
      let problem: string | undefined;
      try {
        if (step.owner) fs.fchownSync(f.fd, step.owner.uid, step.owner.gid);
        fs.fchmodSync(f.fd, step.mode);
        fs.futimesSync(f.fd, step.mtime, step.mtime);
      } catch (e) {
        problem = e instanceof Error ? e.message : String(e);
      }
      fs.closeSync(f.fd);
      if (lost) return { seq: step.seq, stage: 'write', ...lost };
      return { seq: step.seq, finished: true, ...(problem ? { problem } : {}) };
    }
    if (!f || f.failed) return { seq: step.seq, failure: 'skipped', at: f?.pos ?? 0 };
    let stage: 'read' | 'write' = 'read';
    try {
      if (read instanceof Error) throw read;
      const sealed = step.sealed ? new Uint8Array(step.sealed) : read;
      if (!sealed) throw new Error('the blob came without its bytes');
      const plain = openVerifiedBlobLent(init.idKey, step.key, step.type, Buffer.from(step.id), sealed, step.checkId);
      if (plain === 'decrypt' || plain === 'id') {
        f.failed = true;
        return { seq: step.seq, failure: plain, at: f.pos };
      }
      stage = 'write';
      // `plain` is lent until the next blob is opened: append copies it before that (batches go one step at a time).
      if (f.direct) await f.direct.append(plain);
      else writeFully(f.fd, plain, f.pos);
      f.pos += plain.length;
      collectAfter(plain.length);
      return { seq: step.seq, written: plain.length };
    } catch (e) {
      f.failed = true;
      // A direct write that failed may have lost the staged bytes with it: the file keeps what is surely on disk.
      if (stage === 'write' && f.direct) {
        f.writeFailed = true;
        f.pos = f.direct.written;
      }
      return { seq: step.seq, stage, ...errorFields(e), at: f.pos };
    }
  };
  const port = parentPort;
  const shipPack = (): void => {
    if (!open || open.blobs.length === 0) return;
    const pack = finishPack(open, init, slot);
    open = null;
    port.postMessage({ op: 'pack', pack } satisfies SealReply, [pack.ids]);
  };

  /** A lane of files restored whole; the two lanes (see 'files') share the read arena and the progress reports. */
  const newLane = (): FileLane =>
    new FileLane(
      {
        read: (path, offset, length, force, cached) => (packReader ??= new PackReader(LANE_BYTES)).read(path, offset, length, force, cached),
        step: restoreStep,
        progress: (seq, bytes) => {
          unreported.set(seq, (unreported.get(seq) ?? 0) + bytes);
          reportTimer ??= setTimeout(() => {
            reportTimer = null;
            const items = [...unreported].map(([seq, bytes]) => ({ seq, bytes }));
            unreported.clear();
            port.postMessage({ op: 'progress', items } satisfies SealReply);
          }, PROGRESS_MS);
        },
      },
      { maxReads: LANE_READS },
    );

  port.on('message', (msg: SealRequest) => {
    switch (msg.op) {
      case 'hash': {
        const ids = msg.items.map(({ seq, offset, length }) => {
          const id = hashChunk(offset, length);
          held.set(seq, { offset, length, id });
          return id;
        });
        const packed = packIds(ids);
        port.postMessage({ op: 'ids', seqs: msg.items.map((i) => i.seq), ids: packed } satisfies SealReply, [packed]);
        break;
      }
      case 'decide': {
        for (const seq of msg.drop) held.delete(seq);
        for (const seq of msg.keep) {
          const { offset, length: n, id } = held.get(seq)!;
          held.delete(seq);
          const data = arena!.subarray(offset, offset + n);
          if (open && !open.fits(n)) shipPack();
          open ??= new OpenPack(buffers.take());
          open.add(id, sealBlobInto(init.contentKey, 'data', id, data, init.compression, open.view, open.end), n);
          collectAfter(n);
          if (open.bytes >= init.packSize) shipPack();
        }
        port.postMessage({ op: 'done', seqs: msg.keep } satisfies SealReply);
        break;
      }
      case 'flush': {
        shipPack();
        port.postMessage({ op: 'done', seqs: [msg.seq] } satisfies SealReply);
        break;
      }
      case 'recycle':
        buffers.give(msg.slot);
        break;
      case 'restore': {
        // Batches are done in order, each step after the one before.
        restoring = restoring.then(async () => {
          const items: RestoreOutcome[] = [];
          for (const step of msg.items) items.push(await restoreStep(step));
          port.postMessage({ op: 'restored', items } satisfies SealReply);
        });
        break;
      }
      case 'files': {
        for (const file of msg.items) {
          // Small files go in a lane of their own, beside the large ones: behind a large file they waited for it to
          // end. Not files written around the page cache: a direct append may wait halfway through a lent plaintext
          // (openVerifiedBlobLent), which a blob opened by the other lane meanwhile would overwrite.
          const small = !file.direct && file.size < SMALL_FILE;
          const lane = small ? (smallLane ??= newLane()) : (largeLane ??= newLane());
          void lane.add(file).then((outcome) => {
            // The outcome carries the whole count; what was not reported yet goes with it.
            unreported.delete(outcome.seq);
            endedFiles.push(outcome);
            if (endedFiles.length === 1) setImmediate(sendEndedFiles);
          });
        }
        break;
      }
      case 'verify':
        port.postMessage({ op: 'verified', result: verifyPack(msg.pack) } satisfies SealReply);
        break;
      case 'open': {
        const transfer: ArrayBuffer[] = [];
        const items = msg.items.map((it): OpenResult => {
          const plain = openVerifiedBlob(init.idKey, it.key, it.type, Buffer.from(it.id), new Uint8Array(it.sealed), it.checkId);
          if (plain === 'decrypt' || plain === 'id') return { seq: it.seq, failure: plain };
          const out = ownBuffer(plain);
          transfer.push(out);
          return { seq: it.seq, plain: out };
        });
        port.postMessage({ op: 'opened', items } satisfies SealReply, transfer);
        break;
      }
    }
  });
}
