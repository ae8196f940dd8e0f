/**
 * Pack files (format §5): sealed blobs laid end to end in random order, then
 * a sealed header that lists them, then the header's length. The header makes
 * every pack self-describing, so the index can be rebuilt from packs alone;
 * being sealed and padded, it hides from the server where one blob ends and
 * the next begins.
 */
import { createHash, randomInt } from 'node:crypto';
import { ID_SIZE, SEALED_KEY_SIZE, SEAL_OVERHEAD } from './crypto.ts';
import { BLOB_TYPE_BYTE, BLOB_TYPE_OF_BYTE, type BlobType, NO_COMPRESSION, openObject, sealObject } from './envelope.ts';
import { IntegrityError } from './errors.ts';

export const PACK_HEADER_VERSION = 1;
/** Header plaintext is zero-padded to a multiple of this, hiding the blob count. */
export const HEADER_PAD = 4096;
const ENTRY_SIZE = 1 + 4 + ID_SIZE;
/** Bytes at the end of a pack that give the sealed header's length. */
export const TRAILER_SIZE = 4;

/**
 * How the data blobs of a pack are keyed. `none`: with the repository's data
 * key (symmetric repositories, and all tree packs). `sealed`: with a content
 * key that is sealed to the repository's recovery public key and stored here.
 */
export type KeySlot = { readonly kind: 'none' } | { readonly kind: 'sealed'; readonly sealedKey: Buffer };
export const NO_KEY_SLOT: KeySlot = { kind: 'none' };

export interface SealedBlob {
  readonly type: BlobType;
  readonly id: Buffer;
  /** nonce ‖ ciphertext ‖ tag, as envelope.sealBlobParts makes it, in pieces. */
  readonly parts: readonly Uint8Array[];
  readonly length: number;
}

export interface PackEntry {
  readonly type: BlobType;
  readonly id: Buffer;
  readonly offset: number;
  readonly length: number;
}

export interface BuiltPack {
  /** The pack's bytes in order, not copied together. */
  readonly parts: Uint8Array[];
  readonly size: number;
  /** Hex SHA-256 of the bytes: the pack's object name. */
  readonly name: string;
  readonly entries: PackEntry[];
  readonly keySlot: KeySlot;
}

function shuffle<T>(items: readonly T[]): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function encodeHeader(entries: readonly PackEntry[], keySlot: KeySlot): Buffer {
  const slotSize = keySlot.kind === 'sealed' ? SEALED_KEY_SIZE : 0;
  const raw = 2 + slotSize + 4 + entries.length * ENTRY_SIZE;
  const padded = Math.ceil(raw / HEADER_PAD) * HEADER_PAD;
  const buf = Buffer.alloc(padded);
  let p = 0;
  buf[p++] = PACK_HEADER_VERSION;
  buf[p++] = keySlot.kind === 'sealed' ? 1 : 0;
  if (keySlot.kind === 'sealed') {
    keySlot.sealedKey.copy(buf, p);
    p += SEALED_KEY_SIZE;
  }
  buf.writeUInt32LE(entries.length, p);
  p += 4;
  for (const e of entries) {
    buf[p] = BLOB_TYPE_BYTE[e.type];
    buf.writeUInt32LE(e.length, p + 1);
    e.id.copy(buf, p + 5);
    p += ENTRY_SIZE;
  }
  return buf;
}

/**
 * Decides a pack's blob order (random) and lays the blobs out end to end in
 * it: the blobs in that order, their header entries, and the bytes they take.
 */
export function layOut<T extends { readonly type: BlobType; readonly id: Buffer; readonly length: number }>(
  blobs: readonly T[],
): { order: T[]; entries: PackEntry[]; bytes: number } {
  const order = shuffle(blobs);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (const b of order) {
    entries.push({ type: b.type, id: b.id, offset, length: b.length });
    offset += b.length;
  }
  return { order, entries, bytes: offset };
}

export function buildPack(blobs: readonly SealedBlob[], metaKey: Uint8Array, keySlot: KeySlot): BuiltPack {
  const { order, entries, bytes } = layOut(blobs);
  const parts = [...order.flatMap((b) => b.parts), packTail(entries, metaKey, keySlot)];
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return { parts, size: bytes + parts[parts.length - 1]!.length, name: hash.digest('hex'), entries, keySlot };
}

/** The most bytes packTail can take for a pack of `entries` blobs (with a sealed key slot, the larger case). */
export function packTailMaxSize(entries: number): number {
  const raw = 2 + SEALED_KEY_SIZE + 4 + entries * ENTRY_SIZE;
  return Math.ceil(raw / HEADER_PAD) * HEADER_PAD + 1 + SEAL_OVERHEAD + TRAILER_SIZE;
}

/** What follows a pack's blobs: the sealed header listing `entries`, then its length. */
export function packTail(entries: readonly PackEntry[], metaKey: Uint8Array, keySlot: KeySlot): Buffer {
  const header = sealObject(metaKey, 'pack-header', encodeHeader(entries, keySlot), NO_COMPRESSION);
  const tail = Buffer.allocUnsafe(header.length + TRAILER_SIZE);
  header.copy(tail, 0);
  tail.writeUInt32LE(header.length, header.length);
  return tail;
}

export interface PackHeader {
  readonly entries: PackEntry[];
  readonly keySlot: KeySlot;
  /** Bytes of sealed header plus trailer at the end of the pack. */
  readonly headerSize: number;
}

/** How many bytes to read from the end of a pack to get a typical header in one go. */
export const HEADER_READ_GUESS = 64 * 1024;

/** The sealed header's length, from the last bytes of a pack. */
export function headerLengthFromTail(tail: Uint8Array, packSize: number, name: string): number {
  if (tail.length < TRAILER_SIZE) throw new IntegrityError(`data/${name}`, 'pack is too short to hold a header');
  const len = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).readUInt32LE(tail.length - TRAILER_SIZE);
  if (len + TRAILER_SIZE > packSize) throw new IntegrityError(`data/${name}`, `header length ${len} exceeds pack size ${packSize}`);
  return len;
}

/**
 * Parses a pack's header from the pack's last `tail.length` bytes (which must
 * include the whole sealed header). Checks that the blobs exactly fill the
 * space before the header.
 */
export function parsePackHeader(tail: Uint8Array, packSize: number, metaKey: Uint8Array, name: string): PackHeader {
  const len = headerLengthFromTail(tail, packSize, name);
  if (tail.length < len + TRAILER_SIZE) throw new IntegrityError(`data/${name}`, 'header read is incomplete');
  const sealedHeader = tail.subarray(tail.length - TRAILER_SIZE - len, tail.length - TRAILER_SIZE);
  const plain = openObject(metaKey, 'pack-header', sealedHeader);
  if (!plain) throw new IntegrityError(`data/${name}`, 'pack header does not decrypt: the pack is damaged, tampered with, or from another repository');
  const object = `data/${name}`;
  let p = 0;
  const need = (n: number): void => {
    if (p + n > plain.length) throw new IntegrityError(object, 'pack header is truncated');
  };
  need(2);
  const version = plain[p++]!;
  if (version !== PACK_HEADER_VERSION) throw new IntegrityError(object, `unknown pack header version ${version}`);
  const slotKind = plain[p++]!;
  let keySlot: KeySlot;
  if (slotKind === 0) keySlot = NO_KEY_SLOT;
  else if (slotKind === 1) {
    need(SEALED_KEY_SIZE);
    keySlot = { kind: 'sealed', sealedKey: Buffer.from(plain.subarray(p, p + SEALED_KEY_SIZE)) };
    p += SEALED_KEY_SIZE;
  } else throw new IntegrityError(object, `unknown key slot kind ${slotKind}`);
  need(4);
  const count = plain.readUInt32LE(p);
  p += 4;
  need(count * ENTRY_SIZE);
  const entries: PackEntry[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const type = BLOB_TYPE_OF_BYTE[plain[p]!];
    if (!type) throw new IntegrityError(object, `unknown blob type ${plain[p]} in pack header`);
    const length = plain.readUInt32LE(p + 1);
    const id = Buffer.from(plain.subarray(p + 5, p + 5 + ID_SIZE));
    entries.push({ type, id, offset, length });
    offset += length;
    p += ENTRY_SIZE;
  }
  const headerSize = len + TRAILER_SIZE;
  if (offset !== packSize - headerSize) {
    throw new IntegrityError(object, `pack header lists ${offset} bytes of blobs but the pack holds ${packSize - headerSize}`);
  }
  return { entries, keySlot, headerSize };
}
