/**
 * User and group names of this host, from /etc/passwd and /etc/group, so
 * that listings show owners by name. Restores go by number, as in tar's
 * --numeric-owner: on a new host the names may map to other numbers.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';

export interface IdNames {
  readonly users: ReadonlyMap<number, string>;
  readonly groups: ReadonlyMap<number, string>;
}

async function parse(file: string): Promise<Map<number, string>> {
  const map = new Map<number, string>();
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return map;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] && Number.isInteger(id) && !map.has(id)) map.set(id, f[0]);
  }
  return map;
}

export async function loadIdNames(): Promise<IdNames> {
  const [users, groups] = await Promise.all([parse('/etc/passwd'), parse('/etc/group')]);
  return { users, groups };
}

let user: string | null = null;

/** The name of the user running stowage, for snapshots, locks and key files; empty when unknown. */
export function currentUser(): string {
  if (user === null) {
    try {
      user = userInfo().username;
    } catch {
      user = '';
    }
  }
  return user;
}
