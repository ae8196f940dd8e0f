/**
 * The encrypted envelope every stored byte travels in (format §4): a codec
 * byte and the body are sealed together, and the additional data binds what
 * the payload claims to be (an object of a type, or a blob of a type and ID).
 */
import { type Codec, type CompressionSettings, compress, decompress, decompressLent } from './compression.ts';
import { ID_SIZE, SEAL_OVERHEAD, blobId, open, openInto, sealOffset, sealParts, sealPartsInto } from './crypto.ts';

export type BlobType = 'data' | 'tree';
export const BLOB_TYPE_BYTE: Record<BlobType, number> = { data: 1, tree: 2 };
export const BLOB_TYPE_OF_BYTE: Record<number, BlobType | undefined> = { 1: 'data', 2: 'tree' };

export type SealedObjectType = 'config' | 'index' | 'snapshot' | 'lock' | 'pack-header' | 'key-meta';
const OBJECT_TYPE_BYTE: Record<SealedObjectType, number> = {
  config: 1,
  index: 2,
  snapshot: 3,
  lock: 4,
  'pack-header': 5,
  'key-meta': 6,
};

/** Largest plaintext of one blob; tree blobs of huge directories are the only ones near it. */
export const MAX_BLOB_PLAINTEXT = 64 * 1024 * 1024;
/** Largest plaintext of one sealed object (an index or a snapshot). */
export const MAX_OBJECT_PLAINTEXT = 1024 * 1024 * 1024;

export function blobAd(type: BlobType, id: Uint8Array): Buffer {
  const ad = Buffer.allocUnsafe(2 + ID_SIZE);
  ad[0] = 0x42; // 'B'
  ad[1] = BLOB_TYPE_BYTE[type];
  ad.set(id, 2);
  return ad;
}

export function objectAd(type: SealedObjectType): Buffer {
  return Buffer.from([0x4f /* 'O' */, OBJECT_TYPE_BYTE[type]]);
}

const CODEC_BYTES: Record<Codec, Buffer> = { 0: Buffer.from([0]), 1: Buffer.from([1]) };

/** A sealed blob as pieces (nonce, ciphertext, tag) with their total length. */
export interface SealedParts {
  readonly parts: Buffer[];
  readonly length: number;
}

export function sealBlobParts(key: Uint8Array, type: BlobType, id: Uint8Array, plaintext: Uint8Array, compression: CompressionSettings): SealedParts {
  const c = compress(plaintext, compression);
  // The codec byte and the body are sealed as one plaintext, without copying them together.
  const parts = sealParts(key, [CODEC_BYTES[c.codec], c.body], blobAd(type, id));
  return { parts, length: parts.reduce((n, p) => n + p.length, 0) };
}

/** The most bytes a blob of `plaintextLength` bytes takes sealed (stored uncompressed). */
export function sealedBlobMax(plaintextLength: number): number {
  return plaintextLength + 1 + SEAL_OVERHEAD;
}

/**
 * Seals a blob into `target` (see sealBlobParts) at the first good place at
 * or after `end` (sealOffset: up to 7 bytes on); returns where it went and
 * its sealed length.
 */
export function sealBlobInto(
  key: Uint8Array,
  type: BlobType,
  id: Uint8Array,
  plaintext: Uint8Array,
  compression: CompressionSettings,
  target: Uint8Array,
  end: number,
): { offset: number; length: number } {
  const c = compress(plaintext, compression);
  const parts = [CODEC_BYTES[c.codec], c.body];
  const offset = sealOffset(end, parts);
  return { offset, length: sealPartsInto(key, parts, blobAd(type, id), target, offset) };
}

export function sealBlob(key: Uint8Array, type: BlobType, id: Uint8Array, plaintext: Uint8Array, compression: CompressionSettings): Buffer {
  return Buffer.concat(sealBlobParts(key, type, id, plaintext, compression).parts);
}

/** The plaintext, or null when the bytes are not this blob. */
export function openBlob(key: Uint8Array, type: BlobType, id: Uint8Array, sealed: Uint8Array): Buffer | null {
  const framed = open(key, sealed, blobAd(type, id));
  if (!framed || framed.length < 1) return null;
  return decompress(framed[0]!, framed.subarray(1), MAX_BLOB_PLAINTEXT);
}

/**
 * Opens a blob and, unless `checkId` is false (see
 * Repository.blobNeedsIdCheck), checks that its plaintext hashes to its ID
 * (under the ID key): the plaintext, or which check it failed.
 */
export function openVerifiedBlob(idKey: Uint8Array, key: Uint8Array, type: BlobType, id: Buffer, sealed: Uint8Array, checkId = true): Buffer | 'decrypt' | 'id' {
  return checked(idKey, id, openBlob(key, type, id, sealed), checkId);
}

/** An opened plaintext (null: it did not open) as the outcome of the checks it must pass. */
function checked<T extends Uint8Array>(idKey: Uint8Array, id: Buffer, plain: T | null, checkId: boolean): T | 'decrypt' | 'id' {
  if (!plain) return 'decrypt';
  return !checkId || blobId(idKey, plain).equals(id) ? plain : 'id';
}

/**
 * openVerifiedBlob without allocating: the plaintext is lent, a view into
 * this thread's buffers that the next call overwrites. For a caller that
 * writes or hashes it at once (a restore's worker writes every blob it
 * opens to its file); the buffers grow to the largest blob and stay.
 */
export function openVerifiedBlobLent(idKey: Uint8Array, key: Uint8Array, type: BlobType, id: Buffer, sealed: Uint8Array, checkId = true): Uint8Array | 'decrypt' | 'id' {
  const n = sealed.length - SEAL_OVERHEAD;
  if (n < 1) return 'decrypt';
  if (!openedLent || openedLent.length < n) openedLent = Buffer.allocUnsafeSlow(Math.max(n, 256 * 1024));
  const framed = openInto(key, sealed, blobAd(type, id), openedLent);
  return checked(idKey, id, framed ? decompressLent(framed[0]!, framed.subarray(1), MAX_BLOB_PLAINTEXT) : null, checkId);
}

let openedLent: Buffer | null = null;

export function sealObject(key: Uint8Array, type: SealedObjectType, plaintext: Uint8Array, compression: CompressionSettings): Buffer {
  const c = compress(plaintext, compression);
  return Buffer.concat(sealParts(key, [CODEC_BYTES[c.codec], c.body], objectAd(type)));
}

export function openObject(key: Uint8Array, type: SealedObjectType, sealed: Uint8Array): Buffer | null {
  const framed = open(key, sealed, objectAd(type));
  if (!framed || framed.length < 1) return null;
  return decompress(framed[0]!, framed.subarray(1), MAX_OBJECT_PLAINTEXT);
}

export const NO_COMPRESSION: CompressionSettings = { algorithm: 'none', level: 0 };
