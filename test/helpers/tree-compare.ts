/**
 * Compares two directory trees the way a restore must reproduce them: names,
 * types, bytes, mode bits, owners, mtimes (to the microsecond: Node's utimes
 * takes a double, so within one), symlink targets, hard links, extended attributes.
 * Returns a list of differences, empty when they match.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: bigint;
  size: number;
  hash?: string;
  target?: string;
  linkGroup?: string;
  xattrs?: string;
}

function xattrsOf(p: string): string {
  try {
    return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l.includes('=') && !l.startsWith('security.selinux'))
      .sort()
      .join(';');
  } catch {
    return '';
  }
}

/** Keys are relative paths as latin1 strings of their bytes: names need not be UTF-8. */
function scan(root: string, opts: { xattrs: boolean }): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const inodes = new Map<string, string>();
  const rootBytes = Buffer.from(root);
  const walk = (rel: string): void => {
    const p = rel === '' ? rootBytes : Buffer.concat([rootBytes, Buffer.from('/'), Buffer.from(rel, 'latin1')]);
    const st = fs.lstatSync(p, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
    const e: Entry = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeUs: st.mtimeNs / 1000n,
      size: type === 'file' ? Number(st.size) : 0,
    };
    if (type === 'file') {
      e.hash = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        if (!inodes.has(key)) inodes.set(key, rel);
        e.linkGroup = inodes.get(key)!;
      }
    }
    if (type === 'symlink') e.target = fs.readlinkSync(p);
    if (opts.xattrs && type !== 'symlink') e.xattrs = xattrsOf(p.toString());
    if (rel !== '') out.set(rel, e);
    if (type === 'dir') {
      const names = fs.readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const n of names) walk(rel === '' ? n.toString('latin1') : `${rel}/${n.toString('latin1')}`);
    }
  };
  walk('');
  return out;
}

export function compareTrees(a: string, b: string, opts: { xattrs?: boolean; ignoreDirMtime?: boolean; mtimeSeconds?: boolean } = {}): string[] {
  const A = scan(a, { xattrs: opts.xattrs ?? false });
  const B = scan(b, { xattrs: opts.xattrs ?? false });
  const diffs: string[] = [];
  for (const [rel, ea] of A) {
    const eb = B.get(rel);
    if (!eb) {
      diffs.push(`missing: ${JSON.stringify(rel)}`);
      continue;
    }
    for (const k of Object.keys(ea) as (keyof Entry)[]) {
      if (k === 'mtimeUs' && ea.type === 'symlink') continue;
      if (k === 'mtimeUs' && ea.type === 'dir' && opts.ignoreDirMtime) continue;
      // Node's utimes takes seconds as a double: about a quarter of a microsecond of precision today.
      if (k === 'mtimeUs' && (ea.mtimeUs - eb.mtimeUs <= 1n && eb.mtimeUs - ea.mtimeUs <= 1n)) continue;
      // Tar (the Docker API's archives) carries whole seconds.
      if (k === 'mtimeUs' && opts.mtimeSeconds && ea.mtimeUs / 1_000_000n === eb.mtimeUs / 1_000_000n) continue;
      if (ea[k] !== eb[k]) diffs.push(`${JSON.stringify(rel)}: ${k} ${String(ea[k])} != ${String(eb[k])}`);
    }
  }
  for (const rel of B.keys()) if (!A.has(rel)) diffs.push(`extra: ${JSON.stringify(rel)}`);
  return diffs;
}
