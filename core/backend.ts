/**
 * The plain object store under a repository. Everything above it is
 * encrypted and content-addressed; a backend only keeps named bytes.
 *
 * Object names: `config` for the one config object; every other object is
 * named by the lowercase hex SHA-256 of its bytes (64 characters) and lives
 * under its type. Backends do not check contents against names (the server
 * does, and the repository checks every whole object it reads), but they
 * must refuse names that are not of that shape.
 */

export type ObjectType = 'config' | 'keys' | 'data' | 'index' | 'snapshots' | 'locks';
export const OBJECT_TYPES: readonly ObjectType[] = ['config', 'keys', 'data', 'index', 'snapshots', 'locks'];

export interface Handle {
  readonly type: ObjectType;
  readonly name: string;
}

export interface ObjectInfo {
  readonly name: string;
  readonly size: number;
  /**
   * When the store received the object, by its own clock: for a server, the
   * server's receive time (attested), for a local directory the file's mtime.
   */
  readonly receivedAt?: Date;
}

/** What `save` takes: one buffer, or pieces written in order (a pack is never copied together). */
export type Body = Uint8Array | readonly Uint8Array[];

export function bodyParts(b: Body): readonly Uint8Array[] {
  return b instanceof Uint8Array ? [b] : b;
}

export function bodyLength(b: Body): number {
  return bodyParts(b).reduce((n, p) => n + p.length, 0);
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * The contract every backend keeps (test/helpers/backend-suite.ts checks it
 * for each implementation):
 *
 * - `save` is atomic: after it resolves the whole object is readable; if it
 *   fails or the process dies, either nothing or the whole object is visible,
 *   never a prefix. It is durable when it resolves (fsync or equivalent).
 * - Objects are immutable. Saving the same bytes under an existing name
 *   succeeds and changes nothing; different bytes under an existing name
 *   fail with ObjectExistsError.
 * - `load` returns exactly the requested bytes or fails: ObjectNotFoundError
 *   for a missing object, IntegrityError when fewer bytes exist than asked.
 *   Reads are repeatable: the same handle and range give the same bytes.
 * - `list` yields every object of a type once, in no particular order,
 *   including objects saved while it runs or not.
 * - `remove` of a missing object succeeds (deletion is idempotent).
 * - Errors are StowageErrors: BackendError for a store that cannot be
 *   reached (retryable), ForbiddenError, QuotaExceededError, NoSpaceError.
 */
export interface Backend {
  /** Where the repository is, for messages; never contains a credential. */
  readonly location: string;
  /** True when reads are as cheap as a local cache would make them. */
  readonly isLocal: boolean;
  /**
   * Where an object's bytes are as a file on this machine, for backends that
   * keep them so: a restore's worker threads then read blobs from the packs
   * themselves. The file must be read-only to its reader, as objects never change.
   */
  filePath?(h: Handle): string;
  /** Prepares an empty repository; RepositoryExistsError if one is there. */
  create(): Promise<void>;
  save(h: Handle, data: Body): Promise<void>;
  load(h: Handle, range?: ByteRange): Promise<Buffer>;
  /**
   * Optional: the bytes of `pieces` (ascending, not overlapping) in one read
   * of the range from the first piece's start to the last one's end, each
   * piece in a buffer of its own and the gaps between them dropped as they
   * arrive, so that no buffer of the whole range is made (a restore reads
   * many blobs of a pack at once). Errors as for `load` with that range.
   */
  loadPieces?(h: Handle, pieces: readonly ByteRange[]): Promise<Buffer[]>;
  stat(h: Handle): Promise<ObjectInfo>;
  list(type: ObjectType): AsyncIterable<ObjectInfo>;
  remove(h: Handle): Promise<void>;
  close(): Promise<void>;
}

/**
 * The bytes of `pieces` of an object (ascending, not overlapping) in one
 * read: through Backend.loadPieces, each in a buffer of its own, where the
 * backend has it; otherwise as views into one buffer of the whole range.
 */
export async function loadPieces(backend: Backend, h: Handle, pieces: readonly ByteRange[]): Promise<Buffer[]> {
  if (backend.loadPieces) return await backend.loadPieces(h, pieces);
  if (pieces.length === 0) return [];
  const start = pieces[0]!.offset;
  const bytes = await backend.load(h, { offset: start, length: pieces.at(-1)!.offset + pieces.at(-1)!.length - start });
  return pieces.map((p) => bytes.subarray(p.offset - start, p.offset - start + p.length));
}

const HEX64 = /^[0-9a-f]{64}$/;

export function isValidName(type: ObjectType, name: string): boolean {
  return type === 'config' ? name === 'config' : HEX64.test(name);
}

export function describe(h: Handle): string {
  return h.type === 'config' ? 'config' : `${h.type}/${h.name}`;
}
