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

/**
 * Creates a file a restore fills with `size` bytes: with `direct`, one of
 * DIRECT_MIN or more is written around the page cache (core/direct-write.ts)
 * where the file system allows it; through the cache otherwise.
 */
export function createRestored(p: Buffer, size: number, direct: boolean): { fd: number; direct: DirectAppender | null } {
  if (direct && size >= DIRECT_MIN && O_DIRECT !== undefined) {
    let fd: number | null = null;
    try {
      fd = createFresh(p, O_DIRECT);
    } catch (e) {
      // Refused at the open (the file may be there or not: the open below replaces it either way).
      if (errnoCode(e) !== 'EINVAL') throw e;
    }
    if (fd !== null) {
      let appender: DirectAppender | null;
      try {
        appender = DirectAppender.start(fd);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      if (appender) return { fd, direct: appender };
      fs.closeSync(fd);
    }
  }
  return { fd: createFresh(p), direct: null };
}

/**
 * Creates the file at p for writing (mode 0600 until its own is set); into
 * an empty target, one open and no lookup. The open runs on the calling
 * thread (a restore's worker): handed to libuv's threads, each file created
 * cost two thread switches, which on a virtual machine cost more than the
 * open itself. Restoring 40,824 small files from packs in the page cache,
 * the process switched threads 90,000 times instead of 24,000 and took
 * 5.8-6.0 s instead of 5.0-5.4 s (docs/benchmarks.md). An open can cost the
 * kernel 0.1-0.2 ms where many files were deleted in the last minutes (ext4
 * skips recently deleted inodes, reading their table first); the worker
 * then waits that long.
 */
function createFresh(p: Buffer, extraFlags = 0): number {
  try {
    return fs.openSync(p, CREATE_FLAGS | extraFlags, 0o600);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
  }
  removeEntry(p);
  return fs.openSync(p, CREATE_FLAGS | extraFlags, 0o600);
}
