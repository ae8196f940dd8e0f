/**
 * A repository: encrypted, deduplicated blobs in packs over a plain Backend,
 * with sealed objects (index, snapshots, locks) beside them. This layer knows
 * keys and formats; it knows nothing of files, trees or containers.
 *
 * Write order (format §9): packs are uploaded first, then index objects that
 * name them, then (by the caller) the snapshot that references their blobs.
 * A crash between any two steps leaves only unreferenced objects, which the
 * next backup adopts (see adoptUnindexedPacks) or prune removes.
 */
import { type Backend, type ByteRange, type Handle, type ObjectInfo, type ObjectType, describe, loadPieces } from './backend.ts';
import { BlobIndex, type PackInfo, decodeIndex, encodeIndex } from './blob-index.ts';
import { ObjectCache } from './cache.ts';
import { type Argon2Params, type RepositoryKeys, blobId, initCrypto, keysFromMaster, openContentKey, randomKey, sealContentKey, sha256Hex } from './crypto.ts';
import { type BlobType, type SealedObjectType, openObject, openVerifiedBlob, sealBlobParts, sealObject } from './envelope.ts';
import {
  ForbiddenError,
  FormatError,
  IntegrityError,
  ObjectNotFoundError,
  RepositoryNotFoundError,
  WriteOnlyKeyError,
  WrongPasswordError,
  isStowageError,
} from './errors.ts';
import { type KeyFileJson, type KeyMeta, createKeyFile, keyFileKek, openKeyFile, parseKeyFile, readKeyMeta, unwrapKeyFile } from './keyfile.ts';
import { type BuiltPack, HEADER_READ_GUESS, type KeySlot, NO_KEY_SLOT, type SealedBlob, buildPack, headerLengthFromTail, parsePackHeader } from './pack.ts';
import type { PoolKeys } from './seal-pool.ts';
import { Semaphore } from './semaphore.ts';
import { ChunkPolicy, type NewConfigOptions, type RepositoryConfig, configSchema, newConfig } from './repository-config.ts';

export type Clock = () => Date;

export interface OpenOptions {
  /** Directory for the local object cache; null disables it. */
  readonly cacheRoot?: string | null;
  readonly clock?: Clock;
  /** Try this key file first (a prefix of its name is enough). */
  readonly keyHint?: string;
  /** Uploads in flight at once; remote backends want more. */
  readonly uploadConcurrency?: number;
}

export interface InitOptions extends Omit<NewConfigOptions, 'now'> {
  readonly argon2: Argon2Params;
  readonly clock?: Clock;
}

/** Packs written since the last index object are indexed after this many. */
const INDEX_EVERY_PACKS = 64;

interface OpenPack {
  blobs: SealedBlob[];
  bytes: number;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly keys: RepositoryKeys;
  readonly index = new BlobIndex();
  readonly chunkPolicy: ChunkPolicy;
  readonly keyName: string;
  readonly clock: Clock;
  private readonly cache: ObjectCache | null;
  private readonly uploadConcurrency: number;
  /** Key that seals data blobs written by this process, and the slot that stores it. */
  private readonly content: { key: Buffer; slot: KeySlot };
  private readonly openPacks: Record<BlobType, OpenPack> = { data: { blobs: [], bytes: 0 }, tree: { blobs: [], bytes: 0 } };
  private readonly pending = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly uploadSlots: Semaphore;
  private unindexed: PackInfo[] = [];
  private uploadError: unknown = null;
  private readonly packKeys = new Map<string, Buffer>();
  private stats = { packsWritten: 0, bytesUploaded: 0, blobsAdded: 0, blobBytesAdded: 0 };

  private constructor(backend: Backend, config: RepositoryConfig, keys: RepositoryKeys, keyName: string, opts: OpenOptions) {
    this.backend = backend;
    this.config = config;
    this.keys = keys;
    this.keyName = keyName;
    this.clock = opts.clock ?? (() => new Date());
    this.chunkPolicy = new ChunkPolicy(config);
    this.cache = opts.cacheRoot ? new ObjectCache(opts.cacheRoot, config.id) : null;
    // A local pack write waits on its fsync (tens of ms): with one at a time, sealing stalled behind each (a cold 1 GiB
    // backup took 6.4 s with 1, 4.7 s with 3; 4 and 6 did no better and held more pack buffers).
    this.uploadConcurrency = opts.uploadConcurrency ?? (backend.isLocal ? 3 : 4);
    this.uploadSlots = new Semaphore(this.uploadConcurrency);
    if (config.writeOnlyHosts) {
      const key = randomKey();
      this.content = { key, slot: { kind: 'sealed', sealedKey: sealContentKey(key, Buffer.from(config.recoveryPublicKey, 'base64')) } };
    } else {
      if (!keys.dataKey) throw new FormatError('a write-only host key was opened on a repository that does not allow write-only hosts');
      this.content = { key: keys.dataKey, slot: NO_KEY_SLOT };
    }
  }

  static async init(backend: Backend, password: string, opts: InitOptions & OpenOptions): Promise<Repository> {
    await initCrypto();
    const clock = opts.clock ?? (() => new Date());
    const keys = keysFromMaster(randomKey());
    const config = newConfig(keys.recoveryPublicKey, { ...opts, now: clock() });
    await backend.create();
    const keyFile = await createKeyFile(password, keys, 'full', opts.argon2, clock());
    const keyName = sha256Hex(keyFile);
    await backend.save({ type: 'keys', name: keyName }, keyFile);
    const sealed = sealObject(keys.metaKey, 'config', Buffer.from(JSON.stringify(config)), { algorithm: 'none', level: 0 });
    await backend.save({ type: 'config', name: 'config' }, sealed);
    return new Repository(backend, config, keys, keyName, opts);
  }

  static async open(backend: Backend, password: string, opts: OpenOptions = {}): Promise<Repository> {
    const [configBytes, keyFiles] = await Promise.all([loadConfigBytes(backend), loadKeyFiles(backend)]);
    if (opts.keyHint) {
      const hint = opts.keyHint;
      keyFiles.sort((a, b) => Number(b.name.startsWith(hint)) - Number(a.name.startsWith(hint)));
    }
    // The first derivation starts before libsodium is loaded on this thread, so that the two overlap.
    const first = keyFiles.length > 0 ? keyFileKek(keyFiles[0]!.file, password) : null;
    first?.catch(() => {});
    await initCrypto();
    for (const [i, { name, file }] of keyFiles.entries()) {
      const kek = i === 0 ? await first! : await keyFileKek(file, password);
      const keys = unwrapKeyFile(file, kek);
      if (!keys) continue;
      const plain = openObject(keys.metaKey, 'config', configBytes);
      if (!plain) throw new IntegrityError('config', 'the config does not decrypt with a key that opened: it was replaced or damaged');
      const parsed = configSchema.safeParse(JSON.parse(plain.toString('utf8')));
      if (!parsed.success) throw new FormatError(`unsupported repository config: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
      return new Repository(backend, parsed.data, keys, name, opts);
    }
    throw new WrongPasswordError(keyFiles.length);
  }

  get id(): string {
    return this.config.id;
  }

  // ---- sealed objects -------------------------------------------------

  /** Seals and stores an object; returns its name. */
  async saveObject(type: 'index' | 'snapshots' | 'locks', sealedType: SealedObjectType, plaintext: Uint8Array): Promise<string> {
    const bytes = sealObject(this.keys.metaKey, sealedType, plaintext, this.config.compression);
    const name = sha256Hex(bytes);
    await this.backend.save({ type, name }, bytes);
    if (this.cache && type !== 'locks') await this.cache.put(type, name, bytes);
    return name;
  }

  /** Loads an object, checks its bytes against its name, and opens it. */
  async loadObject(type: 'index' | 'snapshots' | 'locks', sealedType: SealedObjectType, name: string): Promise<Buffer> {
    const h: Handle = { type, name };
    let bytes = this.cache && type !== 'locks' ? await this.cache.get(type, name) : null;
    if (!bytes) {
      bytes = await this.backend.load(h);
      if (sha256Hex(bytes) !== name) throw new IntegrityError(describe(h), 'content does not match its name (SHA-256): tampered, truncated or swapped');
      if (this.cache && type !== 'locks') await this.cache.put(type, name, bytes);
    }
    const plain = openObject(this.keys.metaKey, sealedType, bytes);
    if (!plain) throw new IntegrityError(describe(h), `does not decrypt as a ${sealedType}: damaged, or not from this repository`);
    return plain;
  }

  async listObjects(type: ObjectType): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    for await (const info of this.backend.list(type)) out.push(info);
    return out;
  }

  // ---- index ------------------------------------------------------------

  /** Loads every index object into memory, honouring `supersedes`. */
  async loadIndex(): Promise<void> {
    const names = (await this.listObjects('index')).map((o) => o.name);
    const contents = await mapLimit(names, 8, async (name) => ({ name, c: decodeIndex(await this.loadObject('index', 'index', name), `index/${name}`) }));
    const superseded = new Set<string>();
    for (const { c } of contents) for (const s of c.supersedes) superseded.add(s);
    for (const { name, c } of contents) {
      if (superseded.has(name)) continue;
      for (const p of c.packs) this.index.addPack(p);
    }
    await this.cache?.retainOnly('index', new Set(names));
  }

  /**
   * Loads index objects one by one, reporting each that cannot be read
   * instead of stopping (check); returns the names that loaded.
   */
  async loadIndexTolerant(problem: (object: string, message: string) => void): Promise<string[]> {
    const names = (await this.listObjects('index')).map((o) => o.name);
    const loaded: { name: string; c: ReturnType<typeof decodeIndex> }[] = [];
    await mapLimit(names, 8, async (name) => {
      try {
        loaded.push({ name, c: decodeIndex(await this.loadObject('index', 'index', name), `index/${name}`) });
      } catch (e) {
        if (!isStowageError(e)) throw e;
        problem(`index/${name}`, e.message);
      }
    });
    const superseded = new Set(loaded.flatMap((l) => l.c.supersedes));
    for (const { name, c } of loaded) if (!superseded.has(name)) for (const p of c.packs) this.index.addPack(p);
    return loaded.map((l) => l.name);
  }

  /**
   * Replaces every index object with one describing exactly `packs` (prune,
   * repair). Crash-safe: the new objects are written first and name no
   * predecessor; a last, empty one supersedes the old ones, which are only
   * then deleted (best effort: a server may refuse deletion to an append
   * token, and superseded objects are ignored anyway).
   */
  async replaceIndex(packs: readonly PackInfo[], old: readonly string[]): Promise<{ written: number; removed: number }> {
    const PACKS_PER_OBJECT = 4096;
    let written = 0;
    for (let i = 0; i < packs.length; i += PACKS_PER_OBJECT) {
      await this.saveObject('index', 'index', encodeIndex({ supersedes: [], packs: packs.slice(i, i + PACKS_PER_OBJECT) }));
      written++;
    }
    if (old.length > 0) {
      await this.saveObject('index', 'index', encodeIndex({ supersedes: [...old], packs: [] }));
      written++;
    }
    let removed = 0;
    for (const name of old) {
      try {
        await this.backend.remove({ type: 'index', name });
        removed++;
      } catch (e) {
        // An append-only credential may not delete; superseded objects are ignored anyway.
        if (!(e instanceof ForbiddenError)) throw e;
      }
    }
    return { written, removed };
  }

  /**
   * Writes already sealed blobs into new packs with the given key slot (the
   * slot travels with the blobs: a write-only host's pack keeps its sealed
   * content key). Used by prune to repack; the caller indexes the result.
   */
  async writePacks(blobs: readonly SealedBlob[], slot: KeySlot): Promise<PackInfo[]> {
    const out: PackInfo[] = [];
    let batch: SealedBlob[] = [];
    let bytes = 0;
    const ship = async (): Promise<void> => {
      if (batch.length === 0) return;
      const pack = buildPack(batch, this.keys.metaKey, slot);
      batch = [];
      bytes = 0;
      await this.backend.save({ type: 'data', name: pack.name }, pack.parts);
      out.push({ id: pack.name, size: pack.size, keySlot: pack.keySlot, blobs: pack.entries });
    };
    for (const b of blobs) {
      batch.push(b);
      bytes += b.length;
      if (bytes >= this.config.packSize) await ship();
    }
    await ship();
    return out;
  }

  /**
   * Indexes packs that exist but no index object names: what an interrupted
   * backup uploaded before it could write its index. Their blobs then count
   * as stored, so the next backup does not upload them again.
   */
  async adoptUnindexedPacks(warn: (msg: string) => void = () => {}): Promise<number> {
    const orphans = (await this.listObjects('data')).filter((o) => !this.index.hasPack(o.name));
    const adopted = await mapLimit(orphans, 4, async (o) => {
      try {
        return await this.readPackInfo(o.name, o.size);
      } catch (e) {
        if (!isStowageError(e)) throw e;
        warn(`pack ${o.name} is not indexed and its header cannot be read (${e.message}); leaving it for "check"`);
        return null;
      }
    });
    const infos = adopted.filter((p): p is PackInfo => p !== null);
    for (const p of infos) this.index.addPack(p);
    if (infos.length > 0) await this.saveObject('index', 'index', encodeIndex({ supersedes: [], packs: infos }));
    return infos.length;
  }

  /** Reads a pack's header from its tail. */
  async readPackInfo(name: string, size: number): Promise<PackInfo> {
    const h: Handle = { type: 'data', name };
    const guess = Math.min(size, HEADER_READ_GUESS);
    let tail = await this.backend.load(h, { offset: size - guess, length: guess });
    const len = headerLengthFromTail(tail, size, name);
    if (len + 4 > guess) tail = await this.backend.load(h, { offset: size - len - 4, length: len + 4 });
    const header = parsePackHeader(tail, size, this.keys.metaKey, name);
    return { id: name, size, keySlot: header.keySlot, blobs: header.entries };
  }

  // ---- writing blobs ----------------------------------------------------

  /** Known to the index, or waiting in a pack of this process. */
  hasBlob(idHex: string): boolean {
    return this.index.has(idHex) || this.pending.has(idHex);
  }

  /**
   * Claims a blob ID for this process. False when it is already stored or
   * claimed: the caller then drops its copy. Used by parallel sealers so
   * that two chunks with one ID are sealed once.
   */
  claim(idHex: string): boolean {
    if (this.hasBlob(idHex)) return false;
    this.pending.add(idHex);
    return true;
  }

  /** The key and slot data blobs are sealed with in this process. */
  get contentKey(): Buffer {
    return this.content.key;
  }

  /** What seal workers need to hash and seal data blobs for this repository. */
  poolKeys(): PoolKeys {
    return {
      idKey: this.keys.idKey,
      contentKey: this.content.key,
      compression: this.config.compression,
      metaKey: this.keys.metaKey,
      slot: this.content.slot,
      packSize: this.config.packSize,
    };
  }

  /** Seals and stores a blob on this thread (trees, small things). */
  async saveBlob(type: BlobType, plaintext: Uint8Array): Promise<{ id: Buffer; added: boolean }> {
    const id = blobId(this.keys.idKey, plaintext);
    const hex = id.toString('hex');
    if (!this.claim(hex)) return { id, added: false };
    const key = type === 'tree' ? this.keys.metaKey : this.content.key;
    await this.addSealedBlob({ type, id, ...sealBlobParts(key, type, id, plaintext, this.config.compression) }, plaintext.length);
    return { id, added: true };
  }

  /**
   * Adds a blob sealed elsewhere (by a worker) to the open pack of its type;
   * the ID must have been claimed. Waits while uploads are saturated, which
   * bounds the memory a fast reader can fill.
   */
  async addSealedBlob(blob: SealedBlob, plaintextLength: number): Promise<void> {
    this.throwIfFailed();
    const open = this.openPacks[blob.type];
    open.blobs.push(blob);
    open.bytes += blob.length;
    this.stats.blobsAdded++;
    this.stats.blobBytesAdded += plaintextLength;
    if (open.bytes >= this.config.packSize) await this.finishPack(blob.type);
  }

  /**
   * Queues a data pack built elsewhere (by a seal worker) for upload; its
   * blobs must have been claimed. Resolves when the upload is over, whether
   * it succeeded or not: a failure surfaces from the next write or flush.
   */
  addPack(pack: BuiltPack, plaintextBytes: number): Promise<void> {
    this.stats.blobsAdded += pack.entries.length;
    this.stats.blobBytesAdded += plaintextBytes;
    return this.upload('data', pack);
  }

  private async finishPack(type: BlobType): Promise<void> {
    const open = this.openPacks[type];
    if (open.blobs.length === 0) return;
    const blobs = open.blobs;
    this.openPacks[type] = { blobs: [], bytes: 0 };
    await this.waitForUploadRoom();
    const slot = type === 'data' ? this.content.slot : NO_KEY_SLOT;
    const pack = buildPack(blobs, this.keys.metaKey, slot);
    void this.upload(type, pack);
  }

  /** Resolves when another pack may be queued for upload; surfaces a failed upload. */
  async waitForUploadRoom(): Promise<void> {
    while (this.uploads.size >= this.uploadConcurrency) await Promise.race(this.uploads);
    this.throwIfFailed();
  }

  private upload(type: BlobType, pack: BuiltPack): Promise<void> {
    const info: PackInfo = { id: pack.name, size: pack.size, keySlot: pack.keySlot, blobs: pack.entries };
    const upload = (async () => {
      await this.uploadSlots.acquire();
      try {
        await this.backend.save({ type: 'data', name: pack.name }, pack.parts);
      } finally {
        this.uploadSlots.release();
      }
      if (type === 'tree' && this.cache) await this.cache.put('data', pack.name, Buffer.concat(pack.parts));
      this.index.addPack(info);
      for (const b of pack.entries) this.pending.delete(b.id.toString('hex'));
      this.unindexed.push(info);
      this.stats.packsWritten++;
      this.stats.bytesUploaded += pack.size;
      if (this.unindexed.length >= INDEX_EVERY_PACKS) await this.writeIndex();
    })().catch((e: unknown) => {
      this.uploadError ??= e;
    });
    const tracked = upload.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
    return tracked;
  }

  private throwIfFailed(): void {
    if (this.uploadError) throw this.uploadError;
  }

  private async writeIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const packs = this.unindexed;
    this.unindexed = [];
    await this.saveObject('index', 'index', encodeIndex({ supersedes: [], packs }));
  }

  /** Writes out open packs, waits for every upload, then indexes them. */
  async flush(): Promise<void> {
    await this.finishPack('data');
    await this.finishPack('tree');
    while (this.uploads.size > 0) await Promise.all(this.uploads);
    this.throwIfFailed();
    await this.writeIndex();
  }

  get writeStats(): Readonly<{ packsWritten: number; bytesUploaded: number; blobsAdded: number; blobBytesAdded: number }> {
    return this.stats;
  }

  // ---- reading blobs ----------------------------------------------------

  /**
   * Refuses at once, with the reason, when this is a write-only host key:
   * `what` (restoring, reading data) needs the contents it cannot open.
   */
  requireContentAccess(what: string): void {
    if (this.keys.kind === 'host') {
      throw new WriteOnlyKeyError(`${what} needs to read file contents, which a write-only host key cannot: open the repository with the recovery key (a full key's passphrase) instead`);
    }
  }

  /** The key that opens the data blobs of a pack. */
  dataKeyForPack(pack: PackInfo): Buffer {
    const cached = this.packKeys.get(pack.id);
    if (cached) return cached;
    let key: Buffer | null;
    if (pack.keySlot.kind === 'none') key = this.keys.dataKey;
    else key = openContentKey(pack.keySlot.sealedKey, this.keys);
    if (!key) {
      throw new WriteOnlyKeyError(
        'this is a write-only host key: it can back up but not read file contents; use the recovery key (a full key) to restore or read data',
      );
    }
    this.packKeys.set(pack.id, key);
    return key;
  }

  keyForBlob(type: BlobType, packId: string): Buffer {
    if (type === 'tree') return this.keys.metaKey;
    const pack = this.index.pack(packId);
    if (!pack) throw new ObjectNotFoundError(`data/${packId}`);
    return this.dataKeyForPack(pack);
  }

  /** Reads, opens and verifies one blob. */
  async loadBlob(type: BlobType, idHex: string): Promise<Buffer> {
    const { pack, key, sealed } = await this.loadSealedBlob(type, idHex);
    return this.openAndVerify(type, idHex, pack, key, sealed);
  }

  /** Reads one blob's sealed bytes and finds its key, for opening elsewhere (a worker). */
  async loadSealedBlob(type: BlobType, idHex: string): Promise<{ pack: string; key: Buffer; checkId: boolean; sealed: Buffer }> {
    const loc = this.locateBlob(type, idHex);
    const sealed = await this.readBlobBytes(type, loc.pack, loc.offset, loc.length);
    return { pack: loc.pack, key: loc.key, checkId: loc.checkId, sealed };
  }

  /**
   * Where a blob is stored, the key that opens it, and whether a restore must
   * check its plaintext against its ID (see blobNeedsIdCheck); IntegrityError
   * if the index lacks it.
   */
  locateBlob(type: BlobType, idHex: string): { pack: string; offset: number; length: number; key: Buffer; checkId: boolean } {
    const loc = this.index.get(idHex);
    if (!loc || loc.type !== type) throw new IntegrityError(`${type} blob ${idHex}`, 'not in the index: the repository is missing data (run "stowage check")');
    return { pack: loc.pack, offset: loc.offset, length: loc.length, key: this.keyForBlob(type, loc.pack), checkId: this.blobNeedsIdCheck(type, loc.pack) };
  }

  /**
   * Whether a blob opened for a restore must also hash to its ID (format
   * §11). Opening it proves that a holder of its key sealed it under that
   * ID; the hash also proves its content. That matters where a host key can
   * seal: trees (metaKey) and data packs with a content key (key slot kind
   * 1, written by hosts of write-only repositories). A data blob under
   * dataKey (kind 0) can only have been sealed by a full key, which could
   * write any snapshot at all: hashing it again proves nothing against
   * anyone and cost a fifth of a restore's CPU. check --read-data hashes
   * every blob.
   */
  blobNeedsIdCheck(type: BlobType, packId: string): boolean {
    return type === 'tree' || this.index.pack(packId)?.keySlot.kind !== 'none';
  }

  /**
   * Where a data blob's sealed bytes are in a file on this machine (a local
   * repository), so that a worker thread can read them itself; null when the
   * backend keeps no such files.
   */
  blobFile(type: BlobType, idHex: string): { pack: string; key: Buffer; checkId: boolean; path: string; offset: number; length: number } | null {
    if (!this.backend.filePath) return null;
    const loc = this.locateBlob(type, idHex);
    return { ...loc, path: this.packFile(loc.pack)! };
  }

  /** Where a pack is as a file on this machine (a local repository), or null. */
  packFile(pack: string): string | null {
    return this.backend.filePath ? this.backend.filePath({ type: 'data', name: pack }) : null;
  }

  /** Pieces of a pack (ascending, not overlapping) in one read (see loadPieces in core/backend.ts); each blob is still authenticated when opened. */
  async readPackPieces(pack: string, pieces: readonly ByteRange[]): Promise<Buffer[]> {
    return await loadPieces(this.backend, { type: 'data', name: pack }, pieces);
  }

  /** True when reads go over a network: callers then read in fewer, larger requests. */
  get remote(): boolean {
    return !this.backend.isLocal;
  }

  openAndVerify(type: BlobType, idHex: string, pack: string, key: Uint8Array, sealed: Uint8Array): Buffer {
    const r = openVerifiedBlob(this.keys.idKey, key, type, Buffer.from(idHex, 'hex'), sealed);
    if (r === 'decrypt' || r === 'id') throw blobIntegrityError(type, idHex, pack, r);
    return r;
  }

  private async readBlobBytes(type: BlobType, pack: string, offset: number, length: number): Promise<Buffer> {
    const h: Handle = { type: 'data', name: pack };
    if (type === 'tree' && this.cache && !this.backend.isLocal) {
      let whole = await this.cache.get('data', pack);
      if (!whole) {
        whole = await this.backend.load(h);
        if (sha256Hex(whole) !== pack) throw new IntegrityError(describe(h), 'content does not match its name (SHA-256)');
        await this.cache.put('data', pack, whole);
      }
      if (offset + length > whole.length) throw new IntegrityError(describe(h), 'blob lies beyond the end of the pack');
      return whole.subarray(offset, offset + length);
    }
    return await this.backend.load(h, { offset, length });
  }

  // ---- keys -------------------------------------------------------------

  async addKey(password: string, kind: 'full' | 'host', argon2: Argon2Params): Promise<string> {
    if (kind === 'full' && this.keys.kind !== 'full') throw new WriteOnlyKeyError('a write-only host key cannot create a full key');
    if (kind === 'host' && !this.config.writeOnlyHosts) {
      throw new FormatError('this repository was not created for write-only hosts (stowage init --write-only-hosts)');
    }
    const file = await createKeyFile(password, this.keys, kind, argon2, this.clock());
    const name = sha256Hex(file);
    await this.backend.save({ type: 'keys', name }, file);
    return name;
  }

  async listKeys(): Promise<{ name: string; meta: KeyMeta | null; current: boolean }[]> {
    const files = await loadKeyFiles(this.backend);
    return files.map(({ name, file }) => ({ name, meta: readKeyMeta(file, this.keys), current: name === this.keyName }));
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}

/** The error for a blob that does not open ('decrypt') or does not match its ID ('id'), naming blob and pack. */
export function blobIntegrityError(type: BlobType, idHex: string, pack: string, failure: 'decrypt' | 'id'): IntegrityError {
  return new IntegrityError(
    `${type} blob ${idHex} in data/${pack}`,
    failure === 'decrypt' ? 'does not decrypt: the pack was tampered with, truncated or swapped' : 'content does not match its ID',
  );
}

async function loadConfigBytes(backend: Backend): Promise<Buffer> {
  try {
    return await backend.load({ type: 'config', name: 'config' });
  } catch (e) {
    if (e instanceof ObjectNotFoundError) throw new RepositoryNotFoundError(backend.location);
    throw e;
  }
}

async function loadKeyFiles(backend: Backend): Promise<{ name: string; file: KeyFileJson }[]> {
  const out: { name: string; file: KeyFileJson }[] = [];
  for await (const info of backend.list('keys')) {
    const bytes = await backend.load({ type: 'keys', name: info.name });
    if (sha256Hex(bytes) !== info.name) throw new IntegrityError(`keys/${info.name}`, 'content does not match its name (SHA-256)');
    out.push({ name: info.name, file: parseKeyFile(bytes, info.name) });
  }
  if (out.length === 0) throw new RepositoryNotFoundError(`${backend.location} (it has no key files)`);
  return out;
}

/** Maps with at most `limit` calls in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
