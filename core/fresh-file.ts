/**
 * Files a restore creates: whatever is in a file's place (a file, a symlink,
 * a directory) is removed first, and the file is created exclusively and
 * without following a final symlink, so nothing is ever written through
 * something the target already held.
 */
import * as fs from 'node:fs';
import { DIRECT_MIN, DirectAppender, O_DIRECT } from './direct-write.ts';
import { errnoCode } from './errors.ts';

const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Removes whatever is at p (a directory with its contents); nothing there is fine. */
export function removeEntry(p: Buffer): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (st?.isDirectory()) fs.rmSync(p, { recursive: true });
  else if (st) fs.unlinkSync(p);
}

/** Creates the file at p for writing (mode 0600 until its own is set); into an empty target, one open and no lookup. */
export function createFresh(p: Buffer, extraFlags = 0): number {
  try {
    return fs.openSync(p, CREATE_FLAGS | extraFlags, 0o600);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
  }
  removeEntry(p);
  return fs.openSync(p, CREATE_FLAGS | extraFlags, 0o600);
}

/**
 * Creates a file a restore fills with `size` bytes: one of DIRECT_MIN or
 * more is written around the page cache (core/direct-write.ts) where the
 * file system allows it, and through the cache otherwise.
 */
export function createRestored(p: Buffer, size: number): { fd: number; direct: DirectAppender | null } {
  if (size >= DIRECT_MIN && O_DIRECT !== undefined) {
    let fd: number | null = null;
    try {
      fd = createFresh(p, O_DIRECT);
    } catch (e) {
      // Refused at the open (the file may be there or not: createFresh below replaces it either way).
      if (errnoCode(e) !== 'EINVAL') throw e;
    }
    if (fd !== null) {
      let direct: DirectAppender | null;
      try {
        direct = DirectAppender.start(fd);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      if (direct) return { fd, direct };
      fs.closeSync(fd);
    }
  }
  return { fd: createFresh(p), direct: null };
}
