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
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { ownBuffer } from './buffer-pool.ts';
import type { CompressionSettings } from './compression.ts';
import { blobId, blobIdOfPieces, initCrypto } from './crypto.ts';
import { type BlobType, openBlob, sealBlobInto, sealedBlobMax } from './envelope.ts';
import { type KeySlot, type PackEntry, packTail, shuffle } from './pack.ts';

/** Bytes of a chunk copied out of the arena at a time for hashing. */
const HASH_PIECE = 256 * 1024;

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
  | {
      readonly op: 'open';
      readonly items: readonly { readonly seq: number; readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly sealed: ArrayBuffer }[];
    };

export type OpenResult = { readonly seq: number; readonly plain: ArrayBuffer } | { readonly seq: number; readonly failure: 'decrypt' | 'id' };

export type SealReply =
  | { readonly op: 'ids'; readonly seqs: readonly number[]; readonly ids: ArrayBuffer }
  /** These seqs are sealed into this worker's pack (or, for a flush, every pack is handed over). */
  | { readonly op: 'done'; readonly seqs: readonly number[] }
  | { readonly op: 'pack'; readonly pack: PackMessage }
  | { readonly op: 'opened'; readonly items: readonly OpenResult[] };

export function packIds(ids: readonly Uint8Array[]): ArrayBuffer {
  const ab = new ArrayBuffer(ids.length * 32);
  const v = new Uint8Array(ab);
  ids.forEach((id, i) => v.set(id, i * 32));
  return ab;
}

/** Room for a full pack plus the largest chunk the format allows, sealed, and padding. */
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
 * starting at a multiple of 8 (see sealPartsInto), in arrival order. The
 * pack's order is decided when it is finished; the padding is never part of
 * it, as the pack is uploaded as pieces.
 */
class OpenPack {
  readonly slot: number;
  readonly buffer: SharedArrayBuffer;
  readonly fresh: boolean;
  readonly view: Uint8Array;
  readonly blobs: { id: Buffer; offset: number; length: number }[] = [];
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

  fits(plaintextLength: number): boolean {
    return this.end + sealedBlobMax(plaintextLength) <= this.view.length;
  }

  add(id: Buffer, length: number, raw: number): void {
    this.blobs.push({ id, offset: this.end, length });
    this.end = (this.end + length + 7) & ~7;
    this.bytes += length;
    this.raw += raw;
  }
}

/**
 * Decides the pack's order (random), seals its header into the buffer after
 * the blobs, and names it by the SHA-256 of its pieces in that order.
 */
function finishPack(open: OpenPack, init: SealWorkerInit, slot: KeySlot): PackMessage {
  const order = shuffle(open.blobs);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (const b of order) {
    entries.push({ type: 'data', id: b.id, offset, length: b.length });
    offset += b.length;
  }
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
    size: offset + tail.length,
    ids,
    offsets: pieces.map((p) => p.offset),
    lengths: pieces.map((p) => p.length),
    raw: open.raw,
  };
}

/**
 * The cipher hands back each slice it encrypts in a new buffer, which is
 * garbage as soon as it is copied into the pack; V8 collects such buffers
 * only after tens of MiB of them, and until then they stay resident. A
 * young-generation collection every few MiB sealed costs well under a
 * millisecond and keeps them from adding up.
 */
function youngCollector(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (opts: { type: 'minor' }) => void;
  return () => gc({ type: 'minor' });
}
const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;

if (parentPort) {
  await initCrypto();
  const collect = youngCollector();
  let sealedSinceCollect = 0;
  const init = workerData as SealWorkerInit;
  const slot: KeySlot = init.slot.kind === 'sealed' ? { kind: 'sealed', sealedKey: Buffer.from(init.slot.sealedKey) } : { kind: 'none' };
  const held = new Map<number, { offset: number; length: number; id: Buffer }>();
  const arena = init.arena ? Buffer.from(init.arena) : null;
  /**
   * Hashing copies a chunk out of the arena a piece at a time first: libsodium
   * reading shared memory goes through V8's shared-memory copy, byte by byte
   * when misaligned, while Buffer.copy out of it is a plain memmove. zlib and
   * the cipher read the arena directly.
   */
  const scratch = Buffer.allocUnsafeSlow(HASH_PIECE);
  const hashChunk = (offset: number, length: number): Buffer =>
    blobIdOfPieces(init.idKey, length, HASH_PIECE, (pos, n) => {
      arena!.copy(scratch, 0, offset + pos, offset + pos + n);
      return scratch.subarray(0, n);
    });
  const buffers = new PackBuffers(packCapacity(init.packSize));
  let open: OpenPack | null = null;
  const port = parentPort;
  const shipPack = (): void => {
    if (!open || open.blobs.length === 0) return;
    const pack = finishPack(open, init, slot);
    open = null;
    port.postMessage({ op: 'pack', pack } satisfies SealReply, [pack.ids]);
  };

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
          sealedSinceCollect += n;
          if (sealedSinceCollect >= COLLECT_EVERY_BYTES) {
            collect();
            sealedSinceCollect = 0;
          }
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
      case 'open': {
        const transfer: ArrayBuffer[] = [];
        const items = msg.items.map((it): OpenResult => {
          const id = Buffer.from(it.id);
          const plain = openBlob(it.key, it.type, id, new Uint8Array(it.sealed));
          if (!plain) return { seq: it.seq, failure: 'decrypt' };
          if (!blobId(init.idKey, plain).equals(id)) return { seq: it.seq, failure: 'id' };
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
