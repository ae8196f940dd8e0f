/**
 * Files a restore creates: whatever is in a file's place (a file, a symlink,
 * a directory) is removed first, and the file is created exclusively and
 * without following a final symlink, so nothing is ever written through
 * something the target already held.
 */
import * as fs from 'node:fs';

const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Removes whatever is at p (a directory with its contents); nothing there is fine. */
export function removeEntry(p: Buffer): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (st?.isDirectory()) fs.rmSync(p, { recursive: true });
  else if (st) fs.unlinkSync(p);
}

/** Creates the file at p for writing (mode 0600 until its own is set); into an empty target, one open and no lookup. */
export function createFresh(p: Buffer): number {
  try {
    return fs.openSync(p, CREATE_FLAGS, 0o600);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
  }
  removeEntry(p);
  return fs.openSync(p, CREATE_FLAGS, 0o600);
}
