/**
 * A worker thread of the seal pool: hashes chunks into blob IDs, then seals
 * (compresses and encrypts) the ones the main thread says are new, or opens
 * and verifies blobs for a restore. Chunks stay here between the two steps so
 * that a duplicate is never copied back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CompressionSettings } from './compression.ts';
import { blobId, initCrypto } from './crypto.ts';
import { type BlobType, openBlob, sealBlob } from './envelope.ts';

export interface SealWorkerInit {
  readonly idKey: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly metaKey: Uint8Array;
  readonly compression: CompressionSettings;
}

export type SealRequest =
  | { readonly op: 'hash'; readonly seq: number; readonly data: ArrayBuffer }
  | { readonly op: 'seal'; readonly seq: number; readonly type: BlobType }
  | { readonly op: 'drop'; readonly seq: number }
  | { readonly op: 'open'; readonly seq: number; readonly type: BlobType; readonly id: Uint8Array; readonly key: Uint8Array; readonly sealed: ArrayBuffer };

export type SealReply =
  | { readonly seq: number; readonly id: Uint8Array }
  | { readonly seq: number; readonly sealed: ArrayBuffer }
  | { readonly seq: number; readonly plain: ArrayBuffer }
  | { readonly seq: number; readonly failure: 'decrypt' | 'id' };

/** An ArrayBuffer that holds exactly these bytes and may be transferred. */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}

await initCrypto();
const init = workerData as SealWorkerInit;
const held = new Map<number, { data: Uint8Array; id: Buffer }>();
const port = parentPort!;

port.on('message', (msg: SealRequest) => {
  switch (msg.op) {
    case 'hash': {
      const data = new Uint8Array(msg.data);
      const id = blobId(init.idKey, data);
      held.set(msg.seq, { data, id });
      port.postMessage({ seq: msg.seq, id } satisfies SealReply);
      break;
    }
    case 'seal': {
      const { data, id } = held.get(msg.seq)!;
      held.delete(msg.seq);
      const key = msg.type === 'tree' ? init.metaKey : init.contentKey;
      const sealed = ownBuffer(sealBlob(key, msg.type, id, data, init.compression));
      port.postMessage({ seq: msg.seq, sealed } satisfies SealReply, [sealed]);
      break;
    }
    case 'drop':
      held.delete(msg.seq);
      break;
    case 'open': {
      const id = Buffer.from(msg.id);
      const plain = openBlob(msg.key, msg.type, id, new Uint8Array(msg.sealed));
      if (!plain) port.postMessage({ seq: msg.seq, failure: 'decrypt' } satisfies SealReply);
      else if (!blobId(init.idKey, plain).equals(id)) port.postMessage({ seq: msg.seq, failure: 'id' } satisfies SealReply);
      else {
        const out = ownBuffer(plain);
        port.postMessage({ seq: msg.seq, plain: out } satisfies SealReply, [out]);
      }
      break;
    }
  }
});
