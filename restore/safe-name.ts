/**
 * What a tree may name. A hostile or broken snapshot must not make a restore
 * write outside its target, so every name is checked before it becomes a
 * path: one component, not empty, not "." or "..", no "/" and no NUL.
 */
import { UnsafePathError } from '../core/errors.ts';

export function checkName(name: Buffer, where: string): void {
  const bad =
    name.length === 0 ||
    name.includes(0x2f) ||
    name.includes(0x00) ||
    (name.length === 1 && name[0] === 0x2e) ||
    (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
  if (bad) throw new UnsafePathError(`refusing tree entry ${JSON.stringify(name.toString('utf8'))} in ${where || '/'}: not a single safe path component`);
}

/** Splits a user-given path inside a snapshot ("/srv/data/x") into checked components. */
export function splitSnapshotPath(p: string): string[] {
  const parts = p.split('/').filter((s) => s.length > 0 && s !== '.');
  if (parts.includes('..')) throw new UnsafePathError(`"${p}": ".." is not allowed in a snapshot path`);
  return parts;
}
