/**
 * Every error stowage means a user to read: a class per situation, each with
 * a fixed `code`. Only `cli/exit-codes.ts` turns codes into exit statuses, so
 * core code never decides how a process ends. Anything that is not a
 * StowageError is a bug and is reported as one.
 */

export type ErrorCode =
  | 'ERR_USAGE'
  | 'ERR_REPO_NOT_FOUND'
  | 'ERR_REPO_EXISTS'
  | 'ERR_WRONG_PASSWORD'
  | 'ERR_NO_PASSWORD'
  | 'ERR_INTEGRITY'
  | 'ERR_NOT_FOUND'
  | 'ERR_OBJECT_EXISTS'
  | 'ERR_LOCKED'
  | 'ERR_SNAPSHOT'
  | 'ERR_FORMAT'
  | 'ERR_BACKEND'
  | 'ERR_FORBIDDEN'
  | 'ERR_QUOTA'
  | 'ERR_NO_SPACE'
  | 'ERR_UNSAFE_PATH'
  | 'ERR_WRITE_ONLY'
  | 'ERR_DOCKER'
  | 'ERR_CONFIG'
  | 'ERR_SERVER_IDENTITY'
  | 'ERR_INTERRUPTED';

export abstract class StowageError extends Error {
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The command line or an option was wrong; the user can fix it by retyping. */
export class UsageError extends StowageError {
  readonly code = 'ERR_USAGE';
}

export class RepositoryNotFoundError extends StowageError {
  readonly code = 'ERR_REPO_NOT_FOUND';
  readonly location: string;
  constructor(location: string, options?: { cause?: unknown }) {
    super(`no stowage repository at ${location} (create one with "stowage init")`, options);
    this.location = location;
  }
}

export class RepositoryExistsError extends StowageError {
  readonly code = 'ERR_REPO_EXISTS';
  readonly location: string;
  constructor(location: string) {
    super(`a repository already exists at ${location}; refusing to overwrite it`);
    this.location = location;
  }
}

export class WrongPasswordError extends StowageError {
  readonly code = 'ERR_WRONG_PASSWORD';
  constructor(tried: number) {
    super(`wrong passphrase: it opens none of the repository's ${tried} key file(s)`);
  }
}

export class NoPasswordError extends StowageError {
  readonly code = 'ERR_NO_PASSWORD';
}

/**
 * Bytes that came back are not what was written: tampered, truncated, swapped
 * or replayed. `object` names what failed so the operator can find it.
 */
export class IntegrityError extends StowageError {
  readonly code = 'ERR_INTEGRITY';
  readonly object: string;
  readonly detail: string;
  constructor(object: string, detail: string) {
    super(`integrity check failed for ${object}: ${detail}`);
    this.object = object;
    this.detail = detail;
  }
}

export class ObjectNotFoundError extends StowageError {
  readonly code = 'ERR_NOT_FOUND';
  readonly object: string;
  constructor(object: string) {
    super(`${object} does not exist in the repository`);
    this.object = object;
  }
}

/** A save under an existing name with different bytes: objects are immutable. */
export class ObjectExistsError extends StowageError {
  readonly code = 'ERR_OBJECT_EXISTS';
  readonly object: string;
  constructor(object: string) {
    super(`${object} already exists with different contents; objects are never overwritten`);
    this.object = object;
  }
}

export class LockedError extends StowageError {
  readonly code = 'ERR_LOCKED';
}

export class SnapshotNotFoundError extends StowageError {
  readonly code = 'ERR_SNAPSHOT';
}

/** A repository or object written by a format this program does not know. */
export class FormatError extends StowageError {
  readonly code = 'ERR_FORMAT';
}

/** The storage could not be reached or failed; retrying later may work. */
export class BackendError extends StowageError {
  readonly code = 'ERR_BACKEND';
}

/** The server refused the credential or the operation. */
export class ForbiddenError extends StowageError {
  readonly code = 'ERR_FORBIDDEN';
}

/** The server's certificate is not the pinned one, or no trusted CA vouches for it. */
export class ServerIdentityError extends StowageError {
  readonly code = 'ERR_SERVER_IDENTITY';
}

export class QuotaExceededError extends StowageError {
  readonly code = 'ERR_QUOTA';
}

export class NoSpaceError extends StowageError {
  readonly code = 'ERR_NO_SPACE';
}

/** A tree or archive entry that would write outside the restore target. */
export class UnsafePathError extends StowageError {
  readonly code = 'ERR_UNSAFE_PATH';
}

/** The key opened is a write-only host key and the operation needs to read contents. */
export class WriteOnlyKeyError extends StowageError {
  readonly code = 'ERR_WRITE_ONLY';
}

export class DockerError extends StowageError {
  readonly code = 'ERR_DOCKER';
}

export class ConfigError extends StowageError {
  readonly code = 'ERR_CONFIG';
}

export class InterruptedError extends StowageError {
  readonly code = 'ERR_INTERRUPTED';
  constructor() {
    super('interrupted');
  }
}

export function isStowageError(e: unknown): e is StowageError {
  return e instanceof StowageError;
}

/** Node's errno errors carry `code`; this narrows to them without `any`. */
export function errnoCode(e: unknown): string | undefined {
  if (e !== null && typeof e === 'object' && 'code' in e && typeof e.code === 'string') return e.code;
  return undefined;
}
