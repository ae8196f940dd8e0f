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
 * Creates a file a restore fills with `size` bytes: one of DIRECT_MIN or
 * more is written around the page cache (core/direct-write.ts) where the
 * file system allows it, and through the cache otherwise.
 */
export async function createRestored(p: Buffer, size: number): Promise<{ fd: number; direct: DirectAppender | null }> {
  if (size >= DIRECT_MIN && O_DIRECT !== undefined) {
    let fd: number | null = null;
    try {
      fd = await createFresh(p, O_DIRECT);
    } catch (e) {
      // Refused at the open (the file may be there or not: the open below replaces it either way).
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
  return { fd: await createFresh(p), direct: null };
}

/**
 * Creates the file at p for writing (mode 0600 until its own is set); into
 * an empty target, one open and no lookup. The open runs on libuv's
 * threads, so that a restore's worker opens blobs meanwhile (its lane
 * creates the next files ahead, restore/file-lane.ts): creating a file can
 * cost the kernel 0.1–0.2 ms, as where many files were deleted in the last
 * minutes (ext4 skips recently deleted inodes, reading their table first).
 */
async function createFresh(p: Buffer, extraFlags = 0): Promise<number> {
  try {
    return await openAsync(p, CREATE_FLAGS | extraFlags);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
  }
  removeEntry(p);
  return await openAsync(p, CREATE_FLAGS | extraFlags);
}

function openAsync(p: Buffer, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, flags, 0o600, (e, fd) => (e ? reject(e) : resolve(fd))));
}
