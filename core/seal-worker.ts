/**
 * A worker thread of the seal pool. On the way in it hashes chunks into blob
 * IDs, and seals (compresses, encrypts) the ones the main thread says are
 * new straight into a pack of its own; a full pack is shuffled, given its
 * header, hashed and handed back whole, ready to upload. Chunks wait here
 * between hashing and sealing, so a duplicate is never copied back. On the
 * way out it opens and verifies blobs for a restore.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CompressionSettings } from './compression.ts';
import { blobId, initCrypto } from './crypto.ts';
import { type BlobType, openBlob, sealBlobParts } from './envelope.ts';
import { type KeySlot, type SealedBlob, buildPack } from './pack.ts';

export interface SealWorkerInit {
  readonly idKey: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly metaKey: Uint8Array;
  readonly compression: CompressionSettings;
  readonly packSize: number;
  readonly keySlot: KeySlot;
}

/**
 * Requests come in batches: one message per chunk would cost more than
 * hashing a small chunk does.
 */
export type SealRequest =
  | { readonly op: 'hash'; readonly items: readonly { readonly seq: number; readonly data: ArrayBuffer }[] }
  | { readonly op: 'decide'; readonly keep: readonly number[]; readonly drop: readonly number[] }
  | { readonly op: 'flush'; readonly seq: number }
  | {
      readonly op: 'open';
      readonly items: readonly { readonly seq: number; readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly sealed: ArrayBuffer }[];
    };

/**
 * A finished pack. IDs travel packed into one buffer (32 bytes each, in
 * entry order): a Buffer posted on its own is cloned with the whole 8 KiB
 * pool slab it was cut from.
 */
export interface PackMessage {
  readonly pack: {
    readonly name: string;
    readonly parts: readonly ArrayBuffer[];
    readonly size: number;
    readonly ids: ArrayBuffer;
    readonly entries: readonly { readonly type: BlobType; readonly offset: number; readonly length: number }[];
    readonly rawBytes: number;
  };
}

export type OpenResult = { readonly seq: number; readonly plain: ArrayBuffer } | { readonly seq: number; readonly failure: 'decrypt' | 'id' };

export type SealReply =
  | { readonly op: 'ids'; readonly seqs: readonly number[]; readonly ids: ArrayBuffer }
  | { readonly op: 'done'; readonly seqs: readonly number[] }
  | { readonly op: 'opened'; readonly items: readonly OpenResult[] };

export function packIds(ids: readonly Uint8Array[]): ArrayBuffer {
  const ab = new ArrayBuffer(ids.length * 32);
  const v = new Uint8Array(ab);
  ids.forEach((id, i) => v.set(id, i * 32));
  return ab;
}

/** An ArrayBuffer that holds exactly these bytes and may be transferred. */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}

/**
 * Transferable buffers for a pack's pieces: big pieces go as they are (no
 * copy); runs of small ones (nonces, tags, short blobs) are copied together,
 * so a pack is a few dozen transfers rather than thousands.
 */
function coalesce(parts: readonly Uint8Array[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  let small: Uint8Array[] = [];
  let smallBytes = 0;
  const flushSmall = (): void => {
    if (small.length === 0) return;
    const ab = new ArrayBuffer(smallBytes);
    const v = new Uint8Array(ab);
    let o = 0;
    for (const p of small) {
      v.set(p, o);
      o += p.length;
    }
    out.push(ab);
    small = [];
    smallBytes = 0;
  };
  for (const p of parts) {
    const own = p.byteOffset === 0 && p.byteLength === p.buffer.byteLength && p.buffer instanceof ArrayBuffer;
    if (own && p.length >= 64 * 1024) {
      flushSmall();
      out.push(p.buffer as ArrayBuffer);
    } else {
      small.push(p);
      smallBytes += p.length;
      if (smallBytes >= 256 * 1024) flushSmall();
    }
  }
  flushSmall();
  return out;
}

if (parentPort) {
  await initCrypto();
  const init = workerData as SealWorkerInit;
  const keySlot: KeySlot = init.keySlot.kind === 'sealed' ? { kind: 'sealed', sealedKey: Buffer.from(init.keySlot.sealedKey) } : init.keySlot;
  const held = new Map<number, { data: Uint8Array; id: Buffer }>();
  const port = parentPort;
  let open: SealedBlob[] = [];
  let openBytes = 0;
  let openRaw = 0;

  const finishPack = (): void => {
    if (open.length === 0) return;
    const pack = buildPack(open, init.metaKey, keySlot);
    open = [];
    const rawBytes = openRaw;
    openBytes = 0;
    openRaw = 0;
    const parts = coalesce(pack.parts);
    const ids = packIds(pack.entries.map((e) => e.id));
    const entries = pack.entries.map((e) => ({ type: e.type, offset: e.offset, length: e.length }));
    const msg: PackMessage = { pack: { name: pack.name, parts, size: pack.size, ids, entries, rawBytes } };
    port.postMessage(msg, [...parts, ids]);
  };

  port.on('message', (msg: SealRequest) => {
    switch (msg.op) {
      case 'hash': {
        const ids = msg.items.map(({ seq, data }) => {
          const bytes = new Uint8Array(data);
          const id = blobId(init.idKey, bytes);
          held.set(seq, { data: bytes, id });
          return id;
        });
        const packed = packIds(ids);
        port.postMessage({ op: 'ids', seqs: msg.items.map((i) => i.seq), ids: packed } satisfies SealReply, [packed]);
        break;
      }
      case 'decide': {
        for (const seq of msg.drop) held.delete(seq);
        for (const seq of msg.keep) {
          const { data, id } = held.get(seq)!;
          held.delete(seq);
          const sealed = sealBlobParts(init.contentKey, 'data', id, data, init.compression);
          open.push({ type: 'data', id, ...sealed });
          openBytes += sealed.length;
          openRaw += data.length;
          if (openBytes >= init.packSize) finishPack();
        }
        port.postMessage({ op: 'done', seqs: msg.keep } satisfies SealReply);
        break;
      }
      case 'flush':
        finishPack();
        port.postMessage({ op: 'done', seqs: [msg.seq] } satisfies SealReply);
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
