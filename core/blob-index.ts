/**
 * The index (format §6): which pack holds each blob, at what offset and
 * length. In memory it is the union of all index objects; on disk each
 * backup adds index objects for the packs it wrote, and prune replaces them
 * with fewer (`supersedes` names the ones a new object makes obsolete).
 */
import { ID_SIZE, SEALED_KEY_SIZE } from './crypto.ts';
import { BLOB_TYPE_BYTE, BLOB_TYPE_OF_BYTE, type BlobType } from './envelope.ts';
import { IntegrityError } from './errors.ts';
import { type KeySlot, NO_KEY_SLOT, type PackEntry } from './pack.ts';

export const INDEX_VERSION = 1;

export interface PackInfo {
  /** The pack's object name (hex SHA-256 of its bytes). */
  readonly id: string;
  readonly size: number;
  readonly keySlot: KeySlot;
  readonly blobs: readonly PackEntry[];
}

export interface BlobLocation {
  readonly pack: string;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
}

export interface IndexContents {
  readonly supersedes: readonly string[];
  readonly packs: readonly PackInfo[];
}

export class BlobIndex {
  private readonly blobs = new Map<string, BlobLocation>();
  private readonly packMap = new Map<string, PackInfo>();

  addPack(info: PackInfo): void {
    if (this.packMap.has(info.id)) return;
    this.packMap.set(info.id, info);
    for (const b of info.blobs) {
      const key = b.id.toString('hex');
      if (!this.blobs.has(key)) this.blobs.set(key, { pack: info.id, type: b.type, offset: b.offset, length: b.length });
    }
  }

  has(idHex: string): boolean {
    return this.blobs.has(idHex);
  }

  get(idHex: string): BlobLocation | undefined {
    return this.blobs.get(idHex);
  }

  pack(id: string): PackInfo | undefined {
    return this.packMap.get(id);
  }

  hasPack(id: string): boolean {
    return this.packMap.has(id);
  }

  packs(): IterableIterator<PackInfo> {
    return this.packMap.values();
  }

  get blobCount(): number {
    return this.blobs.size;
  }

  get packCount(): number {
    return this.packMap.size;
  }
}

export function encodeIndex(contents: IndexContents): Buffer {
  let size = 1 + 4 + contents.supersedes.length * ID_SIZE + 4;
  for (const p of contents.packs) size += ID_SIZE + 8 + 1 + (p.keySlot.kind === 'sealed' ? SEALED_KEY_SIZE : 0) + 4 + p.blobs.length * (1 + 4 + 4 + ID_SIZE);
  const buf = Buffer.alloc(size);
  let o = 0;
  buf[o++] = INDEX_VERSION;
  buf.writeUInt32LE(contents.supersedes.length, o);
  o += 4;
  for (const s of contents.supersedes) o += Buffer.from(s, 'hex').copy(buf, o);
  buf.writeUInt32LE(contents.packs.length, o);
  o += 4;
  for (const p of contents.packs) {
    o += Buffer.from(p.id, 'hex').copy(buf, o);
    buf.writeBigUInt64LE(BigInt(p.size), o);
    o += 8;
    if (p.keySlot.kind === 'sealed') {
      buf[o++] = 1;
      o += p.keySlot.sealedKey.copy(buf, o);
    } else buf[o++] = 0;
    buf.writeUInt32LE(p.blobs.length, o);
    o += 4;
    for (const b of p.blobs) {
      buf[o++] = BLOB_TYPE_BYTE[b.type];
      buf.writeUInt32LE(b.offset, o);
      buf.writeUInt32LE(b.length, o + 4);
      o += 8;
      o += b.id.copy(buf, o);
    }
  }
  return buf;
}

export function decodeIndex(buf: Buffer, object: string): IndexContents {
  let o = 0;
  const need = (n: number): void => {
    if (o + n > buf.length) throw new IntegrityError(object, 'index is truncated');
  };
  need(1);
  const version = buf[o++]!;
  if (version !== INDEX_VERSION) throw new IntegrityError(object, `unknown index version ${version}`);
  need(4);
  const nSup = buf.readUInt32LE(o);
  o += 4;
  need(nSup * ID_SIZE);
  const supersedes: string[] = [];
  for (let i = 0; i < nSup; i++, o += ID_SIZE) supersedes.push(buf.toString('hex', o, o + ID_SIZE));
  need(4);
  const nPacks = buf.readUInt32LE(o);
  o += 4;
  const packs: PackInfo[] = [];
  for (let i = 0; i < nPacks; i++) {
    need(ID_SIZE + 8 + 1);
    const id = buf.toString('hex', o, o + ID_SIZE);
    o += ID_SIZE;
    const size = Number(buf.readBigUInt64LE(o));
    o += 8;
    const slot = buf[o++]!;
    let keySlot: KeySlot = NO_KEY_SLOT;
    if (slot === 1) {
      need(SEALED_KEY_SIZE);
      keySlot = { kind: 'sealed', sealedKey: Buffer.from(buf.subarray(o, o + SEALED_KEY_SIZE)) };
      o += SEALED_KEY_SIZE;
    } else if (slot !== 0) throw new IntegrityError(object, `unknown key slot kind ${slot}`);
    need(4);
    const nBlobs = buf.readUInt32LE(o);
    o += 4;
    need(nBlobs * (1 + 4 + 4 + ID_SIZE));
    const blobs: PackEntry[] = [];
    for (let j = 0; j < nBlobs; j++) {
      const type = BLOB_TYPE_OF_BYTE[buf[o]!];
      if (!type) throw new IntegrityError(object, `unknown blob type ${buf[o]}`);
      const offset = buf.readUInt32LE(o + 1);
      const length = buf.readUInt32LE(o + 5);
      const id = Buffer.from(buf.subarray(o + 9, o + 9 + ID_SIZE));
      blobs.push({ type, id, offset, length });
      o += 1 + 4 + 4 + ID_SIZE;
    }
    packs.push({ id, size, keySlot, blobs });
  }
  if (o !== buf.length) throw new IntegrityError(object, 'index has trailing bytes');
  return { supersedes, packs };
}
