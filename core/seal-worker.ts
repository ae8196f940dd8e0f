/**
 * A worker thread of the seal pool. On the way in it hashes chunks into blob
 * IDs, then seals (compresses, encrypts) the ones the main thread says are
 * new and hands them back for packing. Chunks wait here between the two
 * steps, so a duplicate is never copied back. On the way out it opens and
 * verifies blobs for a restore.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ownBuffer } from './buffer-pool.ts';
import type { CompressionSettings } from './compression.ts';
import { blobId, initCrypto } from './crypto.ts';
import { type BlobType, openBlob, sealBlobParts } from './envelope.ts';

export interface SealWorkerInit {
  readonly idKey: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly compression: CompressionSettings;
}

/**
 * Requests come in batches: one message per chunk would cost more than
 * hashing a small chunk does.
 */
export type SealRequest =
  | { readonly op: 'hash'; readonly items: readonly { readonly seq: number; readonly data: ArrayBuffer; readonly length: number }[] }
  | { readonly op: 'decide'; readonly keep: readonly number[]; readonly drop: readonly number[] }
  | { readonly op: 'flush'; readonly seq: number }
  | {
      readonly op: 'open';
      readonly items: readonly { readonly seq: number; readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly sealed: ArrayBuffer }[];
    };

export type OpenResult = { readonly seq: number; readonly plain: ArrayBuffer } | { readonly seq: number; readonly failure: 'decrypt' | 'id' };

export type SealReply =
  | { readonly op: 'ids'; readonly seqs: readonly number[]; readonly ids: ArrayBuffer }
  | {
      readonly op: 'done';
      readonly seqs: readonly number[];
      /** For each sealed seq: its pieces (nonce, ciphertext, tag; small ones merged) and plaintext length. */
      readonly sealed: readonly { readonly parts: readonly ArrayBuffer[]; readonly length: number; readonly raw: number }[];
      readonly recycled: readonly ArrayBuffer[];
    }
  | { readonly op: 'opened'; readonly items: readonly OpenResult[] };

export function packIds(ids: readonly Uint8Array[]): ArrayBuffer {
  const ab = new ArrayBuffer(ids.length * 32);
  const v = new Uint8Array(ab);
  ids.forEach((id, i) => v.set(id, i * 32));
  return ab;
}

/**
 * Transferable buffers for a sealed blob's pieces: big pieces go as they are
 * (no copy); runs of small ones (nonce, codec byte, tag, short blobs) are
 * copied together, so a blob is at most three transfers.
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
  const held = new Map<number, { data: Uint8Array; id: Buffer }>();
  /** Chunk buffers done with, returned to the main thread's pool with the next reply. */
  let recycled: ArrayBuffer[] = [];
  const takeRecycled = (): ArrayBuffer[] => {
    const r = recycled;
    recycled = [];
    return r;
  };
  const port = parentPort;

  port.on('message', (msg: SealRequest) => {
    switch (msg.op) {
      case 'hash': {
        const ids = msg.items.map(({ seq, data, length }) => {
          const bytes = new Uint8Array(data, 0, length);
          const id = blobId(init.idKey, bytes);
          held.set(seq, { data: bytes, id });
          return id;
        });
        const packed = packIds(ids);
        port.postMessage({ op: 'ids', seqs: msg.items.map((i) => i.seq), ids: packed } satisfies SealReply, [packed]);
        break;
      }
      case 'decide': {
        for (const seq of msg.drop) {
          recycled.push(held.get(seq)!.data.buffer as ArrayBuffer);
          held.delete(seq);
        }
        const transfer: ArrayBuffer[] = [];
        const sealed = msg.keep.map((seq) => {
          const { data, id } = held.get(seq)!;
          held.delete(seq);
          const s = sealBlobParts(init.contentKey, 'data', id, data, init.compression);
          // The sealed parts never alias the chunk (zstd and the cipher write new buffers), so it can go back.
          recycled.push(data.buffer as ArrayBuffer);
          const parts = coalesce(s.parts);
          transfer.push(...parts);
          return { parts, length: s.length, raw: data.length };
        });
        const back = takeRecycled();
        port.postMessage({ op: 'done', seqs: msg.keep, sealed, recycled: back } satisfies SealReply, [...transfer, ...back]);
        break;
      }
      case 'flush': {
        const back = takeRecycled();
        port.postMessage({ op: 'done', seqs: [msg.seq], sealed: [], recycled: back } satisfies SealReply, back);
        break;
      }
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
