/**
 * Where the server keeps repositories' objects. The HTTP layer checks
 * credentials, names and limits; a store keeps bytes with the guarantees of
 * the Backend contract (core/backend.ts): create-only, atomic visibility,
 * durable on success, and a body that does not hash to its name never
 * becomes visible. The filesystem store is the default; others (S3) keep the
 * same contract.
 */
import type { Readable } from 'node:stream';
import type { ObjectType } from '../core/backend.ts';
import type { StateLocation } from './state.ts';

export interface ObjectKey {
  readonly repo: string;
  readonly type: ObjectType;
  readonly name: string;
}

export interface StoredObject {
  readonly name: string;
  readonly size: number;
  /** When the store received it, by the server's clock (server-attested time). */
  readonly receivedAt: Date;
}

export interface ListPage {
  readonly objects: StoredObject[];
  /** Pass as `after` for the next page; null on the last page. */
  readonly next: string | null;
}

/** Whether a PUT made a new object or found the same bytes already stored. */
export type PutOutcome = 'created' | 'exists';

export interface Store {
  /** Makes an empty repository; 'exists' if one is there without a config, RepositoryExists (409) if it has one. */
  createRepository(repo: string): Promise<'created' | 'exists'>;
  hasRepository(repo: string): Promise<boolean>;
  /** Every repository's name (for scrub and metrics). */
  listRepositories(): Promise<string[]>;
  /**
   * Stores `length` bytes from `body` under key. For every type but config,
   * the SHA-256 of the body must equal the name. Refuses (ApiError) a body
   * that is shorter or longer than `length`, a digest mismatch, and
   * different bytes under an existing name. Nothing partial is ever visible.
   */
  put(key: ObjectKey, body: AsyncIterable<Uint8Array>, length: number): Promise<PutOutcome>;
  stat(key: ObjectKey): Promise<StoredObject>;
  /** A stream of bytes [start, end] inclusive. */
  read(key: ObjectKey, start: number, end: number): Promise<Readable>;
  list(repo: string, type: ObjectType, after: string | null, limit: number): Promise<ListPage>;
  /** True if something was deleted. */
  remove(key: ObjectKey): Promise<boolean>;
  /** Bytes stored in the repository, for quotas. */
  usage(repo: string): Promise<number>;
  close(): Promise<void>;
  /** Where servers sharing this store keep their state (tokens, quotas, client certificates); absent: the local state directory. */
  sharedState?(): StateLocation;
}

const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Repository names: letters, digits, '-' and '_', up to 64; no dots, so no path tricks. */
export function isValidRepoName(name: string): boolean {
  return REPO_NAME.test(name);
}
